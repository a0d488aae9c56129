"""Pose ids across frames (the reference's greedy keypoint-similarity rule) and One-Euro keypoint smoothing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from lightpose.pose import Pose


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

    def reindex(self, rows: Sequence[int] | np.ndarray) -> None:
        """For a filter over a batch of independent signals (axis 0): new row i continues old row `rows[i]`,
        or starts fresh where `rows[i]` < 0. Lets one filter smooth a changing set of tracks."""
        if self._x_prev is None or self._dx_hat is None or self._x_hat is None:
            return
        rows = np.asarray(rows, dtype=np.int64)
        kept = rows >= 0

        def take(state: np.ndarray) -> np.ndarray:
            out = np.full((len(rows), *state.shape[1:]), np.nan)
            out[kept] = state[rows[kept]]
            return out

        self._x_prev, self._dx_hat, self._x_hat = take(self._x_prev), take(self._dx_hat), take(self._x_hat)


class PoseTracker:
    """Gives poses stable ids across frames and optionally smooths their keypoints.

    `update(poses)` follows the reference `track_poses`: current poses, by descending score, each take the
    not-yet-matched previous pose with the most similar keypoints (`keypoint_similarity` >
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
        return dataclasses.replace(pose, keypoints=keypoints, id=pose_id)


def keypoint_similarity(a: Pose, b: Pose, threshold: float = 0.5) -> int:
    """Number of keypoints found in both poses whose OKS-like similarity exceeds `threshold`.

    The reference tracker's rule: area = the larger of the two integer bounding-box areas
    (cv2.boundingRect of the keypoints truncated to int), sim = exp(-d^2 / (2 (area + eps) var_k)).
    """
    return int(similar_keypoint_counts([a], [b], threshold)[0, 0])


def similar_keypoint_counts(current: Sequence[Pose], previous: Sequence[Pose], threshold: float = 0.5) -> np.ndarray:
    """`keypoint_similarity` of every (current, previous) pair at once: int64 (len(current), len(previous))."""
    if not current or not previous:
        return np.zeros((len(current), len(previous)), dtype=np.int64)
    xy_a = np.stack([p.keypoints[:, :2] for p in current])  # (N, K, 2) float32, NaN where missing
    xy_b = np.stack([p.keypoints[:, :2] for p in previous])  # (M, K, 2)
    area = np.maximum.outer(_bbox_areas(xy_a), _bbox_areas(xy_b))  # (N, M)
    d2 = ((xy_a[:, None] - xy_b[None]) ** 2).sum(axis=-1)  # (N, M, K), NaN unless found in both
    variances = current[0].skeleton.oks_variances()
    sim = np.exp(-d2 / (2.0 * (area[..., None] + np.spacing(1)) * variances))
    return (sim > threshold).sum(axis=-1)


def _bbox_areas(xy: np.ndarray) -> np.ndarray:
    """Integer bounding-box areas (w + 1) * (h + 1) of (P, K, 2) keypoints truncated to int; 0 without keypoints."""
    found = ~np.isnan(xy[..., 0])
    ints = np.where(found[..., None], np.trunc(np.nan_to_num(xy)), 0.0)
    lo = np.where(found[..., None], ints, np.inf).min(axis=1)
    hi = np.where(found[..., None], ints, -np.inf).max(axis=1)
    sides = np.where(found.any(axis=1)[:, None], hi - lo + 1, 0.0)
    return sides[:, 0] * sides[:, 1]
