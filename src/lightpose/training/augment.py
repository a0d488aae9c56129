"""Training augmentations with the reference's parameters and semantics, random draws made explicit.

Every transform has ``sample_params(rng)`` (draws from a ``numpy.random.Generator``), a deterministic
``apply(sample, params)`` and ``__call__(sample, rng)`` = apply with freshly drawn parameters.
The reference chain (built by CocoKeypointsDataset) is ConvertKeypoints, Scale, Rotate, CropPad, Flip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from lightpose.skeleton import INTERNAL_TO_COCO, NECK, NUM_COCO_KEYPOINTS, OPENPOSE_COCO, Skeleton

PAD_BGR = (128, 128, 128)
_COCO_LEFT_SHOULDER, _COCO_RIGHT_SHOULDER = 5, 6


@dataclass
class TrainingSample:
    """One person-centred sample while it is being augmented.

    image: (H, W, 3) uint8 BGR. mask: (H, W) float32 (uint8 after CropPad); 1 where the loss counts, 0 on crowds.
    keypoints: (P, K, 3) float64 (x, y, v) in image pixels; row 0 = main person, then the other persons; for the
    published layout K = 17 (COCO order) before ConvertKeypoints, 18 (internal order) after; for any other skeleton
    its own keypoints throughout. v: 0 occluded, 1 visible, 2 absent.
    objpos: (2,) float64 main person's centre (x, y). scale_provided: main person's bbox height / 368.
    """

    image: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray
    objpos: np.ndarray
    scale_provided: float


class Transform:
    """Base: draw parameters with ``sample_params``, then ``apply`` them."""

    def sample_params(self, rng: np.random.Generator) -> Any:
        return None

    def apply(self, sample: TrainingSample, params: Any) -> TrainingSample:
        raise NotImplementedError

    def __call__(self, sample: TrainingSample, rng: np.random.Generator) -> TrainingSample:
        return self.apply(sample, self.sample_params(rng))


def _outside(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    return (x < 0) | (x >= width) | (y < 0) | (y >= height)


class ConvertKeypoints(Transform):
    """Labels -> the skeleton's keypoints; v = 2 at (0, 0) or outside the image. For the published layout COCO-17
    -> internal-18 (neck = mean of the shoulders, a property of that layout); any other skeleton's labels are
    already in its order."""

    def __init__(self, skeleton: Skeleton = OPENPOSE_COCO) -> None:
        self.skeleton = skeleton
        self.synthetic_neck = skeleton == OPENPOSE_COCO

    def apply(self, sample: TrainingSample, params: Any = None) -> TrainingSample:
        coco = sample.keypoints.astype(np.float64, copy=True)
        count = NUM_COCO_KEYPOINTS if self.synthetic_neck else self.skeleton.num_keypoints
        if coco.ndim != 3 or coco.shape[1:] != (count, 3):
            raise ValueError(
                f"ConvertKeypoints needs (persons, {count}, 3) keypoints for skeleton {self.skeleton.name!r}, "
                f"got {coco.shape}"
            )
        height, width = sample.image.shape[:2]
        absent = ((coco[..., 0] == 0) & (coco[..., 1] == 0)) | _outside(coco, width, height)
        coco[..., 2][absent] = 2
        if not self.synthetic_neck:
            return dataclasses.replace(sample, keypoints=coco)
        left, right = coco[:, _COCO_LEFT_SHOULDER], coco[:, _COCO_RIGHT_SHOULDER]
        neck = np.zeros_like(left)
        neck[:, :2] = (left[:, :2] + right[:, :2]) / 2
        neck[:, 2] = np.where(
            (left[:, 2] == 2) | (right[:, 2] == 2), 2, np.where((left[:, 2] == 1) & (right[:, 2] == 1), 1, 0)
        )
        neck[_outside(neck, width, height), 2] = 2
        internal = coco[:, [max(c, 0) for c in INTERNAL_TO_COCO]]
        internal[:, NECK] = neck
        return dataclasses.replace(sample, keypoints=internal)


@dataclass
class Scale(Transform):
    """Resize so the main person's height becomes ``target_dist`` x 368 px times U(min_scale, max_scale).

    params: the multiplier (1 when the ``prob`` draw fails)."""

    prob: float = 1.0
    min_scale: float = 0.5
    max_scale: float = 1.1
    target_dist: float = 0.6

    def sample_params(self, rng: np.random.Generator) -> float:
        if rng.random() <= self.prob:
            return (self.max_scale - self.min_scale) * rng.random() + self.min_scale
        return 1.0

    def apply(self, sample: TrainingSample, params: float) -> TrainingSample:
        scale = self.target_dist / sample.scale_provided * params
        keypoints = sample.keypoints.copy()
        keypoints[..., :2] *= scale
        return dataclasses.replace(
            sample,
            image=cv2.resize(sample.image, (0, 0), fx=scale, fy=scale),
            mask=cv2.resize(sample.mask, (0, 0), fx=scale, fy=scale),
            keypoints=keypoints,
            objpos=sample.objpos * scale,
        )


def _affine(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    return np.stack(
        [
            matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2],
            matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2],
        ],
        axis=-1,
    )


@dataclass
class Rotate(Transform):
    """Rotate by U(-max_rotate_degree, max_rotate_degree) degrees about the centre onto a canvas enlarged to the
    rotated bounds (bilinear); image border ``pad``, mask border 1. params: the angle in degrees (counter-clockwise)."""

    pad: tuple[int, int, int] = PAD_BGR
    max_rotate_degree: float = 40

    def sample_params(self, rng: np.random.Generator) -> float:
        return (rng.random() - 0.5) * 2 * self.max_rotate_degree

    def apply(self, sample: TrainingSample, params: float) -> TrainingSample:
        height, width = sample.image.shape[:2]
        centre = (width / 2, height / 2)
        matrix = cv2.getRotationMatrix2D(centre, params, 1)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        size = (int(height * sin + width * cos), int(height * cos + width * sin))
        matrix[0, 2] += size[0] / 2 - centre[0]
        matrix[1, 2] += size[1] / 2 - centre[1]
        keypoints = sample.keypoints.copy()
        keypoints[..., :2] = _affine(keypoints[..., :2], matrix)
        image = cv2.warpAffine(sample.image, matrix, size, borderMode=cv2.BORDER_CONSTANT, borderValue=self.pad)
        mask = cv2.warpAffine(sample.mask, matrix, size, borderMode=cv2.BORDER_CONSTANT, borderValue=(1, 1, 1))
        return dataclasses.replace(
            sample, image=image, mask=mask, keypoints=keypoints, objpos=_affine(sample.objpos, matrix)
        )


@dataclass
class CropPad(Transform):
    """Crop crop_x x crop_y centred on objpos + an integer offset in [-center_perterb_max, center_perterb_max] per
    axis; outside the image: ``pad`` (mask 1). The mask becomes uint8 (fractions truncate to 0, as the reference).
    params: (offset_x, offset_y) ints."""

    pad: tuple[int, int, int] = PAD_BGR
    center_perterb_max: int = 40
    crop_x: int = 368
    crop_y: int = 368

    def sample_params(self, rng: np.random.Generator) -> tuple[int, int]:
        offset_x = int((rng.random() - 0.5) * 2 * self.center_perterb_max)
        offset_y = int((rng.random() - 0.5) * 2 * self.center_perterb_max)
        return offset_x, offset_y

    def apply(self, sample: TrainingSample, params: tuple[int, int]) -> TrainingSample:
        height, width = sample.image.shape[:2]
        left = int(sample.objpos[0] + params[0] - self.crop_x / 2)  # crop origin in image pixels
        top = int(sample.objpos[1] + params[1] - self.crop_y / 2)
        image = np.empty((self.crop_y, self.crop_x, 3), dtype=np.uint8)
        image[:] = np.asarray(self.pad, dtype=np.uint8)
        mask = np.ones((self.crop_y, self.crop_x), dtype=np.uint8)
        x0, x1 = max(left, 0), min(left + self.crop_x, width)
        y0, y1 = max(top, 0), min(top + self.crop_y, height)
        if x0 < x1 and y0 < y1:
            image[y0 - top : y1 - top, x0 - left : x1 - left] = sample.image[y0:y1, x0:x1]
            mask[y0 - top : y1 - top, x0 - left : x1 - left] = sample.mask[y0:y1, x0:x1]
        keypoints = sample.keypoints.copy()
        keypoints[..., 0] -= left
        keypoints[..., 1] -= top
        objpos = sample.objpos - np.array([left, top], dtype=np.float64)
        return dataclasses.replace(sample, image=image, mask=mask, keypoints=keypoints, objpos=objpos)


@dataclass
class Flip(Transform):
    """Horizontal flip with probability ``prob``: x -> w - 1 - x and the skeleton's left/right keypoints swapped.
    params: whether to flip."""

    prob: float = 0.5
    skeleton: Skeleton = OPENPOSE_COCO

    def sample_params(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() <= self.prob)

    def apply(self, sample: TrainingSample, params: bool) -> TrainingSample:
        if not params:
            return sample
        width = sample.image.shape[1]
        keypoints = sample.keypoints[:, self.skeleton.flip_permutation()].copy()
        keypoints[..., 0] = width - 1 - keypoints[..., 0]
        objpos = sample.objpos.copy()
        objpos[0] = width - 1 - objpos[0]
        return dataclasses.replace(
            sample, image=cv2.flip(sample.image, 1), mask=cv2.flip(sample.mask, 1), keypoints=keypoints, objpos=objpos
        )
