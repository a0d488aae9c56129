"""lightpose-demo (the seed's options, now the same run as `lightpose predict`) and `lightpose demo`: video and image
inputs, video/folder/JSON outputs (PoseResult.to_dict() lines), overwrite refusals, Ctrl-C, bad arguments."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import media
from conftest import fixture_model_path, shared_path
from lightpose.cli.demo import main
from lightpose.cli.main import main as lightpose_main
from lightpose.cli.view import window_unavailable_reason
from lightpose.pose import PoseResult
from lightpose.skeleton import NUM_KEYPOINTS

SIZE = (160, 120)  # w, h: network input height 64 keeps each frame fast


def stick_figure_frame(t: int) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), 60, np.uint8)
    for x0 in (40 + 2 * t, 110 - t):
        head, hip = (x0, 30), (x0, 75)
        cv2.circle(image, head, 8, (200, 200, 230), -1)
        cv2.line(image, (x0, 38), hip, (200, 200, 230), 3)
        for dx in (-15, 15):
            cv2.line(image, (x0, 50), (x0 + dx, 65), (200, 200, 230), 3)
            cv2.line(image, hip, (x0 + dx, 110), (200, 200, 230), 3)
    return image


def write_video(path: Path, frames: int, fps: float = 10.0) -> Path:
    cycle = [stick_figure_frame(t) for t in range(10)]
    return media.write_video(path, (cycle[i % len(cycle)] for i in range(frames)), fps)


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "walk.mp4", frames=8)


def base_args(checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--device", "cpu", "--height", "64"]


def test_video_in_video_and_json_out(tmp_path: Path, checkpoint: Path, video: Path) -> None:
    out, records = tmp_path / "annotated.mp4", tmp_path / "poses.jsonl"
    rc = main(["--video", str(video), *base_args(checkpoint), "--output", str(out), "--json", str(records)])
    assert rc == 0
    frames = read_video(out)
    assert len(frames) == 8 and all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)
    lines = read_json_lines(records)
    assert [r["frame"] for r in lines] == list(range(8))
    assert [r["timestamp"] for r in lines] == pytest.approx([i / 10.0 for i in range(8)])
    assert all(PoseResult.from_dict(r).to_dict() == r for r in lines)  # the one schema
    assert all(r["width"] == SIZE[0] and r["height"] == SIZE[1] and r["source"] == str(video) for r in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "poses.jsonl"]  # no partial files
    # an existing output is never replaced silently
    before = records.read_bytes()
    assert main(["--video", str(video), *base_args(checkpoint), "--json", str(records)]) == 2
    assert records.read_bytes() == before
    assert main(["--video", str(video), *base_args(checkpoint), "--json", str(records), "--overwrite"]) == 0


def test_video_in_image_folder_out(tmp_path: Path, checkpoint: Path, video: Path) -> None:
    out = tmp_path / "frames"
    assert main(["--video", str(video), *base_args(checkpoint), "--output", str(out), "--no-track"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.jpg" for i in range(8)]
    assert cv2.imread(str(out / "frame_000003.jpg")).shape == (SIZE[1], SIZE[0], 3)


def test_images_in_folder_and_avi_out(tmp_path: Path, checkpoint: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"img{i}.png"), stick_figure_frame(i))
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(stick_figure_frame(5), (80, 60)))
    folder_out, records = tmp_path / "out" / "drawn", tmp_path / "poses.jsonl"
    args = [*base_args(checkpoint), "--output", str(folder_out), "--json", str(records)]
    assert main(["--images", str(images), str(small), *args]) == 0
    names = sorted(p.relative_to(folder_out).as_posix() for p in folder_out.rglob("*") if p.is_file())
    assert names == ["img0.png", "img1.png", "img2.png", "small.jpg"]  # relative to the folder given
    assert cv2.imread(str(folder_out / "small.jpg")).shape == (60, 80, 3)
    lines = read_json_lines(records)
    assert [Path(r["source"]).name for r in lines] == ["img0.png", "img1.png", "img2.png", "small.jpg"]
    assert all(r["timestamp"] is None and r["frame"] is None for r in lines)
    # images of another size are resized to the first frame's size in a video
    avi = tmp_path / "all.avi"
    assert main(["--images", str(images), str(small), *base_args(checkpoint), "--output", str(avi)]) == 0
    frames = read_video(avi)
    assert len(frames) == 4 and all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)


def test_tracked_poses_in_json(tmp_path: Path) -> None:
    """The trained fixture model finds the people of the shared photos: ids, keypoints and scores reach the JSON."""
    model, photo = fixture_model_path(), shared_path("data", "people", "opencv_vtest_f040.jpg")
    frame = cv2.resize(cv2.imread(str(photo)), (384, 288))
    video = media.write_video(tmp_path / "people.mp4", [frame] * 3)
    records = tmp_path / "poses.jsonl"
    assert main(["--video", str(video), "--checkpoint", str(model), "--device", "cpu", "--json", str(records)]) == 0
    lines = read_json_lines(records)
    assert len(lines) == 3 and all(len(lines[i]["poses"]) > 0 for i in range(3))
    ids = [[p["id"] for p in r["poses"]] for r in lines]
    assert all(isinstance(i, int) for frame_ids in ids for i in frame_ids)
    assert all(len(set(frame_ids)) == len(frame_ids) for frame_ids in ids)  # unique within a frame
    assert set(ids[0]) & set(ids[1])  # identical frames: ids carry over
    for pose in lines[0]["poses"]:
        assert len(pose["keypoints"]) == NUM_KEYPOINTS and isinstance(pose["score"], float)
    # --images: no tracking unless asked (as the reference demo), so no ids
    records2 = tmp_path / "image.jsonl"
    assert main(["--images", str(photo), "--checkpoint", str(model), "--device", "cpu", "--json", str(records2)]) == 0
    (record,) = read_json_lines(records2)
    assert record["poses"] and all(p["id"] is None for p in record["poses"])


def test_output_folder_that_is_the_input_folder_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), stick_figure_frame(0))
    before = (images / "a.png").read_bytes()
    assert main(["--images", str(images), "--output", str(images), *base_args(checkpoint)]) == 2
    assert (images / "a.png").read_bytes() == before and [p.name for p in images.iterdir()] == ["a.png"]


def test_sigint_midway_keeps_a_playable_video_and_valid_json(tmp_path: Path, checkpoint: Path) -> None:
    long_video = write_video(tmp_path / "long.mp4", frames=400)
    out, records = tmp_path / "out.mp4", tmp_path / "poses.jsonl"
    cmd = [sys.executable, "-m", "lightpose.cli.demo", "--video", str(long_video), *base_args(checkpoint)]
    cmd += ["--output", str(out), "--json", str(records)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    partial = lambda: [p for p in tmp_path.iterdir() if p.name.startswith(".poses.jsonl.")]  # noqa: E731
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        files = partial()
        if files and len(files[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, (
        f"the demo ended before it could be interrupted: {proc.stderr.read() if proc.stderr else ''}"
    )
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    lines = read_json_lines(records)
    assert 3 <= len(lines) < 400
    assert [r["frame"] for r in lines] == list(range(len(lines)))
    frames = read_video(out)
    assert len(frames) == len(lines) and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert not partial() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert f"interrupted after {len(lines)} frames" in stderr


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lightpose-demo: error:")
    return err


def test_missing_input_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--json", "x.jsonl"])
    assert exit_info.value.code == 2
    assert "--video" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--video", "{tmp}/nope.mp4", "--json", "{tmp}/p.jsonl"], "nope.mp4"),
        (["--images", "{tmp}/nope", "--json", "{tmp}/p.jsonl"], "nope"),
        (["--video", "{video}", "--output", "{video}/x.mp4"], "is a file, not a folder"),
        (["--video", "{video}", "--output", "{tmp}/out.txt"], "give a video file"),
        (["--video", "{video}", "--json", "{tmp}"], "is a folder"),
        (["--video", "{video}", "--serve", "localhost:http"], "bad serve address"),
        (["--video", "{video}", "--json", "{tmp}/p.jsonl", "--no-track", "--smooth"], "--smooth follows pose ids"),
        (["--video", "{video}", "--json", "{video}"], "is also an input"),
        (["--video", "{video}", "--json", "{tmp}/p.jsonl", "--checkpoint", "{tmp}/none.pth"], "none.pth"),
        (["--video", "{video}", "--json", "{tmp}/p.jsonl", "--height", "60"], "multiple of 8"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    tmp_path: Path,
    video: Path,
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = [a.format(tmp=tmp_path, video=video) for a in extra]
    if "--checkpoint" not in args:
        args += ["--checkpoint", str(checkpoint)]
    assert main(args) == 2
    assert message in one_line_error(capsys)
    assert not list(tmp_path.glob("*.jsonl"))


def test_port_in_use(tmp_path: Path, video: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc = main(["--video", str(video), *base_args(checkpoint), "--serve", str(port)])
    assert rc == 2
    assert f"127.0.0.1:{port}" in one_line_error(capsys)


@pytest.mark.skipif(window_unavailable_reason() is None, reason="OpenCV can open windows here")
def test_headless_opencv_points_to_serve(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--video", str(video), "--show"]) == 2
    assert "--serve" in one_line_error(capsys)
    assert main(["--video", str(video)]) == 2  # the seed's default (a window) is impossible: say what to do
    assert "--serve" in one_line_error(capsys)


@pytest.mark.skipif(window_unavailable_reason() is None, reason="OpenCV can open windows here")
def test_lightpose_demo_defaults_to_a_window_and_says_what_to_do_without_one(
    video: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lightpose_main(["demo", str(video), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lightpose demo: error:") and "--serve" in err


def test_lightpose_demo_writes_like_predict(tmp_path: Path, video: Path, checkpoint: Path) -> None:
    out = tmp_path / "out"
    assert lightpose_main(["demo", str(video), *base_args(checkpoint), "--output", str(out)]) == 0
    assert len(read_json_lines(out / "walk.jsonl")) == 8 and len(read_video(out / "walk.mp4")) == 8
