"""Watching results live: an OpenCV window (--show), a browser view (--serve), the fps meter, and the signal
handler that lets a run finish its files on Ctrl-C / SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import cv2
import numpy as np

from lightpose.errors import UsageError
from lightpose.pose import PoseResult
from lightpose.serve import LiveServer, parse_address

logger = logging.getLogger("lightpose.cli")
WINDOW_TITLE = "lightpose (Esc/q: quit, p: pause)"


def window_unavailable_reason() -> str | None:
    """Why OpenCV cannot open a window here (headless build, no display), or None when it should work."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE":
            return "this OpenCV build has no GUI support (install opencv-python instead of opencv-python-headless)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display: neither DISPLAY nor WAYLAND_DISPLAY is set"
    return None


class FpsMeter:
    """Frames per second, exponentially averaged over about the last `span` frames."""

    def __init__(self, span: int = 10) -> None:
        self._weight = 2.0 / (span + 1)
        self._last: float | None = None
        self.fps = 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            current = 1.0 / (now - self._last)
            self.fps = current if self.fps == 0.0 else self.fps + self._weight * (current - self.fps)
        self._last = now
        return self.fps


def _with_fps(image: np.ndarray, fps: float) -> np.ndarray:
    view = image.copy()
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(view, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, thickness, cv2.LINE_AA)
    return view


def _quit_key(key: int) -> bool:
    return key >= 0 and key & 0xFF in (27, ord("q"))


class LiveView:
    """The window and/or browser view of a run. `open()` checks and starts them (UsageError when impossible),
    `publish` shows a frame and says whether the user asked to quit, `linger` keeps serving after the input ended
    until a signal, `close` stops."""

    def __init__(self, *, show: bool, serve: str | None, prog: str) -> None:
        self.show, self.prog = show, prog
        self.address = parse_address(serve) if serve is not None else None
        self.server: LiveServer | None = None
        self.fps = FpsMeter()
        self._paused = False

    @property
    def active(self) -> bool:
        return self.show or self.address is not None

    def check(self) -> None:
        """UsageError when --show cannot open a window here (before any work)."""
        reason = window_unavailable_reason() if self.show else None
        if reason:
            raise UsageError(f"--show cannot open a window: {reason}; use --serve PORT to watch in a browser")

    def open(self) -> LiveView:
        if self.address is not None:
            host, port = self.address
            try:
                self.server = LiveServer(host, port).start()
            except OSError as error:
                reason = error.strerror or str(error)
                raise UsageError(f"--serve {host}:{port}: cannot listen there ({reason}); pick another port") from None
            print(f"{self.prog}: live view at {self.server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if self.show:
            try:
                cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_AUTOSIZE)
            except cv2.error as error:
                raise UsageError(f"--show could not open a window ({error}); use --serve PORT instead") from None
        return self

    def publish(self, result: PoseResult, annotated: np.ndarray, index: int) -> bool:
        """Show the run's frame `index` (0-based), annotated; True when the user pressed q or Esc in the window."""
        rate = self.fps.tick()
        view = _with_fps(annotated, rate)
        if self.server is not None:
            self.server.publish(view, frame=index, fps=rate, people=len(result))
        if self.show:
            cv2.imshow(WINDOW_TITLE, view)
            key = cv2.waitKey(0 if self._paused else 1)
            if key >= 0 and key & 0xFF == ord("p"):
                self._paused = not self._paused
            return _quit_key(key)
        return False

    def finish(self) -> None:
        """Mark the browser view finished (the input ended)."""
        if self.server is not None:
            self.server.finish()

    def linger(self, stop: StopOnSignal) -> None:
        """After the input ended: keep the browser view up until Ctrl-C (or q in the window)."""
        if self.server is None:
            return
        print(f"{self.prog}: still serving {self.server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not (stop.wait(0.2) or (self.show and _quit_key(cv2.waitKey(1)))):
            pass

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.show:
            cv2.destroyAllWindows()


class StopOnSignal:
    """While active, the first SIGINT/SIGTERM only sets a flag (the loop then finishes its files); a second SIGINT
    raises KeyboardInterrupt as usual. `exit_code`: 130 after SIGINT, 143 after SIGTERM."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}
        self.signum: int | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self._event.set()

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
