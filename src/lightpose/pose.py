"""Typed results: `Keypoint` and `Pose`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from lightpose.skeleton import (
    INTERNAL_TO_COCO,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    NUM_COCO_KEYPOINTS,
    NUM_KEYPOINTS,
    OKS_VARS,
)


class Keypoint(NamedTuple):
    """One found keypoint: name, x and y in image pixels, heatmap score."""

    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True, eq=False)
class Pose:
    """One person (immutable: derive changed copies with `dataclasses.replace(pose, id=...)`).

    keypoints: float32 (18, 3), read-only: x, y in image pixels and the heatmap score, internal 18-keypoint order
    (`lightpose.skeleton.KEYPOINT_NAMES`); x and y are NaN and the score is 0 where a keypoint was not found.
    score: the grouping score of the pose (sum of keypoint and limb scores, the reference's entry[18]).
    id: set by tracking, else None.
    grouped_count: the decoder's keypoint count (the reference's entry[19]: ears attached by the
    shoulder-ear gap-filling limbs are not counted); None means "use num_keypoints".
    """

    keypoints: np.ndarray
    score: float
    id: int | None = None
    grouped_count: int | None = None

    def __post_init__(self) -> None:
        kpts = np.array(self.keypoints, dtype=np.float32)
        if kpts.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"Pose.keypoints must have shape ({NUM_KEYPOINTS}, 3), got {kpts.shape}")
        kpts[np.isnan(kpts[:, 0]), :] = (np.nan, np.nan, 0.0)
        kpts.flags.writeable = False
        object.__setattr__(self, "keypoints", kpts)
        object.__setattr__(self, "score", float(self.score))

    @property
    def found(self) -> np.ndarray:
        """bool (18,): which keypoints were found."""
        return ~np.isnan(self.keypoints[:, 0])

    @property
    def num_keypoints(self) -> int:
        """Number of found keypoints."""
        return int(self.found.sum())

    @property
    def xy(self) -> np.ndarray:
        """float32 (18, 2) view: x, y in image pixels (NaN where missing)."""
        return self.keypoints[:, :2]

    @property
    def conf(self) -> np.ndarray:
        """float32 (18,) view: keypoint scores (0 where missing)."""
        return self.keypoints[:, 2]

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """(x, y, w, h) of the found keypoints in image pixels, or None when no keypoint was found."""
        found = self.found
        if not found.any():
            return None
        xy = self.keypoints[found, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)

    def __getitem__(self, name: str) -> Keypoint | None:
        """The keypoint called `name` (e.g. "l_wri"), or None when it was not found."""
        if name not in KEYPOINT_INDEX:
            raise KeyError(f"unknown keypoint {name!r}; known: {', '.join(KEYPOINT_NAMES)}")
        x, y, s = self.keypoints[KEYPOINT_INDEX[name]]
        if np.isnan(x):
            return None
        return Keypoint(name, float(x), float(y), float(s))

    def __iter__(self) -> Iterator[Keypoint]:
        """Iterate over the found keypoints."""
        for i in np.flatnonzero(self.found):
            x, y, score = self.keypoints[i]
            yield Keypoint(KEYPOINT_NAMES[i], float(x), float(y), float(score))

    def __len__(self) -> int:
        return self.num_keypoints

    def numpy(self) -> np.ndarray:
        """A writable copy of the (18, 3) keypoint array."""
        return self.keypoints.copy()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: keypoints as {name: [x, y, score]} for found ones, score, bbox, id."""
        return {
            "id": self.id,
            "score": self.score,
            "bbox": None if self.bbox is None else list(self.bbox),
            "keypoints": {kp.name: [kp.x, kp.y, kp.score] for kp in self},
        }

    def to_coco(self, image_id: int, *, shift: float = 0.5) -> dict[str, Any]:
        """COCO results record with 17 keypoints, as the reference val.py writes it.

        Found keypoints get (x + shift, y + shift, 1), missing ones (0, 0, 0); the record's score is
        pose score x max(0, found - 1) (the reference discounts the neck).
        """
        coco = np.zeros((NUM_COCO_KEYPOINTS, 3), dtype=np.float64)
        found = self.found
        for internal, coco_index in enumerate(INTERNAL_TO_COCO):
            if coco_index < 0 or not found[internal]:
                continue
            x, y = self.keypoints[internal, :2]
            coco[coco_index] = (float(x) + shift, float(y) + shift, 1.0)
        num_found = self.num_keypoints if self.grouped_count is None else self.grouped_count
        return {
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [float(v) for v in coco.reshape(-1)],
            "score": self.score * max(0.0, float(num_found) - 1.0),
        }


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
    xy_a = np.stack([p.keypoints[:, :2] for p in current])  # (N, 18, 2) float32, NaN where missing
    xy_b = np.stack([p.keypoints[:, :2] for p in previous])  # (M, 18, 2)
    area = np.maximum.outer(_bbox_areas(xy_a), _bbox_areas(xy_b))  # (N, M)
    d2 = ((xy_a[:, None] - xy_b[None]) ** 2).sum(axis=-1)  # (N, M, 18), NaN unless found in both
    sim = np.exp(-d2 / (2.0 * (area[..., None] + np.spacing(1)) * OKS_VARS))
    return (sim > threshold).sum(axis=-1)


def _bbox_areas(xy: np.ndarray) -> np.ndarray:
    """Integer bounding-box areas (w + 1) * (h + 1) of (P, 18, 2) keypoints truncated to int; 0 without keypoints."""
    found = ~np.isnan(xy[..., 0])
    ints = np.where(found[..., None], np.trunc(np.nan_to_num(xy)), 0.0)
    lo = np.where(found[..., None], ints, np.inf).min(axis=1)
    hi = np.where(found[..., None], ints, -np.inf).max(axis=1)
    sides = np.where(found.any(axis=1)[:, None], hi - lo + 1, 0.0)
    return sides[:, 0] * sides[:, 1]
