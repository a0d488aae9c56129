"""Drawing poses on images in the reference demo's style."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lightpose.skeleton import BBOX_COLOR, ID_COLOR

if TYPE_CHECKING:
    from lightpose.pose import Pose

Color = tuple[int, int, int]


def draw_poses(
    image: np.ndarray,
    poses: Sequence[Pose],
    *,
    bbox: bool = False,
    ids: bool | None = None,
    inplace: bool = False,
    limb_color: Color | None = None,
    keypoint_color: Color | None = None,
    radius: int = 3,
    thickness: int = 2,
    opacity: float = 0.4,
) -> np.ndarray:
    """Skeletons on a BGR uint8 (H, W, 3) image; keypoints are (x, y) pixels of that image.

    As the reference demo: the skeleton's drawn limbs (17 for the published layout; lines `thickness` 2) and
    their keypoints (filled circles of `radius` 3), blended as original * (1 - opacity) + drawing * opacity
    (0.6 / 0.4); then, unblended, the keypoints' bounding boxes (`bbox`) and "id: N" labels (`ids`; None = when
    any pose has an id). Colours default to each pose's skeleton colours. Coordinates are truncated to integer
    pixels, as the reference does. Returns a new image, or `image` itself drawn on when `inplace`.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"draw_poses needs a BGR uint8 image of shape (H, W, 3), got {got}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    drawing = image.copy()
    pixels = [_pixels(pose) for pose in poses]
    for pose, points in zip(poses, pixels):
        skeleton = pose.skeleton
        limbs = [skeleton.limbs[i] for i in skeleton.drawn_limbs or ()]
        colors = (limb_color or skeleton.limb_color, keypoint_color or skeleton.keypoint_color)
        _draw_skeleton(drawing, pose.found, points, limbs, colors, radius, thickness)
    out = cv2.addWeighted(image, 1.0 - opacity, drawing, opacity, 0.0, dst=image if inplace else None)
    if ids is None:
        ids = any(pose.id is not None for pose in poses)
    for pose, points in zip(poses, pixels):
        found = points[pose.found]
        if not len(found):
            continue
        (x0, y0), (x1, y1) = found.min(axis=0), found.max(axis=0) + 1  # cv2.boundingRect of the pixels
        if bbox:
            cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), BBOX_COLOR)
        if ids and pose.id is not None:
            cv2.putText(out, f"id: {pose.id}", (int(x0), int(y0) - 16), cv2.FONT_HERSHEY_COMPLEX, 0.5, ID_COLOR)
    return out


def _pixels(pose: Pose) -> np.ndarray:
    """int64 (K, 2) keypoint pixels, truncated toward zero as the reference; 0 where missing."""
    points = np.zeros((len(pose.keypoints), 2), dtype=np.int64)
    found = pose.found
    points[found] = pose.keypoints[found, :2].astype(np.int64)
    return points


def _draw_skeleton(
    canvas: np.ndarray,
    found: np.ndarray,
    points: np.ndarray,
    limbs: Sequence[tuple[int, int]],
    colors: tuple[Color, Color],
    radius: int,
    thickness: int,
) -> None:
    limb_color, keypoint_color = colors
    for a, b in limbs:
        if found[a] and found[b]:
            cv2.line(canvas, _pt(points[a]), _pt(points[b]), limb_color, thickness)
    for k in np.flatnonzero(found):
        cv2.circle(canvas, _pt(points[k]), radius, keypoint_color, -1)


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(xy[0]), int(xy[1])
