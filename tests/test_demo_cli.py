"""lightpose-demo end to end: video and image inputs, video/folder/JSON outputs, Ctrl-C, bad arguments."""

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

from lightpose.cli.demo import UsageError, main, parse_address, window_unavailable_reason
from lightpose.cli.demo_outputs import frame_record
from lightpose.pose import Pose
from lightpose.skeleton import NUM_KEYPOINTS
from lightpose.sources import Frame

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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, SIZE)
    cycle = [stick_figure_frame(t) for t in range(10)]
    for i in range(frames):
        writer.write(cycle[i % len(cycle)])
    writer.release()
    return path


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
    assert [r["index"] for r in lines] == list(range(8))
    assert [r["timestamp"] for r in lines] == pytest.approx([i / 10.0 for i in range(8)])
    assert all(r["width"] == SIZE[0] and r["height"] == SIZE[1] and isinstance(r["poses"], list) for r in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "poses.jsonl"]  # no partial files


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
    assert sorted(p.name for p in folder_out.iterdir()) == ["img0.png", "img1.png", "img2.png", "small.jpg"]
    assert cv2.imread(str(folder_out / "small.jpg")).shape == (60, 80, 3)
    lines = read_json_lines(records)
    assert [Path(r["path"]).name for r in lines] == ["img0.png", "img1.png", "img2.png", "small.jpg"]
    assert all(r["timestamp"] is None for r in lines)
    # images of another size are resized to the first frame's size in a video
    avi = tmp_path / "all.avi"
    assert main(["--images", str(images), str(small), *base_args(checkpoint), "--output", str(avi)]) == 0
    frames = read_video(avi)
    assert len(frames) == 4 and all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)


def test_tracked_poses_in_json(tmp_path: Path, golden_dir: Path) -> None:
    """The golden random checkpoint finds (noise) poses: ids, keypoints and scores reach the JSON."""
    video = write_video(tmp_path / "walk.mp4", frames=3)
    records = tmp_path / "poses.jsonl"
    ckpt = golden_dir / "checkpoint_random_3stages.pth"
    assert main(["--video", str(video), "--checkpoint", str(ckpt), "--height", "64", "--json", str(records)]) == 0
    lines = read_json_lines(records)
    assert len(lines) == 3 and all(lines[i]["poses"] for i in range(3))
    ids = [[p["id"] for p in r["poses"]] for r in lines]
    assert all(isinstance(i, int) for frame_ids in ids for i in frame_ids)
    assert all(len(set(frame_ids)) == len(frame_ids) for frame_ids in ids)  # unique within a frame
    assert set(ids[0]) & set(ids[1])  # identical frames: ids carry over
    for pose in lines[0]["poses"]:
        assert len(pose["keypoints"]) == NUM_KEYPOINTS and isinstance(pose["score"], float)
        assert all(k is None or (len(k) == 3 and all(np.isfinite(k))) for k in pose["keypoints"])
    # --images: no tracking unless asked (as the reference demo), so no ids
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), stick_figure_frame(0))
    assert main(["--images", str(image), "--checkpoint", str(ckpt), "--height", "64", "--json", str(records)]) == 0
    (record,) = read_json_lines(records)
    assert record["poses"] and all(p["id"] is None for p in record["poses"])


def test_frame_record_writes_null_for_missing_keypoints() -> None:
    keypoints = np.full((NUM_KEYPOINTS, 3), np.nan, np.float32)
    keypoints[1] = (10.5, 20.25, 0.75)
    keypoints[2] = (30.0, 40.0, 0.5)
    frame = Frame(4, np.zeros((50, 60, 3), np.uint8), 0.4)
    record = frame_record(frame, [Pose(keypoints, 2.5, id=3)])
    text = json.dumps(record, allow_nan=False)  # valid JSON: no NaN
    pose = json.loads(text)["poses"][0]
    assert pose["id"] == 3 and pose["score"] == 2.5 and pose["bbox"] == [10.5, 20.25, 19.5, 19.75]
    assert pose["keypoints"][0] is None and pose["keypoints"][1] == [10.5, 20.25, 0.75]
    assert record["index"] == 4 and record["timestamp"] == 0.4 and (record["width"], record["height"]) == (60, 50)


def test_sigint_midway_keeps_a_playable_video_and_valid_json(tmp_path: Path, checkpoint: Path) -> None:
    long_video = write_video(tmp_path / "long.mp4", frames=400)
    out, records = tmp_path / "out.mp4", tmp_path / "poses.jsonl"
    cmd = [sys.executable, "-m", "lightpose.cli.demo", "--video", str(long_video), *base_args(checkpoint)]
    cmd += ["--output", str(out), "--json", str(records)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    partial = lambda: [p for p in tmp_path.iterdir() if p.name.startswith(".poses.partial")]  # noqa: E731
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
    assert [r["index"] for r in lines] == list(range(len(lines)))
    frames = read_video(out)
    assert len(frames) == len(lines) and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert not partial() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert f"interrupted after {len(lines)} frames" in stderr


def test_parse_serve_address() -> None:
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("host:", "abc", "70000", "1.2.3.4:-1"):
        with pytest.raises(UsageError, match="--serve expects"):
            parse_address(bad)


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
        (["--video", "{video}", "--output", "{tmp}/missing/out.mp4"], "missing does not exist"),
        (["--video", "{video}", "--output", "{tmp}/out.txt"], "give a video file"),
        (["--video", "{video}", "--json", "{tmp}"], "is a folder"),
        (["--video", "{video}", "--serve", "localhost:http"], "--serve expects"),
        (["--video", "{video}", "--json", "{tmp}/p.jsonl", "--no-track", "--smooth"], "--smooth follows pose ids"),
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
