"""Pose ids across frames (the reference's greedy keypoint-similarity rule) and One-Euro keypoint smoothing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lightpose.pose import Pose, similar_keypoint_counts


def _smoothing_factor(rate: float, cutoff: np.ndarray | float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """One-Euro low-pass filter (Casiez et al. 2012) applied element-wise to arrays of any fixed shape.

    With the reference's defaults (freq=15 Hz, mincutoff=1, beta=0.05, dcutoff=1): dx = (x - x_prev) * freq
    (0 on the first sample), smoothed with cutoff `dcutoff`; x is smoothed with cutoff mincutoff + beta * |dx|.
    An element that is NaN has no state: it comes out NaN and starts fresh when it reappears.
    """

    def __init__(self, freq: float = 15.0, mincutoff: float = 1.0, beta: float = 0.05, dcutoff: float = 1.0) -> None:
        if freq <= 0 or mincutoff <= 0 or dcutoff <= 0 or beta < 0:
            raise ValueError(
                f"OneEuroFilter needs freq, mincutoff, dcutoff > 0 and beta >= 0; got freq={freq}, "
                f"mincutoff={mincutoff}, beta={beta}, dcutoff={dcutoff}"
            )
        self.freq, self.mincutoff, self.beta, self.dcutoff = freq, mincutoff, beta, dcutoff
        self._x_prev: np.ndarray | None = None
        self._dx_hat: np.ndarray | None = None
        self._x_hat: np.ndarray | None = None

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """Filter one sample; returns float64 of x's shape."""
        x = np.asarray(x, dtype=np.float64)
        if self._x_prev is None or self._dx_hat is None or self._x_hat is None:
            self._x_prev = self._dx_hat = self._x_hat = np.full(x.shape, np.nan)
        if x.shape != self._x_prev.shape:
            raise ValueError(f"OneEuroFilter got shape {x.shape} after {self._x_prev.shape}; use one filter per shape")
        fresh = np.isnan(self._x_prev)
        dx = np.where(fresh, 0.0, (x - self._x_prev) * self.freq)
        a_d = _smoothing_factor(self.freq, self.dcutoff)
        dx_hat = np.where(fresh, dx, a_d * dx + (1.0 - a_d) * self._dx_hat)
        a = _smoothing_factor(self.freq, self.mincutoff + self.beta * np.abs(dx_hat))
        x_hat = np.where(fresh, x, a * x + (1.0 - a) * self._x_hat)
        self._x_prev, self._dx_hat, self._x_hat = x, dx_hat, x_hat
        return x_hat


class PoseTracker:
    """Gives poses stable ids across frames and optionally smooths their keypoints.

    `update(poses)` follows the reference `track_poses`: current poses, by descending score, each take the
    not-yet-matched previous pose with the most similar keypoints (`lightpose.pose.keypoint_similarity` >
    `similarity`);
    with at least `min_keypoints` of them the previous id is kept, otherwise a new id is drawn from this
    tracker's counter (0, 1, 2, ...; ids are never reused). With `smooth`, each id owns a One-Euro filter per
    keypoint coordinate; a keypoint absent in the previous frame (or a new id) starts a fresh filter.
    Smoothed coordinates stay float (the reference truncates them to int pixels).
    """

    def __init__(
        self,
        *,
        smooth: bool = True,
        min_keypoints: int = 3,
        similarity: float = 0.5,
        freq: float = 15.0,
        mincutoff: float = 1.0,
        beta: float = 0.05,
        dcutoff: float = 1.0,
    ) -> None:
        if min_keypoints < 1:
            raise ValueError(f"min_keypoints must be >= 1, got {min_keypoints}")
        self.smooth = smooth
        self.min_keypoints = min_keypoints
        self.similarity = similarity
        self._filter_args = (freq, mincutoff, beta, dcutoff)
        OneEuroFilter(*self._filter_args)  # validate the filter settings now
        self._next_id = 0
        self._previous: list[Pose] = []
        self._filters: dict[int, OneEuroFilter] = {}

    def reset(self) -> None:
        """Forget previous poses (the id counter keeps counting, so old ids are not reused)."""
        self._previous = []
        self._filters = {}

    def update(self, poses: Sequence[Pose]) -> list[Pose]:
        """New Pose objects (input order) with `id` set and, with smoothing, smoothed keypoints."""
        order = sorted(range(len(poses)), key=lambda i: poses[i].score, reverse=True)
        counts = similar_keypoint_counts(poses, self._previous, self.similarity)  # (current, previous)
        available = np.ones(len(self._previous), dtype=bool)
        ids: dict[int, int] = {}
        for i in order:
            candidates = np.where(available, counts[i], 0)
            best = int(np.argmax(candidates)) if len(candidates) else -1  # the first of equal counts, as the reference
            best_id = self._previous[best].id if best >= 0 else None
            if best >= 0 and candidates[best] >= self.min_keypoints and best_id is not None:
                ids[i] = best_id
                available[best] = False
            else:
                ids[i] = self._next_id
                self._next_id += 1
        tracked = [self._output(pose, ids[i]) for i, pose in enumerate(poses)]
        self._filters = {pose_id: f for pose_id, f in self._filters.items() if pose_id in ids.values()}
        self._previous = tracked
        return tracked

    def _output(self, pose: Pose, pose_id: int) -> Pose:
        keypoints = pose.keypoints.copy()
        if self.smooth:
            filter_ = self._filters.setdefault(pose_id, OneEuroFilter(*self._filter_args))
            keypoints[:, :2] = filter_(pose.keypoints[:, :2])
        return Pose(keypoints, pose.score, id=pose_id, grouped_count=pose.grouped_count)
