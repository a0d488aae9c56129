"""Ground-truth heatmaps and part affinity fields, exactly as the reference training code builds them.

Keypoints come as float64 (P, K, 3) arrays: persons (row 0 = main person, then the others), the skeleton's K
keypoints (the published layout's 18 by default), and (x, y, v) in input-image pixels with v = 0 occluded,
1 visible, 2 not labelled / outside.
Only keypoints with v <= 1 draw. Maps are (C, h, w) float32 on the stride grid: map cell (i, j) covers input
pixels [stride*j, stride*j + stride) x [stride*i, stride*i + stride).
"""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import OPENPOSE_COCO, Skeleton

GAUSSIAN_WINDOW_SIGMAS = 4  # the Gaussian is evaluated within +-4 sigma of the keypoint
GAUSSIAN_MAX_EXPONENT = 4.6052  # ln(100): values below ~0.01 are skipped


def _add_gaussian(heatmap: np.ndarray, x: float, y: float, stride: int, sigma: float) -> None:
    """Add exp(-d^2 / 2 sigma^2) at cell centres (stride*j + stride/2 - 0.5) in place, then clip at 1."""
    map_h, map_w = heatmap.shape
    reach = GAUSSIAN_WINDOW_SIGMAS * sigma
    left, top = max(int(x - reach), 0), max(int(y - reach), 0)
    right, bottom = min(int(x + reach), map_w * stride), min(int(y + reach), map_h * stride)
    cols = np.arange(left // stride, right // stride)
    rows = np.arange(top // stride, bottom // stride)
    if cols.size == 0 or rows.size == 0:
        return
    shift = stride / 2 - 0.5
    dx = cols * stride + shift - x
    dy = rows * stride + shift - y
    exponent = (dx[None, :] * dx[None, :] + dy[:, None] * dy[:, None]) / 2 / sigma / sigma
    values = np.where(exponent > GAUSSIAN_MAX_EXPONENT, 0.0, np.exp(-exponent)).astype(np.float32)
    window = heatmap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    np.minimum(window + values, np.float32(1), out=window)


def _check_keypoints(keypoints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    k = skeleton.num_keypoints
    if keypoints.ndim != 3 or keypoints.shape[1:] != (k, 3):
        raise ValueError(
            f"keypoints must have shape (persons, {k}, 3) for skeleton {skeleton.name!r}, got {keypoints.shape}"
        )
    return keypoints


def keypoint_heatmaps(
    keypoints: np.ndarray,
    map_size: tuple[int, int],
    *,
    stride: int = 8,
    sigma: float = 7,
    skeleton: Skeleton = OPENPOSE_COCO,
) -> np.ndarray:
    """Heatmaps (K + 1, h, w) float32 for ``map_size`` = (h, w): one Gaussian per labelled keypoint (sigma in
    input pixels), summed over persons in order and clipped at 1; channel K = 1 - max of the others."""
    keypoints = _check_keypoints(keypoints, skeleton)
    maps = np.zeros((skeleton.num_heatmaps, *map_size), dtype=np.float32)
    for k in range(skeleton.num_keypoints):
        for x, y, v in keypoints[:, k].tolist():
            if v <= 1:
                _add_gaussian(maps[k], x, y, stride, sigma)
    maps[-1] = 1 - maps[:-1].max(axis=0)
    return maps


def _set_paf(paf: np.ndarray, a: tuple[float, float], b: tuple[float, float], stride: int, thickness: float) -> None:
    """Write the unit vector a->b (2, h, w) into every cell within ``thickness`` cells of the a-b line."""
    x_a, y_a, x_b, y_b = a[0] / stride, a[1] / stride, b[0] / stride, b[1] / stride
    x_ba, y_ba = x_b - x_a, y_b - y_a
    norm = (x_ba * x_ba + y_ba * y_ba) ** 0.5  # pow, as the reference (not sqrt)
    if norm < 1e-7:
        return
    x_ba, y_ba = x_ba / norm, y_ba / norm
    _, map_h, map_w = paf.shape
    x_min, x_max = int(max(min(x_a, x_b) - thickness, 0)), int(min(max(x_a, x_b) + thickness, map_w))
    y_min, y_max = int(max(min(y_a, y_b) - thickness, 0)), int(min(max(y_a, y_b) + thickness, map_h))
    if x_max <= x_min or y_max <= y_min:
        return
    x_ca = np.arange(x_min, x_max) - x_a
    y_ca = np.arange(y_min, y_max) - y_a
    near = np.abs(x_ca[None, :] * y_ba - y_ca[:, None] * x_ba) <= thickness
    paf[0, y_min:y_max, x_min:x_max][near] = x_ba
    paf[1, y_min:y_max, x_min:x_max][near] = y_ba


def part_affinity_fields(
    keypoints: np.ndarray,
    map_size: tuple[int, int],
    *,
    stride: int = 8,
    thickness: float = 1,
    skeleton: Skeleton = OPENPOSE_COCO,
) -> np.ndarray:
    """PAFs (2 L, h, w) float32 for ``map_size`` = (h, w): limb (a, b) of the skeleton -> its PAF channels (x, y)
    (for the published layout: the reference's training limb i -> channels 2i, 2i+1).

    Endpoints are divided by ``stride`` with no half-cell shift; a later person overwrites an earlier one.
    """
    keypoints = _check_keypoints(keypoints, skeleton)
    pafs = np.zeros((skeleton.num_pafs, *map_size), dtype=np.float32)
    persons = keypoints.tolist()
    for (ka, kb), (cx, cy) in zip(skeleton.limbs, skeleton.paf_channels):
        paf = np.zeros((2, *map_size), dtype=np.float32)
        for person in persons:
            (x_a, y_a, v_a), (x_b, y_b, v_b) = person[ka], person[kb]
            if v_a <= 1 and v_b <= 1:
                _set_paf(paf, (x_a, y_a), (x_b, y_b), stride, thickness)
        pafs[[cx, cy]] = paf
    return pafs
