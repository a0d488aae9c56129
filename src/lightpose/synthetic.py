"""Synthetic network outputs: heatmaps and PAFs rendered from known people (for tests and benchmarks)."""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import STRIDE
from lightpose.skeleton import NUM_KEYPOINTS
from lightpose.training.targets import keypoint_heatmaps, part_affinity_fields

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
    people: list[np.ndarray],
    map_size: tuple[int, int],
    *,
    sigma: float = 7.0,
    paf_thickness: float = 1.0,
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (19, h, w) and PAFs (38, h, w) float32 on the stride-8 grid of map_size (h, w), rendered as the
    training targets are (`lightpose.training.targets`): what a perfectly trained network would output.

    people: (18, 2) keypoints in input pixels each, NaN where absent. sigma: Gaussian width in input pixels;
    paf_thickness: PAF half-width in map cells (training uses 1; 2 keeps every sampled limb point on the field
    when peaks land up to a map cell off the true keypoint).
    """
    labels = np.zeros((len(people), NUM_KEYPOINTS, 3), dtype=np.float64)
    for person, keypoints in zip(labels, people):
        missing = np.isnan(keypoints[:, 0])
        person[:, :2] = np.where(missing[:, None], 0.0, keypoints)
        person[:, 2] = np.where(missing, 2, 1)  # v = 1 visible, 2 not labelled
    heatmaps = keypoint_heatmaps(labels, map_size, stride=stride, sigma=sigma)
    pafs = part_affinity_fields(labels, map_size, stride=stride, thickness=paf_thickness)
    return heatmaps, pafs
