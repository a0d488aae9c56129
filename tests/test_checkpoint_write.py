"""Training checkpoint writes: atomic, a full disk keeps the previous file, a killed write's temp file is cleaned."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import lightpose.io
from lightpose.errors import DiskFullError
from lightpose.training import checkpoints


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_round_trips_with_umask_mode(tmp_path: Path) -> None:
    path = checkpoints.checkpoint_path(tmp_path / "run", 7)
    old = os.umask(0o027)
    try:
        written = checkpoints.write_checkpoint(path, {"state_dict": {"w": torch.ones(2)}, "iter": 7})
    finally:
        os.umask(old)
    assert written == path and path.name == "checkpoint_iter_7.pth"
    assert path.stat().st_mode & 0o777 == 0o640
    loaded = checkpoints.read_checkpoint(path)
    assert loaded["iter"] == 7 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert _temps(path.parent) == []


def _fill_disk_with(error: BaseException):
    def save(obj: object, file) -> None:  # torch.save that writes part of the file, then hits the full disk
        file.write(b"PK\x03\x04" + bytes(1000))
        raise error

    return save


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError(
            "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0; PytorchStreamWriter failed "
            "writing file data/0: file write failed"
        ),
    ],
    ids=["ENOSPC", "torch-enforce-fail"],
)
def test_full_disk_says_so_keeps_the_previous_checkpoint_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = tmp_path / "checkpoint_iter_2.pth"
    checkpoints.write_checkpoint(path, {"iter": 1})
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _fill_disk_with(error))
    monkeypatch.setattr(lightpose.io.shutil, "disk_usage", lambda folder: _Usage())  # torch's error needs it
    with pytest.raises(DiskFullError, match=r"no space left on the device writing .*checkpoint_iter_2\.pth") as info:
        checkpoints.write_checkpoint(path, {"iter": 2})
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert "previous file" in str(info.value) and "free some space" in str(info.value)
    assert path.read_bytes() == before and _temps(tmp_path) == []


class _Usage:
    """shutil.disk_usage of a full disk."""

    total, used, free = 1 << 30, 1 << 30, 0


def test_killed_write_leaves_a_temp_that_the_next_write_removes(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-write leaves its temporary file; the next write into the folder removes it
    and the target is never half-written."""
    path = tmp_path / "checkpoint_iter_4.pth"
    child = textwrap.dedent(
        f"""
        import time, torch
        from lightpose.training import checkpoints

        def slow_save(obj, file):
            file.write(b"partial")
            file.flush()
            time.sleep(60)

        torch.save = slow_save
        checkpoints.write_checkpoint({str(path)!r}, {{"iter": 4}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child])
    try:
        deadline = time.monotonic() + 60
        while not _temps(tmp_path) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert _temps(tmp_path), "the child never started writing"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not path.exists() and len(_temps(tmp_path)) == 1
    checkpoints.write_checkpoint(path, {"iter": 5})
    assert _temps(tmp_path) == [] and checkpoints.read_checkpoint(path)["iter"] == 5
