"""Poses frame by frame from a source, with optional tracking and smoothing."""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from lightpose.pose import Pose
from lightpose.sources import Frame, FrameSource, SourceSpec, open_source
from lightpose.tracking import PoseTracker

Estimator = Callable[[np.ndarray], list[Pose]]


def make_tracker(track: bool, smooth: bool | None) -> PoseTracker | None:
    """A PoseTracker when `track` (smoothing defaults to on); None without tracking.

    Smoothing follows pose ids, so smooth=True with track=False raises ValueError.
    """
    if smooth and not track:
        raise ValueError("smoothing follows pose ids: pass track=True, or smooth=False")
    return PoseTracker(smooth=smooth is not False) if track else None


def stream_frames(
    estimator: Estimator, source: SourceSpec, *, track: bool = True, smooth: bool | None = None
) -> Generator[tuple[Frame, list[Pose]], None, None]:
    """(Frame, poses) for each frame of `source` (see `lightpose.sources.open_source`, which raises here for a
    source that cannot be opened); the source is closed when the iteration ends or the iterator is closed."""
    tracker = make_tracker(track, smooth)
    return _estimate(estimator, open_source(source), tracker)


def stream(
    estimator: Estimator, source: SourceSpec, *, track: bool = True, smooth: bool | None = None
) -> Generator[tuple[np.ndarray, list[Pose]], None, None]:
    """(BGR uint8 (H, W, 3) frame, poses in its pixels) for each frame of a camera index, video file, stream
    URL, image file, folder or list of images. With `track`, poses carry stable ids; `smooth` (default: on
    when tracking) One-Euro smooths the keypoints of tracked poses."""
    return _images_only(stream_frames(estimator, source, track=track, smooth=smooth))


def _estimate(
    estimator: Estimator, frames: FrameSource, tracker: PoseTracker | None
) -> Generator[tuple[Frame, list[Pose]], None, None]:
    try:
        for frame in frames:
            poses = estimator(frame.image)
            yield frame, tracker.update(poses) if tracker is not None else poses
    finally:
        frames.close()


def _images_only(
    pairs: Generator[tuple[Frame, list[Pose]], None, None],
) -> Generator[tuple[np.ndarray, list[Pose]], None, None]:
    try:
        for frame, poses in pairs:
            yield frame.image, poses
    finally:
        pairs.close()
