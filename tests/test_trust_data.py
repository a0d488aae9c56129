"""Saved results read back with their own skeleton and grouped count, and checked field by field when read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lightpose.pose import Pose, PoseResult
from lightpose.result_format import ResultFormatError
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

FIVE = Skeleton.from_coco_category(
    {"name": "star", "keypoints": ["head", "lh", "rh", "lf", "rf"], "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5]]}
)


def five_result() -> PoseResult:
    keypoints = np.array([[10, 20, 0.9], [5, 30, 0.8], [15, 30, 0.7], [np.nan, np.nan, 0], [14, 50, 0.6]])
    pose = Pose(keypoints, score=2.5, grouped_count=3, skeleton=FIVE)
    return PoseResult((pose,), 64, 48, "a.jpg", skeleton=FIVE)


def test_json_round_trip_keeps_a_custom_skeleton_and_the_grouped_count():
    result = five_result()
    back = PoseResult.from_dict(json.loads(result.to_json()))
    assert len(back) == 1 and back.skeleton == FIVE and back[0].grouped_count == 3
    assert back.to_dict() == result.to_dict() and back.to_coco(1) == result.to_coco(1)


def test_jsonl_round_trip_per_frame():
    frames = [
        PoseResult(five_result().poses, 64, 48, "v.mp4", frame=i, timestamp=i / 10, skeleton=FIVE) for i in range(3)
    ]
    lines = "".join(r.to_json() + "\n" for r in frames).splitlines()
    back = [PoseResult.from_dict(json.loads(line)) for line in lines]
    assert [b.to_dict() for b in back] == [r.to_dict() for r in frames] and all(len(b) == 1 for b in back)


def test_published_skeleton_records_name_it_only():
    record = PoseResult((), 4, 4).to_dict()
    assert "skeleton_definition" not in record and PoseResult.from_dict(record).skeleton == OPENPOSE_COCO


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r.update(version=99), "version"),
        (lambda r: r.update(skeleton="nope"), "skeleton"),
        (lambda r: r.update(keypoint_names=["a"] * 5), "keypoint_names"),
        (lambda r: r["poses"][0].update(keypoints=[None] * 4), "keypoints"),
        (lambda r: r["poses"][0]["keypoints"].__setitem__(1, [1, "x", 2]), r"keypoints\[1\]"),
        (lambda r: r["poses"][0].update(score=float("inf")), "score"),
        (lambda r: r.update(width="64"), "width"),
        (lambda r: r["poses"][0].update(grouped_count=9), "grouped_count"),
    ],
)
def test_from_dict_names_the_wrong_field(edit, field):
    record = five_result().to_dict()
    edit(record)
    with pytest.raises(ResultFormatError, match=field):
        PoseResult.from_dict(record)


def test_constructors_refuse_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        Pose(np.full((18, 3), np.inf), score=1.0)
    with pytest.raises(ValueError, match="score"):
        Pose(np.zeros((18, 3)), score=float("nan"))
    with pytest.raises(ValueError, match="width"):
        PoseResult((), -1, 4)
