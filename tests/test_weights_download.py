"""lightpose.weights downloads against a real HTTP server on 127.0.0.1 that fails on purpose."""

from __future__ import annotations

import collections
import errno
import gzip
import hashlib
import io
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

import lightpose
from lightpose import weights
from lightpose.weights import CheckpointError, DownloadError, IntegrityError, NotCachedError, WeightsEntry
from test_weights import _WritesMarker, train_style_checkpoint

FAST = {"backoff": 0.01, "timeout": (5.0, 5.0)}


class FileServer(ThreadingHTTPServer):
    """Serves `files`; `plan[path]` lists what the next requests get (then "ok"); `requests` logs every GET.

    Actions: "ok", an HTTP status ("404", "403", "500"), "drop" (half the body, then the connection closes),
    "stall" (200 kB, then a pause longer than the tests' read timeout), "slow" (whole body, slowly), "trickle"
    (100 kB, then 1 byte every 20 ms), "endless" (zeros without Content-Length until the client leaves), "html"
    (a web page labelled text/html), "html_bytes" (a web page labelled application/octet-stream), "gzip" (the body
    gzip-compressed with Content-Encoding: gzip although identity was asked for), "gzip_drop" (half of that).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.plan: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of `path`, in order."""
        return [rng for p, rng in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path.lstrip("/")
        self.server.requests.append((path, self.headers.get("Range")))
        action = self.server.plan[path].popleft() if self.server.plan[path] else "ok"
        if action.isdigit() or path not in self.server.files:
            self.send_error(int(action) if action.isdigit() else 404)
            return
        if action in ("html", "html_bytes", "endless", "gzip", "gzip_drop"):
            self._special(action, self.server.files[path])
            return
        body = self.server.files[path]
        start = 0
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and self.server.honour_range:
            start = int(rng[len("bytes=") :].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        try:
            if action == "drop":
                self.wfile.write(rest[: len(rest) // 2])
            elif action == "stall":
                self.wfile.write(rest[:200_000])
                self.wfile.flush()
                time.sleep(1.5)
            elif action == "slow":
                for i in range(0, len(rest), len(rest) // 10 + 1):
                    self.wfile.write(rest[i : i + len(rest) // 10 + 1])
                    time.sleep(0.05)
            elif action == "trickle":
                self.wfile.write(rest[:100_000])
                for i in range(100_000, min(len(rest), 100_300)):  # 1 byte / 20 ms, for at most 6 s
                    self.wfile.write(rest[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.02)
            else:
                self.wfile.write(rest)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _special(self, action: str, body: bytes) -> None:
        page = b"<!DOCTYPE html>\n<html><head><title>Download</title></head><body>Click here</body></html>\n"
        self.send_response(200)
        if action.startswith("html"):
            self.send_header(
                "Content-Type", "text/html; charset=utf-8" if action == "html" else "application/octet-stream"
            )
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif action.startswith("gzip"):
            packed = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(packed)))
            self.end_headers()
            self.wfile.write(packed if action == "gzip" else packed[: len(packed) // 2])
        else:  # endless: no Content-Length, the body ends when the connection closes
            self.send_header("Connection", "close")
            self.end_headers()
            zeros = bytes(1 << 16)
            try:
                for _ in range(10_000):  # 655 MB at most
                    self.wfile.write(zeros)
            except (BrokenPipeError, ConnectionResetError):
                pass


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    buf = io.BytesIO()
    torch.save(train_style_checkpoint(num_refinement_stages=1, seed=0), buf)
    srv.files["ckpt.pth"] = buf.getvalue()
    srv.files["mirror/ckpt.pth"] = buf.getvalue()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fresh(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.plan.clear()
    server.requests.clear()
    server.honour_range = True
    for name in ("LIGHTPOSE_HOME", "LIGHTPOSE_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _entry(server: FileServer, *paths: str, sha256: str | None = None) -> WeightsEntry:
    return WeightsEntry(
        name="test-local",
        urls=tuple(server.url(p) for p in paths),
        file_name="ckpt.pth",
        sha256=sha256,
        meta={"num_refinement_stages": 1},
    )


def _cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_first_download_shows_progress_caches_and_pins(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _TTY()
    monkeypatch.setattr(sys, "stderr", stderr)
    path = weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path, **FAST)
    assert "ckpt.pth" in stderr.getvalue() and "100%" in stderr.getvalue()
    assert path.is_relative_to(tmp_path / "checkpoints") and path.read_bytes() == server.files["ckpt.pth"]
    digest = hashlib.sha256(server.files["ckpt.pth"]).hexdigest()
    assert (path.parent / "ckpt.pth.sha256").read_text().split()[0] == digest
    assert _cache_files(tmp_path) == ["ckpt.pth", "ckpt.pth.sha256"]
    assert server.gets("ckpt.pth") == [None]
    model, entry = weights.load_model(server.url("ckpt.pth"), cache_dir=tmp_path, progress=False)
    assert entry is None and not model.training
    assert len(server.requests) == 1  # the second call used the cache
    expected = train_style_checkpoint(seed=0)["state_dict"]
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_progress_bar_off_without_tty_or_when_asked(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path / "a", **FAST)
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path / "b", progress=False, **FAST)
    assert pipe.getvalue() == "" and tty.getvalue() == ""
    assert len(server.requests) == 2


def test_registered_name_mirror_fallback(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].append("404")
    entry = weights.register_weights(_entry(server, "ckpt.pth", "mirror/ckpt.pth"))
    try:
        model, got = weights.load_model("test-local", cache_dir=tmp_path, progress=False, **FAST)
    finally:
        weights.unregister_weights("test-local")
    assert got is entry and len(model.refinement_stages) == 1
    assert [p for p, _ in server.requests] == ["ckpt.pth", "mirror/ckpt.pth"]
    assert (tmp_path / "checkpoints" / "ckpt.pth").is_file()


def test_retries_server_errors(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].extend(["500", "500"])
    path = weights.resolve_checkpoint(_entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, **FAST)
    assert path.read_bytes() == server.files["ckpt.pth"] and len(server.gets("ckpt.pth")) == 3


def test_read_timeout_is_retried(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].append("stall")
    path = weights.resolve_checkpoint(
        _entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, backoff=0.01, timeout=(5.0, 0.5)
    )
    assert path.read_bytes() == server.files["ckpt.pth"]
    first, second = server.gets("ckpt.pth")
    assert first is None and second is not None  # resumed from the bytes that arrived before the stall
    assert 0 < int(second.removeprefix("bytes=").rstrip("-")) <= 200_000


@pytest.mark.parametrize("honour_range", [True, False])
def test_dropped_connection_resumes_or_restarts(server: FileServer, tmp_path: Path, honour_range: bool) -> None:
    server.honour_range = honour_range
    server.plan["ckpt.pth"].append("drop")
    path = weights.resolve_checkpoint(_entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, **FAST)
    assert path.read_bytes() == server.files["ckpt.pth"]
    first, second = server.gets("ckpt.pth")  # resumed with Range; a 200 answer to it means: start from 0
    assert first is None and second is not None
    assert 0 < int(second.removeprefix("bytes=").rstrip("-")) <= len(server.files["ckpt.pth"]) // 2
    assert _cache_files(tmp_path) == ["ckpt.pth", "ckpt.pth.sha256"]


def test_every_mirror_failing_raises_one_download_error(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].append("403")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{s.getsockname()[1]}/ckpt.pth"
    entry = WeightsEntry(
        name="test-failing", urls=(server.url("ckpt.pth"), server.url("missing.pth"), closed_url), file_name="c.pth"
    )
    with pytest.raises(DownloadError) as info:
        weights.resolve_checkpoint(entry, cache_dir=tmp_path, progress=False, retries=1, **FAST)
    message = str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, OSError)
    assert f"{server.url('ckpt.pth')} -> HTTP 403" in message and f"{server.url('missing.pth')} -> HTTP 404" in message
    assert f"{closed_url} -> connection failed" in message
    assert "by hand" in message and "from_pretrained(" in message
    assert f"The cache folder is {tmp_path / 'checkpoints'}" in message  # a registered-name-less entry: url-<key>/
    assert [url for url, _ in info.value.attempts] == [entry.urls[0], entry.urls[1], closed_url, closed_url]
    assert _cache_files(tmp_path) == []


def test_sha256_mismatch_removes_the_file(server: FileServer, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        weights.resolve_checkpoint(_entry(server, "ckpt.pth", sha256=wrong), cache_dir=tmp_path, progress=False)
    actual = hashlib.sha256(server.files["ckpt.pth"]).hexdigest()
    assert server.url("ckpt.pth") in str(info.value) and wrong in str(info.value) and actual in str(info.value)
    assert _cache_files(tmp_path) == []


def test_known_sha256_accepts_and_writes_no_pin(server: FileServer, tmp_path: Path) -> None:
    digest = hashlib.sha256(server.files["ckpt.pth"]).hexdigest()
    path = weights.resolve_checkpoint(_entry(server, "ckpt.pth", sha256=digest), cache_dir=tmp_path, progress=False)
    assert _cache_files(tmp_path) == ["ckpt.pth"] and path.is_file()


def test_tampered_cached_file_is_refused(server: FileServer, tmp_path: Path) -> None:
    path = weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path, progress=False)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"changed after it was downloaded") as info:
        weights.load_model(server.url("ckpt.pth"), cache_dir=tmp_path, progress=False)
    assert str(path) in str(info.value) and "ckpt.pth.sha256" in str(info.value)
    assert len(server.requests) == 1


def test_offline_mode(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.url("ckpt.pth")
    with pytest.raises(NotCachedError) as info:
        weights.resolve_checkpoint(url, cache_dir=tmp_path, local_files_only=True)
    assert isinstance(info.value, FileNotFoundError)
    assert "ckpt.pth" in str(info.value) and str(tmp_path) in str(info.value) and url in str(info.value)
    monkeypatch.setenv("LIGHTPOSE_OFFLINE", "1")
    with pytest.raises(NotCachedError, match="LIGHTPOSE_OFFLINE"):
        weights.load_model(url, cache_dir=tmp_path)
    assert server.requests == [] and not (tmp_path / "checkpoints").exists()
    # an explicit argument beats the environment, both ways
    weights.resolve_checkpoint(url, cache_dir=tmp_path, local_files_only=False, progress=False)
    assert len(server.requests) == 1
    model, _ = weights.load_model(url, cache_dir=tmp_path)  # offline by the environment, from the cache
    monkeypatch.setenv("LIGHTPOSE_OFFLINE", "0")
    with pytest.raises(NotCachedError, match="local_files_only=True"):
        weights.resolve_checkpoint(server.url("mirror/ckpt.pth"), cache_dir=tmp_path, local_files_only=True)
    assert weights.resolve_checkpoint(url, cache_dir=tmp_path, local_files_only=True).is_file()
    assert len(server.requests) == 1 and not model.training


def test_malicious_download_is_refused_and_never_cached(server: FileServer, tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": _WritesMarker(marker)}}, buf)
    server.files["evil.pth"] = buf.getvalue()
    with pytest.raises(DownloadError, match=r"names io\.open \(objects that could run code") as info:
        weights.resolve_checkpoint(server.url("evil.pth"), cache_dir=tmp_path / "cache", progress=False)
    assert "weights_only=False" not in str(info.value) and "re-save" not in str(info.value)
    assert not marker.exists() and _cache_files(tmp_path) == []


def test_structurally_wrong_download_is_refused_and_never_cached(server: FileServer, tmp_path: Path) -> None:
    checkpoint = train_style_checkpoint(seed=0)
    del checkpoint["state_dict"]["initial_stage.pafs.1.0.bias"]
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    server.files["wrong.pth"] = buf.getvalue()
    with pytest.raises(DownloadError, match=r"missing key.*initial_stage\.pafs\.1\.0\.bias"):
        weights.resolve_checkpoint(server.url("wrong.pth"), cache_dir=tmp_path, progress=False)
    assert _cache_files(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
def test_disk_full_raises_download_error(server: FileServer, tmp_path: Path) -> None:
    url = server.url("ckpt.pth")
    weights.resolve_checkpoint(url, cache_dir=tmp_path / "probe", progress=False)  # learn the cache layout
    folder = next((tmp_path / "probe").rglob("ckpt.pth")).parent.relative_to(tmp_path / "probe")
    (tmp_path / "full" / folder).mkdir(parents=True)
    (tmp_path / "full" / folder / "ckpt.pth.part").symlink_to("/dev/full")
    with pytest.raises(DownloadError, match="No space left on device") as info:
        weights.resolve_checkpoint(url, cache_dir=tmp_path / "full", progress=False)
    assert isinstance(info.value, OSError) and "by hand" in str(info.value)
    assert not (tmp_path / "full" / folder / "ckpt.pth").exists()


def _resolve_and_load(url: str, cache_dir: str, barrier, results) -> None:  # also the target of spawned processes
    barrier.wait()
    path = weights.resolve_checkpoint(url, cache_dir=cache_dir, progress=False)
    results.put((str(path), len(weights.load_checkpoint_file(path)["state_dict"])))


@pytest.mark.slow  # three spawned interpreters import torch: 7-16 s
def test_concurrent_processes_download_once(server: FileServer, tmp_path: Path) -> None:
    """Four processes at once (three spawned, plus this one) download once, and all load the file."""
    server.plan["ckpt.pth"].append("slow")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    args = (server.url("ckpt.pth"), str(tmp_path), barrier, results)
    children = [context.Process(target=_resolve_and_load, args=args) for _ in range(3)]
    for child in children:
        child.start()
    _resolve_and_load(*args)
    outcomes = [results.get(timeout=60) for _ in range(4)]
    for child in children:
        child.join(timeout=30)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert len({path for path, _ in outcomes}) == 1 and all(n == 250 for _, n in outcomes)
    assert len(server.requests) == 1


def test_stale_complete_part_file_restarts_after_416(server: FileServer, tmp_path: Path) -> None:
    url = server.url("ckpt.pth")
    weights.resolve_checkpoint(url, cache_dir=tmp_path / "probe", progress=False)  # learn the cache layout
    cached = next((tmp_path / "probe").rglob("ckpt.pth"))
    part = tmp_path / "run" / cached.parent.relative_to(tmp_path / "probe") / "ckpt.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(server.files["ckpt.pth"] + b"junk")  # longer than the file: the server answers 416
    path = weights.resolve_checkpoint(url, cache_dir=tmp_path / "run", progress=False, **FAST)
    assert path.read_bytes() == server.files["ckpt.pth"] and not part.exists()
    size = len(server.files["ckpt.pth"])
    assert server.gets("ckpt.pth")[1:] == [f"bytes={size + 4}-", None]


def test_file_put_into_the_cache_by_hand_is_validated_then_pinned(server: FileServer, tmp_path: Path) -> None:
    url = server.url("ckpt.pth")
    cached = weights.resolve_checkpoint(url, cache_dir=tmp_path, progress=False)
    pin = cached.with_name("ckpt.pth.sha256")
    pin.unlink()
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(weights.CheckpointError, match="ckpt.pth"):
        weights.resolve_checkpoint(url, cache_dir=tmp_path, local_files_only=True)
    assert not pin.exists()
    cached.write_bytes(server.files["ckpt.pth"])
    assert weights.resolve_checkpoint(url, cache_dir=tmp_path, local_files_only=True) == cached
    assert pin.read_text().split()[0] == hashlib.sha256(server.files["ckpt.pth"]).hexdigest()
    assert len(server.requests) == 1


def test_pose_estimator_from_pretrained_uses_the_cache(server: FileServer, tmp_path: Path) -> None:
    estimator = lightpose.PoseEstimator.from_pretrained(server.url("ckpt.pth"), cache_dir=tmp_path, progress=False)
    again = lightpose.PoseEstimator.from_pretrained(server.url("ckpt.pth"), cache_dir=tmp_path, local_files_only=True)
    assert isinstance(estimator(np.zeros((64, 80, 3), np.uint8)), Sequence) and again is not estimator
    assert len(server.requests) == 1


# -- hardening: stalls, size caps, web pages, compressed bodies, read-only caches, messages and logs ----------------


def test_trickling_transfer_is_stalled_and_resumed(server: FileServer, tmp_path: Path) -> None:
    """1 byte every 20 ms never trips the read timeout; the stall rule (0.3 s window) does, and the retry resumes."""
    server.plan["ckpt.pth"].append("trickle")
    start = time.monotonic()
    path = weights.resolve_checkpoint(
        _entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, stall_window=0.3, **FAST
    )
    assert time.monotonic() - start < 5.0  # not the 60 s read timeout, nor the server's 6 s of trickling
    assert path.read_bytes() == server.files["ckpt.pth"]
    first, second = server.gets("ckpt.pth")
    assert first is None and int(second.removeprefix("bytes=").rstrip("-")) >= 100_000


def test_stalled_on_every_try_fails_naming_the_stall(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].extend(["trickle", "trickle"])
    with pytest.raises(DownloadError, match=r"stalled: \d+ bytes in [\d.]+ s \(try 2/2\)") as info:
        weights.resolve_checkpoint(
            _entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, retries=1, stall_window=0.3, **FAST
        )
    assert len(info.value.attempts) == 2 and not (tmp_path / "checkpoints" / "ckpt.pth").exists()


def test_endless_body_is_capped_and_removed(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].append("endless")
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"the server sent more than max_bytes \(2097152 bytes\); stopped"):
        weights.resolve_checkpoint(
            _entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, max_bytes=2 << 20, **FAST
        )
    assert time.monotonic() - start < 4.0
    assert _cache_files(tmp_path) == [] and len(server.gets("ckpt.pth")) == 1  # not retried


def test_entry_size_caps_the_download(server: FileServer, tmp_path: Path) -> None:
    size = len(server.files["ckpt.pth"])
    small = WeightsEntry(name="test-size", urls=(server.url("ckpt.pth"),), file_name="ckpt.pth", size=size - 1)
    with pytest.raises(DownloadError, match=rf"announces {size} bytes, more than the file's size \({size - 1} bytes\)"):
        weights.resolve_checkpoint(small, cache_dir=tmp_path / "a", progress=False, **FAST)
    assert _cache_files(tmp_path / "a") == []
    server.plan["ckpt.pth"].append("endless")  # no Content-Length: the entry's size stops it, not max_bytes
    with pytest.raises(DownloadError, match=rf"sent more than the file's size \({size - 1} bytes\)"):
        weights.resolve_checkpoint(small, cache_dir=tmp_path / "b", progress=False, **FAST)
    exact = WeightsEntry(name="test-size", urls=(server.url("ckpt.pth"),), file_name="ckpt.pth", size=size)
    assert (
        weights.resolve_checkpoint(exact, cache_dir=tmp_path / "c", progress=False).read_bytes()
        == (server.files["ckpt.pth"])
    )
    with pytest.raises(ValueError, match="size"):
        WeightsEntry(name="n", urls=exact.urls, file_name="x.pth", size=0)


@pytest.mark.parametrize("action", ["html", "html_bytes"])
def test_web_page_is_refused_and_the_next_mirror_used(server: FileServer, tmp_path: Path, action: str) -> None:
    server.plan["ckpt.pth"].append(action)
    with pytest.raises(DownloadError) as info:
        weights.resolve_checkpoint(_entry(server, "ckpt.pth"), cache_dir=tmp_path / "a", progress=False, **FAST)
    assert "the server sent a web page, not a checkpoint (a share link rather than a direct download?)" in str(
        info.value
    )
    assert len(info.value.attempts) == 1 and _cache_files(tmp_path / "a") == []
    server.plan["ckpt.pth"].append(action)
    path = weights.resolve_checkpoint(
        _entry(server, "ckpt.pth", "mirror/ckpt.pth"), cache_dir=tmp_path / "b", progress=False, **FAST
    )
    assert path.read_bytes() == server.files["ckpt.pth"]


def test_gzip_encoded_response_is_decoded(server: FileServer, tmp_path: Path) -> None:
    server.plan["ckpt.pth"].append("gzip")
    path = weights.resolve_checkpoint(_entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, **FAST)
    assert path.read_bytes() == server.files["ckpt.pth"] and server.gets("ckpt.pth") == [None]


def test_broken_gzip_response_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    """Decoded bytes cannot be resumed by offset: the retry starts over without Range."""
    server.plan["ckpt.pth"].extend(["gzip_drop", "gzip"])
    path = weights.resolve_checkpoint(_entry(server, "ckpt.pth"), cache_dir=tmp_path, progress=False, **FAST)
    assert path.read_bytes() == server.files["ckpt.pth"] and server.gets("ckpt.pth") == [None, None]


def test_read_only_cache_without_pin_still_loads(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url("ckpt.pth")
    cached = weights.resolve_checkpoint(url, cache_dir=tmp_path, progress=False)
    pin = cached.with_name("ckpt.pth.sha256")
    pin.unlink()

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # what every write into the cache folder starts with
    model, _ = weights.load_model(url, cache_dir=tmp_path, local_files_only=True)
    assert not pin.exists() and not model.training
    cached.write_bytes(b"<html>not it</html>")  # without a pin, the file is still validated on every load
    with pytest.raises(CheckpointError, match="HTML web page"):
        weights.load_model(url, cache_dir=tmp_path, local_files_only=True)


def test_download_logs_the_cache_path(server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lightpose"):
        path = weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path, progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name == "lightpose.weights"]
    assert any(str(path) in m and m.startswith("downloading ckpt.pth") for m in messages)
    assert any(m.endswith(f"is cached at {path}") for m in messages)


def test_download_with_nan_weights_is_refused_naming_the_tensor(server: FileServer, tmp_path: Path) -> None:
    checkpoint = train_style_checkpoint(seed=0)
    checkpoint["state_dict"]["cpm.trunk.0.0.weight"][0, 0, 0, 0] = float("nan")
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    server.files["nan.pth"] = buf.getvalue()
    with pytest.raises(DownloadError, match=r"NaN or inf weights in 1 tensor\(s\): cpm\.trunk\.0\.0\.weight \(1 of"):
        weights.resolve_checkpoint(server.url("nan.pth"), cache_dir=tmp_path, progress=False)
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_bytes": 0}, "max_bytes"), ({"stall_window": 0}, "stall_window"), ({"timeout": (1.0, 0)}, "timeout")],
)
def test_bad_download_options_are_refused(server: FileServer, tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        weights.resolve_checkpoint(server.url("ckpt.pth"), cache_dir=tmp_path, **kwargs)
    assert server.requests == []
