"""Typed results: `Keypoint`, `Pose` (one person) and `PoseResult` (one image or frame); the one JSON schema."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import numpy as np

from lightpose import result_format
from lightpose.result_format import SCHEMA_VERSION
from lightpose.skeleton import OPENPOSE_COCO, Skeleton


class Keypoint(NamedTuple):
    """One found keypoint: name, x and y in image pixels, heatmap score."""

    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True, eq=False, repr=False)
class Pose:
    """One person (immutable: derive changed copies with `dataclasses.replace(pose, id=...)`).

    keypoints: float32 (K, 3), read-only: x, y in image pixels and the heatmap score, in `skeleton.keypoints`
    order (K = 18 for the published layout); x and y are NaN and the score is 0 where a keypoint was not found.
    score: the grouping score of the pose (sum of keypoint and limb scores, the reference's entry[18]).
    id: set by tracking, else None.
    grouped_count: the decoder's keypoint count (the reference's entry[19]: ears attached by the
    shoulder-ear gap-filling limbs are not counted); None means "use num_keypoints".
    skeleton: the keypoint layout (names, limbs, sigmas).
    """

    keypoints: np.ndarray
    score: float
    id: int | None = None
    grouped_count: int | None = None
    skeleton: Skeleton = OPENPOSE_COCO

    def __post_init__(self) -> None:
        kpts = np.array(self.keypoints, dtype=np.float32)
        k = self.skeleton.num_keypoints
        if kpts.shape != (k, 3):
            raise ValueError(
                f"Pose.keypoints must have shape ({k}, 3) for skeleton {self.skeleton.name!r}, got {kpts.shape}"
            )
        kpts[np.isnan(kpts[:, 0]) | np.isnan(kpts[:, 1]), :] = (np.nan, np.nan, 0.0)
        if np.isinf(kpts[:, :2]).any() or not np.isfinite(kpts[:, 2]).all():
            raise ValueError(
                "Pose.keypoints must hold finite x, y and score for every found keypoint (NaN x, y mark a missing "
                "one), got inf or a NaN score: check the maps or the values the pose was built from"
            )
        score = float(self.score)
        if not math.isfinite(score):
            raise ValueError(f"Pose.score must be a finite number, got {score}")
        if self.grouped_count is not None:
            object.__setattr__(self, "grouped_count", int(self.grouped_count))
        kpts.flags.writeable = False
        object.__setattr__(self, "keypoints", kpts)
        object.__setattr__(self, "score", score)

    def __repr__(self) -> str:
        box = "None" if self.bbox is None else "(" + ", ".join(f"{v:.1f}" for v in self.bbox) + ")"
        found = f"{self.num_keypoints}/{len(self.keypoints)}"
        return f"Pose(score={self.score:.3f}, keypoints={found}, bbox={box}, id={self.id})"

    @property
    def found(self) -> np.ndarray:
        """bool (K,): which keypoints were found."""
        return ~np.isnan(self.keypoints[:, 0])

    @property
    def num_keypoints(self) -> int:
        """Number of found keypoints."""
        return int(self.found.sum())

    @property
    def xy(self) -> np.ndarray:
        """float32 (K, 2) view: x, y in image pixels (NaN where missing)."""
        return self.keypoints[:, :2]

    @property
    def conf(self) -> np.ndarray:
        """float32 (K,) view: keypoint scores (0 where missing)."""
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
        index = self.skeleton.index.get(name)
        if index is None:
            raise KeyError(f"unknown keypoint {name!r}; known: {', '.join(self.skeleton.keypoints)}")
        x, y, s = self.keypoints[index]
        if np.isnan(x):
            return None
        return Keypoint(name, float(x), float(y), float(s))

    def __iter__(self) -> Iterator[Keypoint]:
        """Iterate over the found keypoints."""
        names = self.skeleton.keypoints
        for i in np.flatnonzero(self.found):
            x, y, score = self.keypoints[i]
            yield Keypoint(names[i], float(x), float(y), float(score))

    def __len__(self) -> int:
        return self.num_keypoints

    def numpy(self) -> np.ndarray:
        """A writable copy of the (K, 3) keypoint array."""
        return self.keypoints.copy()

    def to_dict(self) -> dict[str, Any]:
        """The per-pose part of the frame schema (see `PoseResult.to_dict`): id, score, bbox [x, y, w, h] or
        null, num_keypoints, grouped_count (or null), keypoints: K entries [x, y, score] in image pixels, null
        where not found."""
        return {
            "id": self.id,
            "score": self.score,
            "bbox": None if self.bbox is None else list(self.bbox),
            "num_keypoints": self.num_keypoints,
            "grouped_count": self.grouped_count,
            "keypoints": [None if np.isnan(x) else [float(x), float(y), float(s)] for x, y, s in self.keypoints],
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], skeleton: Skeleton = OPENPOSE_COCO, *, where: str = "pose") -> Pose:
        """The Pose `to_dict` wrote, in `skeleton`'s layout; `lightpose.result_format.ResultFormatError` (a
        ValueError) naming the field that is wrong."""
        keypoints, score, pose_id, grouped = result_format.pose_arrays(record, skeleton, where)
        return cls(keypoints, score, pose_id, grouped, skeleton)

    def to_coco(self, image_id: int, *, shift: float = 0.5) -> dict[str, Any]:
        """COCO results record, as the reference val.py writes it.

        With a COCO mapping in the skeleton (the published layout: 17 of its 18 keypoints), keypoints are in COCO-17
        order, else in the skeleton's order. Found keypoints get (x + shift, y + shift, 1), missing ones (0, 0, 0);
        the record's score is pose score x max(0, found - 1) (the reference discounts the neck).
        """
        coco_index = self.skeleton.coco_index
        size = (max(coco_index) + 1) if coco_index is not None else self.skeleton.num_keypoints
        coco = np.zeros((size, 3), dtype=np.float64)
        found = self.found
        for internal in range(self.skeleton.num_keypoints):
            target = internal if coco_index is None else coco_index[internal]
            if target < 0 or not found[internal]:
                continue
            x, y = self.keypoints[internal, :2]
            coco[target] = (float(x) + shift, float(y) + shift, 1.0)
        num_found = self.num_keypoints if self.grouped_count is None else self.grouped_count
        return {
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [float(v) for v in coco.reshape(-1)],
            "score": self.score * max(0.0, float(num_found) - 1.0),
        }


@dataclass(frozen=True, eq=False, repr=False)
class PoseResult(Sequence[Pose]):
    """The poses of one image or video frame: a read-only sequence of `Pose` with what they came from.

    width, height: the image size in pixels. source: the path, URL or camera index the image came from (None for an
    array). frame: 0-based frame number in a video or stream (None for images); timestamp: seconds from the start
    of the video or stream (None for images). speed: milliseconds per stage (preprocess, network, decode,
    tracking). image: the BGR image the poses were found in (kept for `plot` and `save`; not serialised).
    """

    poses: tuple[Pose, ...]
    width: int
    height: int
    source: str | int | None = None
    frame: int | None = None
    timestamp: float | None = None
    speed: Mapping[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None
    skeleton: Skeleton = OPENPOSE_COCO

    def __post_init__(self) -> None:
        object.__setattr__(self, "poses", tuple(self.poses))
        object.__setattr__(self, "speed", dict(self.speed))
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"PoseResult.{key} must be a non-negative integer (pixels), got {value!r}")
        if self.timestamp is not None and not math.isfinite(self.timestamp):
            raise ValueError(f"PoseResult.timestamp must be a finite number of seconds or None, got {self.timestamp}")
        if isinstance(self.source, os.PathLike):
            object.__setattr__(self, "source", os.fspath(self.source))

    @overload
    def __getitem__(self, index: int) -> Pose: ...

    @overload
    def __getitem__(self, index: slice) -> PoseResult: ...

    def __getitem__(self, index: int | slice) -> Pose | PoseResult:
        if isinstance(index, slice):
            return dataclasses.replace(self, poses=self.poses[index])
        return self.poses[index]

    def __len__(self) -> int:
        return len(self.poses)

    def __iter__(self) -> Iterator[Pose]:
        return iter(self.poses)

    def __eq__(self, other: object) -> bool:
        """Equal to another PoseResult with the same metadata and poses, or to a list of the same poses."""
        if isinstance(other, PoseResult):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(a is b for a, b in zip(self.poses, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = "" if self.source is None else f", source={self.source!r}"
        when = "" if self.frame is None else f", frame={self.frame}"
        return f"PoseResult({len(self)} poses, {self.width}x{self.height}{where}{when})"

    @property
    def keypoints(self) -> np.ndarray:
        """float32 (N, K, 3): x, y in image pixels and score; NaN x, y (score 0) where a keypoint was not found."""
        if not self.poses:
            return np.zeros((0, self.skeleton.num_keypoints, 3), dtype=np.float32)
        return np.stack([p.keypoints for p in self.poses])

    @property
    def scores(self) -> np.ndarray:
        """float64 (N,): pose scores."""
        return np.array([p.score for p in self.poses], dtype=np.float64)

    @property
    def boxes(self) -> np.ndarray:
        """float32 (N, 4): x, y, w, h of each pose's found keypoints (NaN for a pose without keypoints)."""
        rows = [p.bbox if p.bbox is not None else (np.nan,) * 4 for p in self.poses]
        return np.array(rows, dtype=np.float32).reshape(-1, 4)

    @property
    def ids(self) -> np.ndarray:
        """int64 (N,): tracking ids, -1 where a pose has none."""
        return np.array([-1 if p.id is None else p.id for p in self.poses], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """THE JSON schema of a frame, written by every JSON output of lightpose (README: "Output schema")."""
        return {
            "version": SCHEMA_VERSION,
            "source": self.source,
            "frame": self.frame,
            "timestamp": self.timestamp,
            "width": self.width,
            "height": self.height,
            **result_format.skeleton_fields(self.skeleton),
            "poses": [pose.to_dict() for pose in self.poses],
        }

    def to_json(self, **json_kwargs: Any) -> str:
        """`to_dict()` as a JSON string (strict JSON: NaN never appears; missing values are null)."""
        return json.dumps(self.to_dict(), allow_nan=False, **json_kwargs)

    @classmethod
    def from_dict(
        cls, record: Mapping[str, Any], skeleton: Skeleton | None = None, *, where: str = "result"
    ) -> PoseResult:
        """The PoseResult `to_dict` wrote (without image and speed), in the skeleton the record names (its stored
        definition or the built-in one; `skeleton`, when given, must be that one). `where` (e.g. the file name)
        starts error messages. `lightpose.result_format.ResultFormatError` (a ValueError) naming the field that is
        wrong: schema version, skeleton, keypoint names, shapes, types, non-finite numbers."""
        result_format.check_version(record, where)
        skeleton = result_format.read_skeleton(record, skeleton, where)
        width, height, source, frame, timestamp = result_format.frame_fields(record, where)
        poses = tuple(Pose.from_dict(p, skeleton, where=f"{where}: poses[{i}]") for i, p in enumerate(record["poses"]))
        return cls(poses, width, height, source, frame, timestamp, skeleton=skeleton)

    def to_coco(self, image_id: int) -> list[dict[str, Any]]:
        """COCO results records of all poses (see `Pose.to_coco`)."""
        return [pose.to_coco(image_id) for pose in self.poses]

    def plot(self, image: np.ndarray | None = None, **draw_options: Any) -> np.ndarray:
        """An annotated copy of the image (or of `image`): `lightpose.draw_poses` options (bbox, ids, colours...)."""
        from lightpose.draw import draw_poses

        base = self.image if image is None else image
        if base is None:
            raise ValueError("this PoseResult holds no image (pass one: result.plot(image))")
        return draw_poses(base, self, **draw_options)

    def save(self, path: str | os.PathLike, **draw_options: Any) -> None:
        """Write `plot(**draw_options)` to an image file (format from the suffix), atomically."""
        from lightpose.io import write_image

        write_image(path, self.plot(**draw_options))
