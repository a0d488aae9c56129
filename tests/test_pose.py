import dataclasses
import json
import math

import numpy as np
import pytest

from lightpose import Keypoint, Pose
from lightpose.tracking import keypoint_similarity


def make_pose(points: dict[int, tuple[float, float]], score: float = 5.0) -> Pose:
    keypoints = np.full((18, 3), np.nan, dtype=np.float32)
    for index, (x, y) in points.items():
        keypoints[index] = (x, y, 0.9)
    return Pose(keypoints, score=score)


def test_pose_views_bbox_and_lookup():
    pose = make_pose({0: (10, 20), 1: (12, 40), 7: (30, 60)})
    assert pose.num_keypoints == 3
    assert pose.bbox == (10.0, 20.0, 20.0, 40.0)
    assert pose["nose"] == Keypoint("nose", 10.0, 20.0, pytest.approx(0.9))
    assert pose["l_ank"] is None
    assert [k.name for k in pose] == ["nose", "neck", "l_wri"]
    with pytest.raises(KeyError, match="unknown keypoint"):
        pose["left_wrist"]


def test_pose_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        Pose(np.zeros((17, 3)), score=1.0)


def test_empty_pose_has_no_bbox():
    assert make_pose({}).bbox is None


def test_to_coco_matches_the_reference_conversion():
    # internal 0 nose -> COCO 0, internal 5 l_sho -> COCO 5, internal 2 r_sho -> COCO 6; the neck is dropped.
    pose = make_pose({0: (1, 2), 1: (3, 4), 2: (5, 6), 5: (7, 8)}, score=2.0)
    record = pose.to_coco(42)
    kpts = np.array(record["keypoints"]).reshape(17, 3)
    assert record["image_id"] == 42 and record["category_id"] == 1
    assert kpts[0].tolist() == [1.5, 2.5, 1.0]
    assert kpts[5].tolist() == [7.5, 8.5, 1.0]
    assert kpts[6].tolist() == [5.5, 6.5, 1.0]
    assert np.count_nonzero(kpts[:, 2]) == 3
    assert record["score"] == pytest.approx(2.0 * 3)  # score x (found - 1)


def test_to_coco_uses_the_grouped_count_when_known():
    pose = make_pose({0: (1, 2), 1: (3, 4), 2: (5, 6), 16: (7, 8)}, score=2.0)
    pose = dataclasses.replace(pose, grouped_count=3)  # an ear from a gap-filling limb is not counted
    assert pose.to_coco(1)["score"] == pytest.approx(4.0)


def test_similarity_counts_close_keypoints():
    a = make_pose({i: (100 + 10 * i, 100 + 20 * i) for i in range(6)})
    b = make_pose({i: (100 + 10 * i + 1, 100 + 20 * i) for i in range(6)})
    far = make_pose({i: (400 + 10 * i, 100 + 20 * i) for i in range(6)})
    assert keypoint_similarity(a, b) == 6
    assert keypoint_similarity(a, far) == 0
    assert keypoint_similarity(a, make_pose({})) == 0


def test_similarity_uses_integer_bounding_box_area():
    # Integer box (cv2.boundingRect of truncated keypoints): 10 x 11 = 110; the float box would be 9.5 x 10.5.
    d = math.sqrt(0.40)
    a = make_pose({0: (0, 0), 1: (9.5, 10.5)})
    b = make_pose({0: (d, 0), 1: (9.5, 10.5)})
    nose_var = (2 * 0.026) ** 2
    assert math.exp(-0.40 / (2 * 110 * nose_var)) > 0.5 > math.exp(-0.40 / (2 * 9.5 * 10.5 * nose_var))
    assert keypoint_similarity(a, b) == 2


def test_pose_is_immutable_and_missing_scores_are_zero():
    keypoints = np.full((18, 3), np.nan, dtype=np.float32)
    keypoints[3] = (1, 2, 0.7)
    pose = Pose(keypoints, score=1.0)
    keypoints[3] = (9, 9, 9)  # the pose keeps its own copy
    assert pose["r_elb"] == Keypoint("r_elb", 1.0, 2.0, pytest.approx(0.7))
    assert pose.conf[0] == 0 and np.isnan(pose.xy[0]).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        pose.id = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        pose.keypoints[0, 0] = 1.0
    assert dataclasses.replace(pose, id=7).id == 7


def test_to_dict_is_json_ready():
    pose = dataclasses.replace(make_pose({0: (10, 20), 1: (12, 40)}, score=3.0), id=4)
    record = json.loads(json.dumps(pose.to_dict()))
    assert record == {
        "id": 4,
        "score": 3.0,
        "bbox": [10.0, 20.0, 2.0, 20.0],
        "num_keypoints": 2,
        "grouped_count": None,
        "keypoints": [[10.0, 20.0, pytest.approx(0.9)], [12.0, 40.0, pytest.approx(0.9)]] + [None] * 16,
    }
    assert Pose.from_dict(record).to_dict() == pose.to_dict()
