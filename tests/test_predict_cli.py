"""`lightpose predict` end to end with the trained fixture model on the shared photos: a folder, a glob, a video
and an image URL in one call; per-input outputs in the PoseResult.to_dict() schema; start and summary lines;
resume, shards, --no-save, --coco, refusals, unreadable inputs, stale temporary files and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import media
from conftest import fixture_model_path, shared_root
from lightpose.cli.main import main
from lightpose.pose import PoseResult
from static_server import serve_folder

SCHEMA_KEYS = set(PoseResult((), 1, 1).to_dict())
VIDEO_FRAMES = 4


@pytest.fixture(scope="module")
def fixture_model() -> Path:
    return fixture_model_path()


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    folder = shared_root() / "data" / "people"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (set LIGHTPOSE_SHARED to the shared data folder to run this test)")
    return sorted(folder.glob("opencv_vtest_f*.jpg"))[:6]


def write_video(path: Path, images: list[Path], frames: int, size: tuple[int, int] = (384, 288)) -> Path:
    return media.write_video(path, (cv2.resize(cv2.imread(str(images[i % len(images)])), size) for i in range(frames)))


def model_args(checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--device", "cpu", "--backend", "torch"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def check_schema(record: dict) -> None:
    assert set(record) == SCHEMA_KEYS
    assert PoseResult.from_dict(record).to_dict() == record  # exactly PoseResult.to_dict()


@pytest.fixture()
def image_server(photos: list[Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving the shared photos folder."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with serve_folder(photos[0].parent) as base:
        yield base + "/"


@pytest.fixture()
def inputs(tmp_path: Path, photos: list[Path]) -> Path:
    """tmp/in: folder/ (3 photos), more/ (2 photos for a glob), clip.mp4 (4 frames)."""
    root = tmp_path / "in"
    for name, chosen in (("folder", photos[:3]), ("more", photos[3:5])):
        (root / name).mkdir(parents=True)
        for photo in chosen:
            shutil.copy(photo, root / name / photo.name)
    write_video(root / "clip.mp4", photos, VIDEO_FRAMES)
    return root


def test_one_call_on_folder_glob_video_and_url_then_a_rerun_skips_everything(
    tmp_path: Path, inputs: Path, fixture_model: Path, image_server: str, photos: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    url = image_server + photos[5].name
    sources = [str(inputs / "folder"), str(inputs / "more" / "*.jpg"), str(inputs / "clip.mp4"), url]
    assert main(["predict", *sources, "--output", str(out), *model_args(fixture_model)]) == 0
    captured = capsys.readouterr()
    start, summary = captured.out.strip().splitlines()
    assert start.startswith("lightpose predict: ") and str(fixture_model) in start and "torch fp32 (cpu)" in start
    assert "height 256" in start and "7 inputs to do (6 images, 1 video)" in start
    assert "7 inputs (7 done, 0 skipped, 0 unreadable), 10 frames in" in summary and "network" in summary

    # images: the annotated image and <name>.json, named relative to the folder / the pattern's folder
    names = [p.name for p in photos]
    images = names[:5]
    images.append(f"127.0.0.1_{url.split(':')[2].split('/')[0]}/{names[5]}")
    poses = 0
    for rel in images:
        annotated = cv2.imread(str(out / rel))
        assert annotated is not None and annotated.shape == (576, 768, 3)
        record = json.loads((out / rel).with_suffix(".json").read_text())
        check_schema(record)
        assert record["frame"] is None and (record["width"], record["height"]) == (768, 576)
        poses += len(record["poses"])
    assert poses > 0
    # the video: an annotated video and <name>.jsonl, one line per frame
    lines = read_jsonl(out / "clip.jsonl")
    assert [r["frame"] for r in lines] == list(range(VIDEO_FRAMES))
    for record in lines:
        check_schema(record)
    assert any(len(r["poses"]) > 0 for r in lines)
    assert all(p["id"] is not None for r in lines for p in r["poses"])  # tracked by default
    assert frame_count(out / "clip.mp4") == VIDEO_FRAMES
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [p for p in written if "/." in f"/{p}"]  # no temporary files left

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["predict", *sources, "--output", str(out), *model_args(fixture_model)]) == 0
    captured = capsys.readouterr()
    assert "skipped 7 inputs whose outputs are complete (--overwrite redoes them)" in captured.err
    assert "7 inputs (0 done, 7 skipped, 0 unreadable), 0 frames" in captured.out
    assert "nothing to do" in captured.err and "after 0 frames" not in captured.err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes


def test_two_shards_cover_every_input_exactly_once(
    tmp_path: Path, inputs: Path, fixture_model: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    args = ["predict", str(inputs / "folder"), str(inputs / "more"), "--output", str(out), "--no-save"]
    args += model_args(fixture_model)
    assert main([*args, "--shard", "0/2"]) == 0
    first = {p.relative_to(out) for p in out.rglob("*.json")}
    monkeypatch.setenv("RANK", "1")  # the second process as torchrun starts it
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(args) == 0
    second = {p.relative_to(out) for p in out.rglob("*.json")} - first
    assert len(first) == 3 and len(second) == 2 and not first & second
    assert "shard 1/2 of 5 inputs" in capsys.readouterr().out
    assert not list(out.rglob("*.jpg"))  # --no-save: JSON only


def test_coco_results_of_all_images(
    tmp_path: Path, inputs: Path, fixture_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, coco = tmp_path / "out", tmp_path / "results.json"
    args = ["predict", str(inputs / "folder"), "--output", str(out), "--coco", str(coco), *model_args(fixture_model)]
    assert main([*args, "--no-save"]) == 0
    records = json.loads(coco.read_text())
    assert records and {r["image_id"] for r in records} <= {1, 2, 3}
    assert all(len(r["keypoints"]) == 17 * 3 and r["category_id"] == 1 for r in records)
    per_image = sum(len(json.loads(p.read_text())["poses"]) for p in out.glob("*.json"))
    assert len(records) == per_image
    coco.unlink()
    assert main(args) == 0  # a rerun with annotated images: the JSON-only outputs are incomplete, redone
    assert "redoing 3 inputs whose outputs are incomplete" in capsys.readouterr().err
    assert len(json.loads(coco.read_text())) == len(records)


def test_a_resumed_coco_file_equals_a_fresh_one(tmp_path: Path, inputs: Path, fixture_model: Path) -> None:
    """Every input skipped, results read back from their JSON: the same scores (grouped counts kept), same bytes."""
    out = tmp_path / "out"
    args = ["predict", str(inputs / "folder"), "--output", str(out), "--no-save", *model_args(fixture_model)]
    assert main([*args, "--coco", str(tmp_path / "fresh.json")]) == 0
    assert main([*args, "--coco", str(tmp_path / "resumed.json")]) == 0
    fresh = (tmp_path / "fresh.json").read_bytes()
    assert len(json.loads(fresh)) > 0
    assert (tmp_path / "resumed.json").read_bytes() == fresh


def test_refuses_outputs_that_replace_inputs(
    inputs: Path, fixture_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = inputs / "folder"
    before = {p: p.read_bytes() for p in folder.iterdir()}
    assert main(["predict", str(folder), "--output", str(folder), *model_args(fixture_model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would replace the input" in err and "choose another --output" in err
    assert {p: p.read_bytes() for p in folder.iterdir()} == before  # nothing written


def test_equal_names_in_two_folders_give_two_outputs(tmp_path: Path, photos: list[Path], fixture_model: Path) -> None:
    for name, photo in (("a", photos[0]), ("b", photos[1])):
        (tmp_path / name).mkdir()
        shutil.copy(photo, tmp_path / name / "same.jpg")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "a" / "same.jpg"), str(tmp_path / "b" / "same.jpg"), "--output", str(out)]
    assert main([*args, *model_args(fixture_model)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == ["a/same.json", "b/same.json"]
    assert json.loads((out / "a" / "same.json").read_text())["source"].endswith("a/same.jpg")


def test_unreadable_image_is_named_counted_and_exits_1(
    tmp_path: Path, photos: list[Path], fixture_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for photo in photos[:3]:
        shutil.copy(photo, folder / photo.name)
    broken = folder / f"{photos[0].stem}_broken.jpg"  # sorts second
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--output", str(out), "--no-save", *model_args(fixture_model)]) == 1
    captured = capsys.readouterr()
    assert f"{broken}: skipped, could not be read" in captured.err
    assert "4 inputs (3 done, 0 skipped, 1 unreadable)" in captured.out
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(p.stem for p in photos[:3])


def test_stale_temporary_files_are_removed_live_ones_kept(
    tmp_path: Path, inputs: Path, fixture_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightpose.io import _HOST

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = dead.stdout.strip()
    stale = [out / f".clip.mp4.{_HOST}.{pid}.abc123.tmp.mp4", out / f".x.json.{_HOST}.{pid}.q1.tmp"]
    live = out / f".y.json.{_HOST}.{os.getpid()}.q2.tmp"
    for path in [*stale, live]:
        path.write_text("partial")
    assert main(["predict", str(inputs / "clip.mp4"), "--output", str(out), *model_args(fixture_model)]) == 0
    assert not any(p.exists() for p in stale) and live.exists()
    assert "removed 2 temporary files left by killed runs" in capsys.readouterr().err


def test_bad_usage_exits_2_with_one_line(
    inputs: Path, tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["predict", str(inputs / "nope.jpg"), "--output", str(tmp_path)], "input not found"),
        (["predict", str(inputs / "folder")], "give --output DIR"),
        (["predict", str(inputs / "folder"), "-o", str(inputs / "clip.mp4")], "exists and is not a folder"),
        (["predict", str(inputs / "folder"), "-o", str(tmp_path), "--shard", "2/2"], "--shard expects I/N"),
        (
            [
                "predict",
                str(inputs / "folder"),
                "-o",
                str(tmp_path),
                "--device",
                "cuda:7",
                "--checkpoint",
                str(checkpoint),
            ],
            "--device",
        ),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert "device=" not in err  # command-line words, not Python's
    assert not list(tmp_path.rglob("*.json"))


def test_sigint_mid_video_keeps_a_playable_video_and_valid_jsonl(tmp_path: Path, checkpoint: Path) -> None:
    frames = [np.full((96, 128, 3), 40 + i % 100, np.uint8) for i in range(300)]
    video = media.write_video(tmp_path / "long.mp4", frames)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lightpose", "predict", str(video), "--output", str(out), "--height", "64"]
    cmd += model_args(checkpoint)
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(out.glob(".long.jsonl.*.tmp")) if out.is_dir() else []
        if partial and len(partial[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"predict ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    lines = read_jsonl(out / "long.jsonl")
    assert 3 <= len(lines) < 300 and [r["frame"] for r in lines] == list(range(len(lines)))
    assert frame_count(out / "long.mp4") == len(lines)
    assert sorted(p.name for p in out.iterdir()) == ["long.jsonl", "long.mp4"]
    assert f"interrupted after {len(lines)} frames" in stderr and "1 input (0 done" in stdout
    # a rerun sees the interrupted outputs as incomplete and redoes them
    rerun = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert rerun.returncode == 0 and "redoing 1 inputs whose outputs are incomplete" in rerun.stderr
    assert len(read_jsonl(out / "long.jsonl")) == 300
