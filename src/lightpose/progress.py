"""Progress the same in every command: a tqdm bar on a terminal, else one log line every LOG_EVERY_S seconds.

Logs never receive carriage-return bars, and messages written while a bar is shown (`Progress.write`) appear on
their own line above it; `close()` removes the bar before the next message.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

LOG_EVERY_S = 5.0
logger = logging.getLogger("lightpose.progress")


class Progress:
    """Counts `unit`s of `total` (None: unknown); shown only when `enabled`.

    Args:
        total: how many units the job has, or None when unknown.
        unit: what one step counts ("frame", "image", "iter").
        desc: a short label, shown before the bar and in log lines.
        initial: units already done (a resumed job).
        enabled: False shows nothing (--quiet, --no-progress, non-main ranks).
        stream: where the bar goes (stderr); a bar only when it is a terminal.
    """

    def __init__(
        self,
        total: int | None,
        *,
        unit: str,
        desc: str = "",
        initial: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        stream = sys.stderr if stream is None else stream
        terminal = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.bar = (
            tqdm(total=total, initial=initial, unit=unit, desc=desc or None, file=stream, leave=False)
            if terminal
            else None
        )
        self.enabled, self.total, self.unit, self.desc = enabled, total, unit, desc
        self.count = initial
        self.postfix = ""
        self.started = self.last = time.perf_counter()
        self.started_count = initial

    def update(self, steps: int = 1, note: str = "") -> None:
        """Count `steps` more units (`note`: what was just done, in log lines)."""
        self.count += steps
        if self.bar is not None:
            self.bar.update(steps)
            return
        now = time.perf_counter()
        if self.enabled and now - self.last >= LOG_EVERY_S:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            rate = (self.count - self.started_count) / max(now - self.started, 1e-9)
            label = f"{self.desc}: " if self.desc else ""
            extra = "".join(f" {part}" for part in (self.postfix, f"({note})" if note else "") if part)
            logger.info("%s%d%s %ss, %.1f %ss/s%s", label, self.count, of, self.unit, rate, self.unit, extra)

    def set_postfix(self, text: str) -> None:
        """A short status (e.g. the last loss) shown after the bar and in log lines."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def write(self, message: str) -> None:
        """Print `message` on stdout on its own line (above the bar when one is shown)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def close(self) -> None:
        """Remove the bar (a no-op for log lines); call before printing a summary."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
