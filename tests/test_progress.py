"""Progress: a bar only on a terminal; logs get whole lines, never carriage returns."""

from __future__ import annotations

import io
import logging

import pytest

from lightpose import progress as progress_module
from lightpose.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_not_bars_off_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="lightpose.progress"):
        bar = Progress(3, unit="image", desc="evaluating", stream=stream)
        bar.set_postfix("loss 0.5")
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            bar.update(note=name)
        bar.close()
    assert stream.getvalue() == ""  # no bar drawn into a log file
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and lines[-1].startswith("evaluating: 3/3 images,") and "(c.jpg)" in lines[-1]
    assert "loss 0.5" in lines[0] and not any("\r" in line for line in lines)


def test_bar_on_a_terminal_and_messages_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    terminal = Terminal()
    bar = Progress(4, unit="iter", initial=1, stream=terminal)
    bar.update()
    bar.write("iter 2: loss 0.1")
    bar.close()
    assert "iter" in terminal.getvalue() and "/4" in terminal.getvalue()
    assert capsys.readouterr().out == "iter 2: loss 0.1\n"
    assert bar.count == 2


def test_disabled_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    terminal = Terminal()
    with caplog.at_level(logging.INFO, logger="lightpose.progress"):
        bar = Progress(None, unit="frame", enabled=False, stream=terminal)
        bar.update()
        bar.close()
    assert terminal.getvalue() == "" and not caplog.records
