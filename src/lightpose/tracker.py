"""Pose ids that survive misses and occlusions: constant-velocity prediction, assignment on a combined cost.

The reference tracker (`lightpose.tracking.PoseTracker`) matches each pose only against the previous frame's
poses, so a person missed for one frame, or found with fewer keypoints, gets a new id. `MotionTracker` follows
the SORT recipe (Bewley et al. 2016, "Simple Online and Realtime Tracking": predict every track with a
constant-velocity model, solve the frame-to-track assignment with the Hungarian method, keep unmatched tracks
for `max_age` frames) with a pose cost: COCO's object keypoint similarity (OKS) on the keypoints both poses
have, the overlap of the keypoint boxes, and the distance to the predicted keypoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from lightpose.pose import Pose
from lightpose.tracking import OneEuroFilter, PoseTracker

TRACKERS = ("motion", "reference")
_NO_MATCH = 1e6


class Tracker(Protocol):
    """What `PoseEstimator.stream` needs of a tracker: ids (and optionally smoothing) for one frame's poses."""

    def update(self, poses: Sequence[Pose]) -> list[Pose]:
        """New Pose objects (input order) with `id` set."""
        ...


class _Tracks:
    """Every live track's state, one row per track."""

    def __init__(self, num_keypoints: int) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.xy = np.zeros((0, num_keypoints, 2))  # last-known keypoints (observed, or carried by the motion)
        self.age = np.zeros((0, num_keypoints), dtype=np.int64)  # frames since each keypoint was observed
        self.velocity = np.zeros((0, 2))  # pixels per frame
        self.scale_rate = np.zeros(0)  # log of the size change per frame
        self.last_seen = np.zeros(0, dtype=np.int64)  # frame number of the last observation
        self.hits = np.zeros(0, dtype=np.int64)  # frames observed

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, rows: np.ndarray) -> None:
        """Keep these rows, in this order."""
        for name in ("ids", "xy", "age", "velocity", "scale_rate", "last_seen", "hits"):
            setattr(self, name, getattr(self, name)[rows])

    def add(self, ids: np.ndarray, xy: np.ndarray, velocity: np.ndarray, frame: int) -> None:
        n = len(ids)
        self.ids = np.concatenate([self.ids, ids])
        self.xy = np.concatenate([self.xy, xy])
        self.age = np.concatenate([self.age, np.zeros((n, xy.shape[1]), dtype=np.int64)])
        self.velocity = np.concatenate([self.velocity, np.broadcast_to(velocity, (n, 2))])
        self.scale_rate = np.concatenate([self.scale_rate, np.zeros(n)])
        self.last_seen = np.concatenate([self.last_seen, np.full(n, frame, dtype=np.int64)])
        self.hits = np.concatenate([self.hits, np.ones(n, dtype=np.int64)])

    def predict(self, gaps: np.ndarray) -> np.ndarray:
        """(M, K, 2) keypoints `gaps` frames after each track's last observation: the body moves at its
        velocity and scales about its centre at its scale rate."""
        centre = _centres(self.xy)[:, None]
        g = gaps[:, None, None]
        return centre + self.velocity[:, None] * g + (self.xy - centre) * np.exp(self.scale_rate[:, None, None] * g)


class MotionTracker:
    """Stable pose ids through missed frames, occlusions and crossings; optional One-Euro smoothing per track.

    Each frame (`update`), every live track predicts its keypoints and box (constant velocity of the body,
    constant rate of size change, both estimated from the keypoints seen in consecutive observations with
    momentum `momentum`). Each (pose, track) pair scores

        similarity = oks_weight * OKS + iou_weight * box IoU + distance_weight * (1 - distance / gate)

    where OKS is COCO's keypoint similarity (the skeleton's sigmas) on the keypoints both have, with the larger
    of the two box areas as scale; the boxes are those of the pose's keypoints and of the track's predicted
    keypoints; distance is the mean distance of the shared keypoints to their predicted positions, in units of
    the square root of that area; gate = `max_distance` + `gate_growth` * (frames missed). A pair is possible
    only with a shared keypoint, distance < gate and similarity >= `min_similarity`; the assignment of poses to
    tracks maximises total similarity (scipy's `linear_sum_assignment`, not greedy).

    An unmatched pose that shares at most `fragment_shared` keypoints with an already assigned pose and lies in
    that person's box (grown by `fragment_margin` of its size on each side) is a fragment of that person: its
    keypoints fill the person's missing ones (its score is added) instead of taking a second id. Other unmatched
    poses start tracks with new ids from this tracker's counter (0, 1, 2, ...; never reused). A track not seen
    for more than `max_age` frames is forgotten: the person gets a new id when seen again.

    With `smooth`, each track owns a One-Euro filter (`freq`, `mincutoff`, `beta`, `dcutoff`, as
    `OneEuroFilter`) over its observed keypoints; it restarts after a missed frame, and per keypoint when that
    keypoint was missing in the track's last observation.

    Args:
        max_age: frames a track is kept without being seen (default 30: 2 s at 15 fps, 1 s at 30 fps).
        smooth: One-Euro smoothing of the output keypoints (default True).
        oks_weight: weight of OKS in the similarity (default 0.5).
        iou_weight: weight of the box IoU (default 0.2).
        distance_weight: weight of the closeness to the predicted keypoints (default 0.3).
        max_distance: gate on the distance to the prediction one frame after an observation, in person sizes
            (sqrt of the box area; default 0.5).
        gate_growth: gate added per missed frame, in person sizes (default 0.1).
        min_similarity: least similarity for a match (default 0.1).
        momentum: weight of the previous velocity and scale rate in their running estimates (default 0.5).
        fragment_shared: most keypoints a fragment may share with the person it joins (default 1).
        fragment_margin: growth of the person's box, per side, when testing fragments (default 0.2).
        freq, mincutoff, beta, dcutoff: the One-Euro filter's settings (defaults 15, 1, 0.05, 1: the reference's).
    """

    def __init__(
        self,
        *,
        max_age: int = 30,
        smooth: bool = True,
        oks_weight: float = 0.5,
        iou_weight: float = 0.2,
        distance_weight: float = 0.3,
        max_distance: float = 0.5,
        gate_growth: float = 0.1,
        min_similarity: float = 0.1,
        momentum: float = 0.5,
        fragment_shared: int = 1,
        fragment_margin: float = 0.2,
        freq: float = 15.0,
        mincutoff: float = 1.0,
        beta: float = 0.05,
        dcutoff: float = 1.0,
    ) -> None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be an int >= 0 (frames a lost person is remembered), got {max_age!r}")
        weights = (oks_weight, iou_weight, distance_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"oks_weight, iou_weight, distance_weight must be >= 0 with a positive sum, got {weights}")
        if max_distance <= 0 or gate_growth < 0 or not 0 <= momentum < 1 or fragment_shared < 0 or fragment_margin < 0:
            raise ValueError(
                "MotionTracker needs max_distance > 0, gate_growth >= 0, 0 <= momentum < 1, fragment_shared >= 0 "
                f"and fragment_margin >= 0; got max_distance={max_distance}, gate_growth={gate_growth}, "
                f"momentum={momentum}, fragment_shared={fragment_shared}, fragment_margin={fragment_margin}"
            )
        self.max_age, self.smooth = max_age, smooth
        self.weights = np.array(weights) / sum(weights)
        self.max_distance, self.gate_growth, self.min_similarity = max_distance, gate_growth, min_similarity
        self.momentum, self.fragment_shared, self.fragment_margin = momentum, fragment_shared, fragment_margin
        self._filter_args = (freq, mincutoff, beta, dcutoff)
        self._smoother = OneEuroFilter(*self._filter_args)  # one row per track; validates the settings now
        self._next_id = 0
        self._frame = 0
        self._tracks: _Tracks | None = None

    def reset(self) -> None:
        """Forget every track (the id counter keeps counting, so old ids are not reused)."""
        self._tracks = None
        self._smoother = OneEuroFilter(*self._filter_args)

    def update(self, poses: Sequence[Pose]) -> list[Pose]:
        """New Pose objects (input order, fragments merged into their person) with `id` set and, with
        smoothing, smoothed keypoints."""
        self._frame += 1
        if self._tracks is None:
            if not poses:
                return []
            self._tracks = _Tracks(poses[0].skeleton.num_keypoints)
        tracks = self._tracks
        alive = np.flatnonzero(self._frame - tracks.last_seen <= self.max_age)
        tracks.keep(alive)
        self._smoother.reindex(alive)
        if not poses:
            self._smooth(np.full(tracks.xy.shape, np.nan))  # no track seen: every smoothing restarts
            return []
        observed = np.stack([p.xy for p in poses]).astype(np.float64)  # (N, K, 2)
        gaps = self._frame - tracks.last_seen
        predicted = tracks.predict(gaps)
        variances = poses[0].skeleton.oks_variances().astype(np.float64)
        owner = dict(self._assign(observed, predicted, gaps, tracks.hits, variances))  # pose -> track row
        merged = dict(enumerate(poses))
        order = sorted(range(len(poses)), key=lambda i: poses[i].score, reverse=True)
        born: list[int] = []
        for i in order:
            if i in owner:
                continue
            hosts = [j for j in order if j in owner or j in born]
            host = self._fragment_host(merged, i, hosts, owner, predicted)
            if host is None:
                owner[i] = len(tracks) + len(born)
                born.append(i)
            else:
                merged[host] = _merge(merged[host], merged.pop(i))
        seen = np.array(sorted(owner), dtype=np.int64)
        rows = np.array([owner[i] for i in seen], dtype=np.int64)
        xy = np.stack([merged[i].xy for i in seen]).astype(np.float64)
        old = rows < len(tracks)
        self._observe(rows[old], xy[old], predicted[rows[old]], gaps[rows[old]])
        moving = rows[old][tracks.hits[rows[old]] > 2]  # tracks whose velocity is known
        common = np.median(tracks.velocity[moving], axis=0) if len(moving) else np.zeros(2)
        tracks.add(np.arange(self._next_id, self._next_id + len(born)), xy[~old], common, self._frame)
        self._next_id += len(born)
        self._smoother.reindex(np.r_[np.arange(len(tracks) - len(born)), np.full(len(born), -1)])
        inputs = np.full(tracks.xy.shape, np.nan)  # tracks not seen now restart their smoothing when seen again
        inputs[rows] = xy
        smoothed = self._smooth(inputs)
        out = []
        for i, row in zip(seen, rows):
            keypoints = merged[i].numpy()
            if smoothed is not None:
                keypoints[:, :2] = smoothed[row]
            out.append(dataclasses.replace(merged[i], keypoints=keypoints, id=int(tracks.ids[row])))
        return out

    def _smooth(self, inputs: np.ndarray) -> np.ndarray | None:
        return self._smoother(inputs) if self.smooth else None

    def _assign(
        self, observed: np.ndarray, predicted: np.ndarray, gaps: np.ndarray, hits: np.ndarray, variances: np.ndarray
    ) -> list[tuple[int, int]]:
        """(pose, track) pairs of the best assignment among the possible pairs."""
        from scipy.optimize import linear_sum_assignment  # here: scipy takes most of a second to import

        if not len(predicted):
            return []
        shared = ~np.isnan(observed[:, None, :, 0]) & ~np.isnan(predicted[None, :, :, 0])  # (N, M, K)
        count = shared.sum(axis=-1)
        box_o, box_t = _boxes(observed), _boxes(predicted)
        area = np.maximum.outer(_size2(box_o), _size2(box_t))  # (N, M)
        d2 = np.where(shared, ((observed[:, None] - predicted[None]) ** 2).sum(axis=-1), 0.0)
        per = np.maximum(count, 1)
        oks = np.exp(-d2 / (2.0 * area[..., None] * variances)).sum(axis=-1, where=shared) / per
        distance = np.sqrt(d2).sum(axis=-1) / per / np.sqrt(area)
        gate = self.max_distance * np.where(hits > 1, 1.0, 2.0) + self.gate_growth * (gaps - 1)
        closeness = 1.0 - distance / gate
        w_oks, w_iou, w_distance = self.weights
        similarity = w_oks * oks + w_iou * _iou(box_o, box_t) + w_distance * closeness
        possible = (count > 0) & (closeness > 0) & (similarity >= self.min_similarity)
        rows, cols = linear_sum_assignment(np.where(possible, 1.0 - similarity, _NO_MATCH))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if possible[r, c]]

    def _fragment_host(
        self, poses: dict[int, Pose], i: int, hosts: list[int], owner: dict[int, int], predicted: np.ndarray
    ) -> int | None:
        """The nearest assigned pose (of `hosts`) whose person pose `i` is a fragment of, or None."""
        found = poses[i].found
        if not found.any():
            return None
        centre = poses[i].xy[found].mean(axis=0)
        best, best_distance = None, np.inf
        for j in hosts:
            host = poses[j]
            if int((host.found & found).sum()) > self.fragment_shared:
                continue
            xy = host.xy[host.found]
            if owner[j] < len(predicted):  # a tracked person: its predicted keypoints too
                xy = np.concatenate([xy, predicted[owner[j]][~np.isnan(predicted[owner[j]][:, 0])]])
            if not len(xy):
                continue
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            margin = self.fragment_margin * (hi - lo)
            if np.all(centre >= lo - margin) and np.all(centre <= hi + margin):
                distance = float(np.linalg.norm(centre - (lo + hi) / 2))
                if distance < best_distance:
                    best, best_distance = j, distance
        return best

    def _observe(self, rows: np.ndarray, xy: np.ndarray, predicted: np.ndarray, gaps: np.ndarray) -> None:
        """Update tracks `rows` with their poses' keypoints `xy`, `gaps` frames after their last observation."""
        t = self._tracks
        assert t is not None
        found = ~np.isnan(xy[..., 0])
        shared = found & ~np.isnan(t.xy[rows, :, 0])
        count = shared.sum(axis=1)
        new, old = np.where(shared[..., None], xy, 0.0), np.where(shared[..., None], t.xy[rows], 0.0)
        per = np.maximum(count, 1)[:, None]
        mean_new, mean_old = new.sum(axis=1) / per, old.sum(axis=1) / per
        g = gaps[:, None].astype(np.float64)
        velocity = (mean_new - mean_old) / g
        spread_new = np.sqrt((((new - mean_new[:, None]) ** 2).sum(-1) * shared).sum(1) / per[:, 0])
        spread_old = np.sqrt((((old - mean_old[:, None]) ** 2).sum(-1) * shared).sum(1) / per[:, 0])
        valid = (count >= 2) & (spread_new > 1.0) & (spread_old > 1.0)
        rate = np.where(valid, np.log(np.where(valid, spread_new, 1.0) / np.where(valid, spread_old, 1.0)), 0.0)
        keep = np.where(t.hits[rows] > 1, self.momentum, 0.0)
        moved = count > 0
        t.velocity[rows] = np.where(moved[:, None], keep[:, None] * t.velocity[rows] + (1 - keep[:, None]) * velocity,
                                    t.velocity[rows])  # fmt: skip
        t.scale_rate[rows] = np.where(
            moved, keep * t.scale_rate[rows] + (1 - keep) * rate / g[:, 0], t.scale_rate[rows]
        )
        age = np.where(found, 0, t.age[rows] + gaps[:, None])
        t.xy[rows] = np.where(found[..., None], xy, np.where((age > self.max_age)[..., None], np.nan, predicted))
        t.age[rows] = age
        t.last_seen[rows] = self._frame
        t.hits[rows] += 1


def make_tracker(kind: str = "motion", *, smooth: bool = True, max_age: int | None = None) -> Tracker:
    """A tracker by name: "motion" (`MotionTracker`, the default) or "reference" (`PoseTracker`, the reference
    demo's one-frame greedy rule). `max_age` (frames a lost person is remembered) applies to "motion" only."""
    if kind == "motion":
        return MotionTracker(smooth=smooth) if max_age is None else MotionTracker(smooth=smooth, max_age=max_age)
    if kind == "reference":
        if max_age is not None:
            raise ValueError("max_age applies to tracker='motion'; the reference tracker remembers one frame")
        return PoseTracker(smooth=smooth)
    raise ValueError(f"unknown tracker {kind!r}; choose one of {', '.join(TRACKERS)}")


def _merge(host: Pose, fragment: Pose) -> Pose:
    """`host` with the keypoints only `fragment` has, and both scores added."""
    keypoints = host.numpy()
    fill = ~host.found & fragment.found
    keypoints[fill] = fragment.keypoints[fill]
    return dataclasses.replace(host, keypoints=keypoints, score=host.score + fragment.score, grouped_count=None)


def _centres(xy: np.ndarray) -> np.ndarray:
    """(P, 2) mean of (P, K, 2) keypoints' found ones; 0 without any."""
    found = ~np.isnan(xy[..., 0])
    return np.where(found[..., None], xy, 0.0).sum(axis=1) / np.maximum(found.sum(axis=1), 1)[:, None]


def _boxes(xy: np.ndarray) -> np.ndarray:
    """(P, 4) x0, y0, x1, y1 of (P, K, 2) keypoints; zeros without keypoints."""
    found = ~np.isnan(xy[..., 0])
    lo = np.where(found[..., None], xy, np.inf).min(axis=1)
    hi = np.where(found[..., None], xy, -np.inf).max(axis=1)
    boxes = np.concatenate([lo, hi], axis=1)
    return np.where(found.any(axis=1)[:, None], boxes, 0.0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _size2(boxes: np.ndarray) -> np.ndarray:
    """Squared person size of keypoint boxes: the box area, at least a quarter of its longer side squared (a
    side view or a few keypoints in a line have a thin box) and at least 100 square pixels."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.maximum(np.maximum(w * h, np.maximum(w, h) ** 2 / 4), 100.0)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes a (N, 4) and b (M, 4); 0 where a box is empty."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


__all__ = ["TRACKERS", "MotionTracker", "Tracker", "make_tracker"]
