"""Test media written one way: videos from frames (each test says what its frames show)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = 10.0, codec: str = "mp4v") -> Path:
    """Write BGR `frames` (all one size) to `path` with OpenCV's `codec` at `fps`; returns `path`."""
    writer: cv2.VideoWriter | None = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, (width, height))
            writer.write(frame)
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"no frames to write to {path}")
    return path
