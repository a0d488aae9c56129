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
from scipy.optimize import linear_sum_assignment

from lightpose.pose import Pose
from lightpose.tracking import OneEuroFilter, PoseTracker

TRACKERS = ("motion", "reference")
_NO_MATCH = 1e6


class Tracker(Protocol):
    """What `PoseEstimator.stream` needs of a tracker: ids (and optionally smoothing) for one frame's poses."""

    def update(self, poses: Sequence[Pose]) -> list[Pose]:
        """New Pose objects (input order) with `id` set."""
        ...


@dataclasses.dataclass
class _Track:
    id: int
    xy: np.ndarray  # float64 (K, 2): last-known keypoints (observed, or carried along by the motion); NaN unknown
    age: np.ndarray  # int (K,): frames since each keypoint was observed
    velocity: np.ndarray  # float64 (2,): pixels per frame
    scale_rate: float  # log of the size change per frame
    last_seen: int  # frame number of the last observation
    hits: int  # frames observed
    smoother: OneEuroFilter | None

    def predict(self, gap: int) -> np.ndarray:
        """Keypoints `gap` frames after the last observation: the body moves at `velocity` and scales about its
        centre at `scale_rate`."""
        known = ~np.isnan(self.xy[:, 0])
        if not known.any():
            return self.xy.copy()
        centre = self.xy[known].mean(axis=0)
        return centre + self.velocity * gap + (self.xy - centre) * np.exp(self.scale_rate * gap)


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
        min_similarity: least similarity for a match (default 0.2).
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
        min_similarity: float = 0.2,
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
        OneEuroFilter(*self._filter_args)  # validate the filter settings now
        self._next_id = 0
        self._frame = 0
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        """Forget every track (the id counter keeps counting, so old ids are not reused)."""
        self._tracks = []

    def update(self, poses: Sequence[Pose]) -> list[Pose]:
        """New Pose objects (input order, fragments merged into their person) with `id` set and, with
        smoothing, smoothed keypoints."""
        self._frame += 1
        self._tracks = [t for t in self._tracks if self._frame - t.last_seen <= self.max_age]
        if not poses:
            return []
        variances = poses[0].skeleton.oks_variances().astype(np.float64)
        observed = np.stack([p.xy for p in poses]).astype(np.float64)  # (N, K, 2)
        gaps = np.array([self._frame - t.last_seen for t in self._tracks], dtype=np.int64)
        predicted = [t.predict(int(g)) for t, g in zip(self._tracks, gaps)]
        matches = self._assign(observed, predicted, gaps, variances)
        owner: dict[int, int] = dict(matches)  # pose -> track index
        merged = {i: p for i, p in enumerate(poses)}
        order = sorted(range(len(poses)), key=lambda i: poses[i].score, reverse=True)
        joined: list[int] = []
        for i in order:
            if i in owner:
                continue
            host = self._fragment_host(i, merged, owner, predicted, [j for j in order if j in owner or j in joined])
            if host is None:
                owner[i] = -1 - len(joined)  # born below
                joined.append(i)
            else:
                merged[host] = _merge(merged[host], merged.pop(i))
        out: dict[int, Pose] = {}
        for i, slot in owner.items():
            pose = merged[i]
            if slot >= 0:
                track = self._tracks[slot]
                self._observe(track, pose.xy.astype(np.float64), predicted[slot], int(gaps[slot]))
            else:
                track = self._birth(pose.xy.astype(np.float64))
            out[i] = self._output(track, pose, restart=slot >= 0 and gaps[slot] > 1)
        return [out[i] for i in sorted(out)]

    def _assign(
        self, observed: np.ndarray, predicted: list[np.ndarray], gaps: np.ndarray, variances: np.ndarray
    ) -> list[tuple[int, int]]:
        """(pose, track) pairs of the best assignment among the possible pairs."""
        if not predicted:
            return []
        tracks = np.stack(predicted)  # (M, K, 2)
        shared = ~np.isnan(observed[:, None, :, 0]) & ~np.isnan(tracks[None, :, :, 0])  # (N, M, K)
        count = shared.sum(axis=-1)
        box_o, box_t = _boxes(observed), _boxes(tracks)
        area = np.maximum(np.maximum.outer(_area(box_o), _area(box_t)), 1.0)  # (N, M)
        d2 = np.where(shared, ((observed[:, None] - tracks[None]) ** 2).sum(axis=-1), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            oks = np.where(shared, np.exp(-d2 / (2.0 * area[..., None] * variances)), 0.0).sum(-1) / count
            distance = np.sqrt(d2).sum(axis=-1) / count / np.sqrt(area)
        gate = self.max_distance + self.gate_growth * (gaps - 1)
        closeness = 1.0 - distance / gate
        w_oks, w_iou, w_distance = self.weights
        similarity = w_oks * np.nan_to_num(oks) + w_iou * _iou(box_o, box_t) + w_distance * np.nan_to_num(closeness)
        possible = (count > 0) & (closeness > 0) & (similarity >= self.min_similarity)
        rows, cols = linear_sum_assignment(np.where(possible, 1.0 - similarity, _NO_MATCH))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if possible[r, c]]

    def _fragment_host(
        self,
        i: int,
        poses: dict[int, Pose],
        owner: dict[int, int],
        predicted: list[np.ndarray],
        candidates: list[int],
    ) -> int | None:
        """The assigned pose whose person pose `i` is a fragment of (the nearest such), or None."""
        found = poses[i].found
        centre = poses[i].xy[found].mean(axis=0) if found.any() else None
        if centre is None:
            return None
        best, best_distance = None, np.inf
        for j in candidates:
            host = poses[j]
            if int((host.found & found).sum()) > self.fragment_shared or not host.found.any():
                continue
            points = [host.xy[host.found]]
            if owner[j] >= 0:
                track_xy = predicted[owner[j]]
                points.append(track_xy[~np.isnan(track_xy[:, 0])])
            xy = np.concatenate(points)
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            margin = self.fragment_margin * (hi - lo)
            if np.all(centre >= lo - margin) and np.all(centre <= hi + margin):
                distance = float(np.linalg.norm(centre - (lo + hi) / 2))
                if distance < best_distance:
                    best, best_distance = j, distance
        return best

    def _birth(self, xy: np.ndarray) -> _Track:
        track = _Track(
            id=self._next_id, xy=xy.copy(), age=np.zeros(len(xy), dtype=np.int64), velocity=np.zeros(2),
            scale_rate=0.0, last_seen=self._frame, hits=1, smoother=None,
        )  # fmt: skip
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _observe(self, track: _Track, xy: np.ndarray, predicted: np.ndarray, gap: int) -> None:
        """Update a track's motion and keypoints with its pose `gap` frames after its last observation."""
        found = ~np.isnan(xy[:, 0])
        shared = found & ~np.isnan(track.xy[:, 0])
        if shared.any():
            new, old = xy[shared], track.xy[shared]
            velocity = (new.mean(axis=0) - old.mean(axis=0)) / gap
            rate = 0.0
            if shared.sum() >= 2:
                spread_new = np.sqrt(((new - new.mean(axis=0)) ** 2).sum(axis=1).mean())
                spread_old = np.sqrt(((old - old.mean(axis=0)) ** 2).sum(axis=1).mean())
                if spread_new > 1.0 and spread_old > 1.0:
                    rate = float(np.log(spread_new / spread_old)) / gap
            keep = self.momentum if track.hits > 1 else 0.0
            track.velocity = keep * track.velocity + (1.0 - keep) * velocity
            track.scale_rate = keep * track.scale_rate + (1.0 - keep) * rate
        track.xy = np.where(found[:, None], xy, predicted)
        track.age = np.where(found, 0, track.age + gap)
        track.xy[track.age > self.max_age] = np.nan
        track.last_seen, track.hits = self._frame, track.hits + 1

    def _output(self, track: _Track, pose: Pose, *, restart: bool) -> Pose:
        keypoints = pose.keypoints.copy()
        if self.smooth:
            if track.smoother is None or restart:
                track.smoother = OneEuroFilter(*self._filter_args)
            keypoints[:, :2] = track.smoother(pose.keypoints[:, :2])
        return dataclasses.replace(pose, keypoints=keypoints, id=track.id)


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


def _boxes(xy: np.ndarray) -> np.ndarray:
    """(P, 4) x0, y0, x1, y1 of (P, K, 2) keypoints; zeros without keypoints."""
    found = ~np.isnan(xy[..., 0])
    lo = np.where(found[..., None], xy, np.inf).min(axis=1)
    hi = np.where(found[..., None], xy, -np.inf).max(axis=1)
    boxes = np.concatenate([lo, hi], axis=1)
    return np.where(found.any(axis=1)[:, None], boxes, 0.0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes a (N, 4) and b (M, 4); 0 where a box is empty."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


__all__ = ["TRACKERS", "MotionTracker", "Tracker", "make_tracker"]
