"""The saved-result format (a frame's JSON, one JSON Lines line per frame) beyond the poses themselves: which
skeleton the keypoints follow and each pose's grouped keypoint count, written and read here only.

A record names its skeleton (`skeleton`, `keypoint_names`); a layout that is not built in (`lightpose.skeleton.
SKELETONS`) is also stored whole as `skeleton_definition` (`Skeleton.to_dict()`), so a file is read back with the
layout it was written with. Reading checks every field and raises `ResultFormatError` naming the one that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lightpose.errors import LightposeError
from lightpose.skeleton import SKELETONS, Skeleton

SCHEMA_VERSION = 1


class ResultFormatError(LightposeError, ValueError):
    """A saved result (JSON record) that lightpose did not write or that was damaged or edited."""


def _fail(where: str, problem: str) -> ResultFormatError:
    return ResultFormatError(f"{where}: {problem}: the file is damaged, was edited or was not written by lightpose")


def skeleton_fields(skeleton: Skeleton) -> dict[str, Any]:
    """The record's skeleton fields: its name, keypoint names and, for a layout that is not built in, its definition."""
    fields: dict[str, Any] = {"skeleton": skeleton.name, "keypoint_names": list(skeleton.keypoints)}
    if SKELETONS.get(skeleton.name) != skeleton:
        fields["skeleton_definition"] = skeleton.to_dict()
    return fields


def check_version(record: Mapping[str, Any], where: str = "result") -> None:
    """ResultFormatError unless the record is a mapping of a schema version this lightpose reads."""
    if not isinstance(record, Mapping):
        raise _fail(where, f"a result must be a JSON object, got {type(record).__name__}")
    version = record.get("version")
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise ResultFormatError(
            f"{where}: field 'version' is {version!r}; this lightpose reads schema versions 1..{SCHEMA_VERSION}: "
            "upgrade lightpose to read newer files"
        )


def read_skeleton(record: Mapping[str, Any], skeleton: Skeleton | None, where: str = "result") -> Skeleton:
    """The skeleton a record was written with: `skeleton` when given (it must be the one the record names), else its
    stored definition, else the built-in one it names. ResultFormatError naming the field that does not fit."""
    name = record.get("skeleton")
    names = record.get("keypoint_names")
    if not isinstance(name, str):
        raise _fail(where, f"field 'skeleton' must be a skeleton name, got {name!r}")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(where, "field 'keypoint_names' must be a list of keypoint names")
    if skeleton is None:
        definition = record.get("skeleton_definition")
        if definition is not None:
            try:
                skeleton = Skeleton.from_dict(definition)
            except ValueError as error:
                raise _fail(where, f"field 'skeleton_definition' is not a valid skeleton ({error})") from None
        elif name in SKELETONS:
            skeleton = SKELETONS[name]
        else:
            raise ResultFormatError(
                f"{where}: skeleton {name!r} is not built in and the record stores no definition: pass the skeleton "
                "the results were made with (PoseResult.from_dict(record, skeleton=estimator.skeleton))"
            )
    if name != skeleton.name:
        raise ResultFormatError(
            f"{where}: field 'skeleton' is {name!r}, not the expected skeleton {skeleton.name!r}: read it with the "
            "skeleton it was written with"
        )
    if tuple(names) != skeleton.keypoints:
        raise _fail(where, f"field 'keypoint_names' {names} differs from skeleton {name!r}'s keypoints")
    return skeleton


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _optional_int(value: Any) -> bool:
    return value is None or type(value) is int


def pose_arrays(record: Any, skeleton: Skeleton, where: str) -> tuple[np.ndarray, float, int | None, int | None]:
    """(keypoints (K, 3) float32, score, id, grouped_count) of a pose record; ResultFormatError naming a bad field."""
    if not isinstance(record, Mapping):
        raise _fail(where, f"a pose must be a JSON object, got {type(record).__name__}")
    rows = record.get("keypoints")
    k = skeleton.num_keypoints
    if not isinstance(rows, list) or len(rows) != k:
        got = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise _fail(where, f"field 'keypoints' must list {k} entries (skeleton {skeleton.name!r}), got {got}")
    keypoints = np.full((k, 3), (np.nan, np.nan, 0.0), dtype=np.float32)
    for i, row in enumerate(rows):
        if row is None:
            continue
        if not isinstance(row, list) or len(row) != 3 or not all(_number(v) for v in row):
            raise _fail(where, f"field 'keypoints[{i}]' must be null or [x, y, score] of finite numbers, got {row!r}")
        keypoints[i] = row
    score: Any = record.get("score")
    if not _number(score):
        raise _fail(where, f"field 'score' must be a finite number, got {score!r}")
    pose_id, grouped = record.get("id"), record.get("grouped_count")
    if not _optional_int(pose_id):
        raise _fail(where, f"field 'id' must be an integer or null, got {pose_id!r}")
    if not _optional_int(grouped) or (grouped is not None and not 0 <= grouped <= k):
        raise _fail(where, f"field 'grouped_count' must be null or an integer 0..{k}, got {grouped!r}")
    return keypoints, float(score), pose_id, grouped


def frame_fields(record: Mapping[str, Any], where: str) -> tuple[int, int, Any, int | None, float | None]:
    """(width, height, source, frame, timestamp) of a frame record; ResultFormatError naming a bad field."""
    width, height = record.get("width"), record.get("height")
    for key, value in (("width", width), ("height", height)):
        if type(value) is not int or value < 0:
            raise _fail(where, f"field {key!r} must be a non-negative integer, got {value!r}")
    source, frame, timestamp = record.get("source"), record.get("frame"), record.get("timestamp")
    if source is not None and type(source) not in (str, int):
        raise _fail(where, f"field 'source' must be a path, URL, camera index or null, got {source!r}")
    if not _optional_int(frame):
        raise _fail(where, f"field 'frame' must be an integer or null, got {frame!r}")
    if timestamp is not None and not _number(timestamp):
        raise _fail(where, f"field 'timestamp' must be a finite number or null, got {timestamp!r}")
    if not isinstance(record.get("poses"), list):
        raise _fail(where, "field 'poses' must be a list")
    return width, height, source, frame, None if timestamp is None else float(timestamp)  # type: ignore[return-value]
