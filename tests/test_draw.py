"""draw_poses: the reference's skeleton style, bbox and id labels, copy vs in place."""

from __future__ import annotations

import numpy as np
import pytest

import lightpose
from lightpose.draw import draw_poses
from lightpose.pose import Pose
from lightpose.skeleton import BBOX_COLOR, KEYPOINT_INDEX, LIMB_COLOR, NUM_KEYPOINTS

GREY = 100


def canvas() -> np.ndarray:
    return np.full((120, 160, 3), GREY, dtype=np.uint8)


def two_point_pose(pose_id: int | None = None) -> Pose:
    """Only the neck (40.7, 30.2) and the right shoulder (100.9, 30.6): one drawn limb."""
    keypoints = np.full((NUM_KEYPOINTS, 3), np.nan, dtype=np.float32)
    keypoints[KEYPOINT_INDEX["neck"]] = (40.7, 30.2, 0.9)
    keypoints[KEYPOINT_INDEX["r_sho"]] = (100.9, 30.6, 0.8)
    keypoints[KEYPOINT_INDEX["l_ear"]] = (120.0, 90.0, 0.7)  # only on a gap-filling limb: a circle, no line
    return Pose(keypoints, 5.0, id=pose_id)


def blended(color: tuple[int, int, int]) -> np.ndarray:
    """The reference's addWeighted(original 0.6, drawing 0.4) of the grey canvas and `color`."""
    return np.round(0.6 * GREY + 0.4 * np.array(color)).astype(np.uint8)


def test_draws_limbs_and_keypoints_blended_on_a_copy() -> None:
    image = canvas()
    out = draw_poses(image, [two_point_pose()])
    assert out is not image
    assert np.all(image == GREY)  # input untouched
    np.testing.assert_array_equal(out[30, 70], blended(LIMB_COLOR))  # middle of the neck-shoulder line
    np.testing.assert_array_equal(out[30, 40], blended(LIMB_COLOR))  # keypoint circle, truncated coordinates
    np.testing.assert_array_equal(out[33, 40], blended(LIMB_COLOR))  # radius 3
    assert np.all(out[25, 40] == GREY)  # outside radius and line thickness
    np.testing.assert_array_equal(out[90, 120], blended(LIMB_COLOR))  # ear circle
    assert np.all(out[60, 110] == GREY)  # no line from the shoulder to the ear (not a drawn limb)
    assert np.all(out[100:, :40] == GREY)


def test_inplace_draws_into_the_given_image() -> None:
    image = canvas()
    out = draw_poses(image, [two_point_pose()], inplace=True)
    assert out is image
    np.testing.assert_array_equal(image[30, 70], blended(LIMB_COLOR))


def test_ids_are_drawn_when_poses_have_them_and_bbox_on_request() -> None:
    plain = draw_poses(canvas(), [two_point_pose()])
    tracked = draw_poses(canvas(), [two_point_pose(pose_id=7)])
    label_area = (slice(0, 16), slice(38, 100))  # text "id: 7" sits 16 px above the bbox top (y = 30)
    red = (tracked[label_area][..., 2] > 200) & (tracked[label_area][..., 1] < 60)
    assert red.any() and np.all(plain[label_area] == GREY)
    no_label = draw_poses(canvas(), [two_point_pose(pose_id=7)], ids=False)
    assert np.all(no_label[label_area] == GREY)

    boxed = draw_poses(canvas(), [two_point_pose()], bbox=True)
    np.testing.assert_array_equal(boxed[60, 40], BBOX_COLOR)  # left edge x = int(40.7), unblended
    np.testing.assert_array_equal(boxed[91, 80], BBOX_COLOR)  # bottom edge: y = 90 + 1 (as cv2.boundingRect)
    assert np.all(plain[60, 40] == GREY)


def test_no_poses_gives_an_equal_copy() -> None:
    image = canvas()
    out = draw_poses(image, [])
    assert out is not image and np.array_equal(out, image)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8), [[0]]],
)
def test_rejects_non_bgr_uint8_images(bad: object) -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        draw_poses(bad, [])  # type: ignore[arg-type]


def test_exported_from_the_package() -> None:
    assert lightpose.draw_poses is draw_poses
