"""Per-thread reusable work arrays: fresh multi-megabyte temporaries would cost page faults on every call."""

from __future__ import annotations

import math
import threading

import numpy as np


class Scratch(threading.local):
    """Work arrays by tag, one set per thread."""

    def __init__(self) -> None:
        self.flat: dict[str, np.ndarray] = {}

    def get(self, tag: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A C-contiguous array of `shape` for `tag`, reused (and overwritten) by the next call with that tag."""
        size = math.prod(shape)
        buffer = self.flat.get(tag)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self.flat[tag] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


SCRATCH = Scratch()
