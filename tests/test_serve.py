"""The live view: LiveServer over real HTTP (requests), `lightpose-demo --serve`, and a real headless browser."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import struct
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

import media
from lightpose.serve import LiveServer, parse_address

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
        "text": "waiting for frames...",
    }
    assert requests.get(server.url + "frame.jpg", timeout=5).status_code == 503
    server.publish(solid((0, 0, 255)), frame=7, fps=12.345, people=2)
    assert requests.get(server.url + "stats", timeout=5).json() == {
        "frame": 7,
        "fps": 12.35,
        "people": 2,
        "finished": False,
        "text": "12.3 fps \u00b7 2 people \u00b7 frame 8",  # the page numbers frames from 1
    }
    jpeg = requests.get(server.url + "frame.jpg", timeout=5).content
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3) and image[..., 2].min() > 200 and image[..., :2].max() < 60
    server.publish(solid((0, 0, 255)), frame=0, fps=5.0, people=1)
    server.finish()
    stats = requests.get(server.url + "stats", timeout=5).json()
    assert stats["finished"] is True and stats["frame"] == 0
    assert stats["text"] == "5.0 fps \u00b7 1 person \u00b7 frame 1 (input finished)"
    assert "s.frame" not in page.text  # the page shows the server's text, not the 0-based index
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


# ---- addresses, Host check, idle and vanishing clients ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (":0", ("127.0.0.1", 0)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:0", ("::1", 0)),
        ("[::]:9000", ("::", 9000)),
    ],
)
def test_parse_address(spec: str, expected: tuple[str, int]) -> None:
    assert parse_address(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("::1:8080", "in brackets"),
        ("[::1]", "brackets hold an IPv6 address"),
        ("[localhost]:80", "brackets hold an IPv6 address"),
        ("65536", "0..65535"),
        ("host:", "0..65535"),
        ("host:-1", "0..65535"),
        ("a b:80", "HOST:PORT"),
        ("", "0..65535"),
    ],
)
def test_bad_addresses_are_refused_with_the_forms_to_use(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_address(spec)


def raw_request(port: int, request: bytes, family: int = socket.AF_INET, host: str = "127.0.0.1") -> bytes:
    """Send `request` on a plain socket and read the whole answer (the server closes after one request)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def port_of(live: LiveServer) -> int:
    return int(live.url.rsplit(":", 1)[1].strip("/"))


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST.", 200),
        ("view.localhost:{port}", 200),
        ("[::1]:{port}", 200),
        ("attacker.example:{port}", 403),  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        ("localhost.attacker.example", 403),
        ("192.168.1.20:{port}", 403),
        ("[::1", 403),
        (None, 403),
    ],
)
def test_host_header_must_name_the_server(server: LiveServer, host: str | None, status: int) -> None:
    port = port_of(server)
    header = "" if host is None else f"Host: {host.format(port=port)}\r\n"
    for path in ("/", "/stats", "/stream.mjpg") if status == 403 else ("/stats",):
        answer = raw_request(port, f"GET {path} HTTP/1.1\r\n{header}\r\n".encode())
        assert answer.startswith(f"HTTP/1.0 {status}".encode()), answer[:200]
        assert server.url.encode() in answer if status == 403 else b"waiting for frames" in answer


def test_all_interfaces_bind_warns_and_accepts_addresses_not_foreign_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lightpose.serve"):
        live = LiveServer("0.0.0.0", 0)  # not started: nothing is answered on the network
    try:
        assert "visible to the whole network, without authentication" in caplog.text
        assert live.host_allowed("192.168.1.20:8080") and live.host_allowed(f"{socket.gethostname()}:80")
        assert live.host_allowed("localhost") and not live.host_allowed("attacker.example")
    finally:
        live.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lightpose.serve"):
        LiveServer("127.0.0.1", 0).close()
    assert caplog.text == ""


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_bind_serves_on_the_bracketed_url() -> None:
    with LiveServer(*parse_address("[::1]:0")) as live:
        assert live.url.startswith("http://[::1]:")
        answer = raw_request(port_of(live), b"GET /stats HTTP/1.1\r\nHost: [::1]\r\n\r\n", socket.AF_INET6, "::1")
        assert answer.startswith(b"HTTP/1.0 200")


def test_idle_connections_are_closed_after_the_timeout() -> None:
    with LiveServer("127.0.0.1", 0, idle_timeout=0.3) as live:
        threads_before = threading.active_count()
        sockets = [socket.create_connection(("127.0.0.1", port_of(live)), timeout=5) for _ in range(4)]
        sockets[1].sendall(b"GET / HTTP/1.1\r\n")  # a request that never ends
        sockets[2].sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        try:
            start = time.monotonic()
            assert [sock.recv(1024) for sock in sockets] == [b""] * 4  # closed by the server, not answered
            assert time.monotonic() - start < 3
        finally:
            for sock in sockets:
                sock.close()
        deadline = time.monotonic() + 3
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= threads_before  # no thread is left holding a connection


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed or killed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_disconnect_print_nothing(server: LiveServer, capfd: pytest.CaptureFixture[str]) -> None:
    port = port_of(server)
    server.publish(np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8), frame=0, fps=1, people=0)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"GET / HTTP/1.1\r\n")  # gone in the middle of its request
    time.sleep(0.2)
    reset(half)
    for path in ("/frame.jpg", "/stream.mjpg"):  # gone while a large answer is being sent
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        sock.recv(100)
        reset(sock)
    for index in range(1, 4):
        server.publish(solid(MAGENTA), frame=index, fps=1, people=0)
        time.sleep(0.1)
    assert requests.get(server.url + "stats", timeout=5).json()["frame"] == 3  # still serving
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Error" not in captured.err, captured.err


# ---- lightpose-demo --serve ------------------------------------------------------------------------------


def write_video(path: Path, frames: int, color: tuple[int, int, int]) -> Path:
    def frame(i: int) -> np.ndarray:
        image = np.zeros((120, 160, 3), np.uint8)
        image[:] = color
        cv2.rectangle(image, (10 + 5 * i, 40), (40 + 5 * i, 100), (255, 255, 255), -1)
        return image

    return media.write_video(path, (frame(i) for i in range(frames)))


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


@pytest.mark.slow
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


@pytest.mark.slow
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
