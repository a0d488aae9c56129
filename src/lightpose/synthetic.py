"""Synthetic network outputs: heatmaps and PAFs rendered from known people (for tests and benchmarks)."""

from __future__ import annotations

import numpy as np

from lightpose.model import STRIDE
from lightpose.skeleton import BACKGROUND_CHANNEL, LIMB_PAF_CHANNELS, LIMBS, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS

# A standing person, (x, y) in units of its height, origin at the neck; internal keypoint order.
_TEMPLATE = np.array(
    [
        [0.0, -0.12], [0.0, 0.0], [-0.11, 0.0], [-0.14, 0.17], [-0.15, 0.32],
        [0.11, 0.0], [0.14, 0.17], [0.15, 0.32], [-0.07, 0.34], [-0.08, 0.58],
        [-0.08, 0.82], [0.07, 0.34], [0.08, 0.58], [0.08, 0.82], [-0.03, -0.15],
        [0.03, -0.15], [-0.07, -0.13], [0.07, -0.13],
    ],
    dtype=np.float64,
)  # fmt: skip


def stick_figure(center_x: float, neck_y: float, height: float) -> np.ndarray:
    """Keypoints (18, 2) x, y in input pixels of a standing person `height` pixels tall, neck at (center_x, neck_y)."""
    return _TEMPLATE * height + np.array([center_x, neck_y])


def random_people(
    rng: np.random.Generator, count: int, input_size: tuple[int, int], min_height: float = 60.0
) -> list[np.ndarray]:
    """`count` stick figures (18, 2) with random position, size and jitter, inside an input of size (H, W)."""
    h, w = input_size
    people = []
    for _ in range(count):
        height = rng.uniform(min_height, max(min_height, 0.9 * h))
        x = rng.uniform(0.2 * height, max(0.2 * height, w - 0.2 * height))
        y = rng.uniform(0.2 * height, max(0.2 * height, h - 0.85 * height))
        jitter = rng.normal(0.0, 0.015 * height, size=(NUM_KEYPOINTS, 2))
        people.append(stick_figure(x, y, height) + jitter)
    return people


def render_maps(
    people: list[np.ndarray], map_size: tuple[int, int], *, sigma: float = 7.0, stride: int = STRIDE
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (19, h, w) and PAFs (38, h, w) float32 on the stride-8 grid of map_size (h, w).

    people: (18, 2) keypoints in input pixels each, NaN where absent. Heatmaps: Gaussians of `sigma` input pixels at
    cell centres stride*i + (stride-1)/2, max over people; background = 1 - max. PAFs: unit vectors on cells within
    one cell of each limb segment, averaged where limbs of different people overlap.
    """
    h, w = map_size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    centre_x, centre_y = xs * stride + (stride - 1) / 2, ys * stride + (stride - 1) / 2
    heatmaps = np.zeros((NUM_HEATMAPS, h, w), dtype=np.float64)
    pafs = np.zeros((NUM_PAFS, h, w), dtype=np.float64)
    counts = np.zeros((len(LIMBS), h, w), dtype=np.float64)
    for keypoints in people:
        for k in range(NUM_KEYPOINTS):
            x, y = keypoints[k]
            if np.isnan(x):
                continue
            gauss = np.exp(-((centre_x - x) ** 2 + (centre_y - y) ** 2) / (2 * sigma**2))
            np.maximum(heatmaps[k], gauss, out=heatmaps[k])
        for limb, (a, b) in enumerate(LIMBS):
            if np.isnan(keypoints[a, 0]) or np.isnan(keypoints[b, 0]):
                continue
            pa, pb = keypoints[a] / stride, keypoints[b] / stride
            length = np.linalg.norm(pb - pa)
            if length < 1e-6:
                continue
            ux, uy = (pb - pa) / length
            along = (xs - pa[0]) * ux + (ys - pa[1]) * uy
            across = np.abs((xs - pa[0]) * uy - (ys - pa[1]) * ux)
            on_limb = (along >= -1) & (along <= length + 1) & (across <= 1)
            cx, cy = LIMB_PAF_CHANNELS[limb]
            pafs[cx][on_limb] += ux
            pafs[cy][on_limb] += uy
            counts[limb][on_limb] += 1
    for limb, (cx, cy) in enumerate(LIMB_PAF_CHANNELS):
        overlap = counts[limb] > 1
        pafs[cx][overlap] /= counts[limb][overlap]
        pafs[cy][overlap] /= counts[limb][overlap]
    heatmaps[BACKGROUND_CHANNEL] = 1 - heatmaps[:NUM_KEYPOINTS].max(axis=0)
    return heatmaps.astype(np.float32), pafs.astype(np.float32)
