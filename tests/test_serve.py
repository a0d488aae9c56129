"""The live view: LiveServer over real HTTP (requests), `lightpose-demo --serve`, and a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from lightpose.serve import LiveServer

MAGENTA = (255, 0, 255)  # BGR


def read_mjpeg(url: str, count: int, timeout: float = 10.0) -> list[np.ndarray]:
    """The first `count` JPEG parts of a multipart/x-mixed-replace stream, decoded as BGR images."""
    frames: list[np.ndarray] = []
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        buffer = b""
        while chunk := response.raw.read1(65536):  # whatever has arrived (iter_content would wait for more)
            buffer += chunk
            while (match := re.search(rb"Content-Length: (\d+)\r\n\r\n", buffer)) is not None:
                start, length = match.end(), int(match.group(1))
                if len(buffer) < start + length:
                    break
                image = cv2.imdecode(np.frombuffer(buffer[start : start + length], np.uint8), cv2.IMREAD_COLOR)
                assert image is not None, "a part of the stream is not a decodable JPEG"
                frames.append(image)
                buffer = buffer[start + length :]
            if len(frames) >= count:
                return frames[:count]
    raise AssertionError(f"the stream ended after {len(frames)} frames")


def solid(color: tuple[int, int, int]) -> np.ndarray:
    image = np.zeros((48, 64, 3), np.uint8)
    image[:] = color
    return image


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with LiveServer("127.0.0.1", 0) as live:
        yield live


def test_page_stats_and_single_frame(server: LiveServer) -> None:
    page = requests.get(server.url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "stream.mjpg" in page.text and "stats" in page.text
    assert requests.get(server.url + "stats", timeout=5).json() == {
        "frame": None,
        "fps": 0.0,
        "people": 0,
        "finished": False,
    }
    assert requests.get(server.url + "frame.jpg", timeout=5).status_code == 503
    server.publish(solid((0, 0, 255)), frame=7, fps=12.345, people=2)
    assert requests.get(server.url + "stats", timeout=5).json() == {
        "frame": 7,
        "fps": 12.35,
        "people": 2,
        "finished": False,
    }
    jpeg = requests.get(server.url + "frame.jpg", timeout=5).content
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3) and image[..., 2].min() > 200 and image[..., :2].max() < 60
    server.finish()
    assert requests.get(server.url + "stats", timeout=5).json()["finished"] is True
    assert requests.get(server.url + "nothing", timeout=5).status_code == 404


def test_mjpeg_stream_delivers_new_frames(server: LiveServer) -> None:
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    stop = threading.Event()

    def publish() -> None:
        index = 0
        while not stop.is_set():
            server.publish(solid(colors[index % 3]), frame=index, fps=20.0, people=1)
            index += 1
            time.sleep(0.03)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        frames = read_mjpeg(server.url + "stream.mjpg", count=6)
    finally:
        stop.set()
        publisher.join()
    assert all(f.shape == (48, 64, 3) for f in frames)
    dominant = {int(np.argmax(f.reshape(-1, 3).mean(axis=0))) for f in frames}
    assert len(dominant) >= 2  # the stream follows the published frames


def test_idle_stream_repeats_the_last_frame_and_close_releases_the_port() -> None:
    live = LiveServer("127.0.0.1", 0).start()
    port = int(live.url.rsplit(":", 1)[1].strip("/"))
    live.publish(solid(MAGENTA), frame=0, fps=1.0, people=0)
    frames = read_mjpeg(live.url + "stream.mjpg", count=2)  # nothing new is published: sent again
    assert len(frames) == 2 and np.array_equal(frames[0], frames[1])
    with pytest.raises(OSError):
        LiveServer("127.0.0.1", port)
    live.close()
    LiveServer("127.0.0.1", port).close()  # the port is free again


# ---- lightpose-demo --serve ------------------------------------------------------------------------------


def write_video(path: Path, frames: int, color: tuple[int, int, int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 120))
    for i in range(frames):
        image = np.zeros((120, 160, 3), np.uint8)
        image[:] = color
        cv2.rectangle(image, (10 + 5 * i, 40), (40 + 5 * i, 100), (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


class ServingDemo:
    """`lightpose-demo --serve 127.0.0.1:0` in a subprocess; `url` from its stderr."""

    def __init__(self, args: list[str]) -> None:
        cmd = [sys.executable, "-m", "lightpose.cli.demo", *args, "--serve", "127.0.0.1:0"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = self.wait_for(r"live view at (http://\S+/)").group(1)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if (match := re.search(pattern, line)) is not None:
                return match
        raise AssertionError(f"no line matching {pattern!r} in the demo's stderr: {''.join(self.lines)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)
        return self.proc.returncode


def test_demo_serves_the_annotated_stream(tmp_path: Path, checkpoint: Path) -> None:
    video = write_video(tmp_path / "in.mp4", frames=6, color=(40, 40, 40))
    out = tmp_path / "out.mp4"
    demo = ServingDemo(["--video", str(video), "--checkpoint", str(checkpoint), "--height", "64", "--output", str(out)])
    try:
        page = requests.get(demo.url, timeout=10)
        assert page.status_code == 200 and "stream.mjpg" in page.text
        frames = read_mjpeg(demo.url + "stream.mjpg", count=3)
        assert all(f.shape == (120, 160, 3) for f in frames)
        demo.wait_for("input finished after .* frames")
        assert out.exists()  # outputs are final once the input ends, while the view stays up
        stats = requests.get(demo.url + "stats", timeout=10).json()
        assert stats["finished"] is True and stats["frame"] == 5 and stats["people"] == 0 and stats["fps"] > 0
        last = read_mjpeg(demo.url + "stream.mjpg", count=1)[0]
        assert last[70, 38:62].min() > 200 and last[70, 70:].max() < 100  # the last frame: its box at x = 35..65
    finally:
        rc = demo.stop()
    assert rc == 0


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def screenshot(url: str, path: Path, profile: Path) -> np.ndarray:
    """A headless-chromium screenshot (400x300) of `url` after 3 s of page time, as a BGR image."""
    browser = [find_chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    browser += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    browser += ["--disable-sync", f"--user-data-dir={profile}", "--window-size=400,300"]
    browser += ["--virtual-time-budget=3000", f"--screenshot={path}", url]
    run = subprocess.run(browser, capture_output=True, text=True, timeout=90, cwd=path.parent)
    image = cv2.imread(str(path))
    assert image is not None, run.stderr[-2000:]
    return image


def share_of_color(image: np.ndarray, color: tuple[int, int, int]) -> float:
    """Pixels within 60 of the BGR `color` on every channel, as a multiple of a 160x120 frame's area."""
    close = np.all(np.abs(image.astype(int) - np.array(color)) < 60, axis=2)
    return float(close.sum()) / (160 * 120)


needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium: .ci/run installs Debian's chromium where apt works"
)


@needs_chromium
def test_headless_browser_renders_the_live_view(tmp_path: Path, checkpoint: Path) -> None:
    video = write_video(tmp_path / "in.mp4", frames=4, color=MAGENTA)
    demo = ServingDemo(["--video", str(video), "--checkpoint", str(checkpoint), "--height", "64"])
    try:
        demo.wait_for("input finished after .* frames")
        image = screenshot(demo.url, tmp_path / "shot.png", tmp_path / "profile")
    finally:
        demo.stop()
    b, g, r = (image[..., c].astype(int) for c in range(3))
    magenta = (b > 200) & (r > 200) & (g < 60)
    assert magenta.sum() > 0.5 * 160 * 120  # the stream's frame is on the page
    page_background = image[-5:, -5:].reshape(-1, 3)
    assert np.all(page_background < 60)  # the page itself is dark: magenta comes from the video only


@needs_chromium
def test_headless_browser_follows_the_stream_between_shots(tmp_path: Path) -> None:
    green, blue = (0, 200, 0), (200, 60, 0)
    frame = np.zeros((120, 160, 3), np.uint8)
    with LiveServer("127.0.0.1", 0) as live:
        live.start()
        live.publish(np.full_like(frame, green), frame=0, fps=10.0, people=0)
        first = screenshot(live.url, tmp_path / "first.png", tmp_path / "profile1")
        live.publish(np.full_like(frame, blue), frame=1, fps=10.0, people=0)
        second = screenshot(live.url, tmp_path / "second.png", tmp_path / "profile2")
    assert share_of_color(first, green) > 0.5 and share_of_color(first, blue) < 0.05  # not blank: frame 0 shows
    assert share_of_color(second, blue) > 0.5 and share_of_color(second, green) < 0.05  # the next frame replaced it
