"""Synthetic people and the maps a perfect network would output for them (for tests and benchmarks).

One stick-figure template; maps rendered either as the training targets are (`render_maps`, channels first) or
analytically on any grid (`render_ideal_maps`, channels last); COCO label helpers for those people.
"""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import (
    COCO_TO_INTERNAL,
    INTERNAL_TO_COCO,
    L_SHOULDER,
    NECK,
    NUM_KEYPOINTS,
    OPENPOSE_COCO,
    R_SHOULDER,
    STRIDE,
    Skeleton,
    flip_permutation,
)
from lightpose.training.targets import keypoint_heatmaps, part_affinity_fields

# A standing person facing the camera, (x, y) in units of its height, origin at the neck; internal keypoint order.
TEMPLATE = np.array(
    [
        [0.0, -0.12], [0.0, 0.0], [-0.11, 0.0], [-0.14, 0.17], [-0.15, 0.32],
        [0.11, 0.0], [0.14, 0.17], [0.15, 0.32], [-0.07, 0.34], [-0.08, 0.58],
        [-0.08, 0.82], [0.07, 0.34], [0.08, 0.58], [0.08, 0.82], [-0.03, -0.15],
        [0.03, -0.15], [-0.07, -0.13], [0.07, -0.13],
    ],
    dtype=np.float64,
)  # fmt: skip
TOP_TO_NECK = 0.2  # from the top of the head to the neck, in heights


def stick_figure(center_x: float, neck_y: float, height: float) -> np.ndarray:
    """Keypoints (18, 2) x, y in input pixels of a standing person `height` pixels tall, neck at (center_x, neck_y)."""
    return TEMPLATE * height + np.array([center_x, neck_y])


def make_person(x: float, top: float, height: float) -> np.ndarray:
    """(18, 2) float64 keypoints of the template person centred at x, head top at y = top, `height` pixels tall."""
    return stick_figure(x, top + TOP_TO_NECK * height, height)


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
    skeleton: Skeleton = OPENPOSE_COCO,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (K + 1, h, w) and PAFs (2 L, h, w) float32 on the stride-8 grid of map_size (h, w), rendered as
    the training targets are (`lightpose.training.targets`): what a perfectly trained network would output.

    people: (K, 2) keypoints of the skeleton in input pixels each (18 by default), NaN where absent.
    sigma: Gaussian width in input pixels;
    paf_thickness: PAF half-width in map cells (training uses 1; 2 keeps every sampled limb point on the field
    when peaks land up to a map cell off the true keypoint).
    """
    labels = np.zeros((len(people), skeleton.num_keypoints, 3), dtype=np.float64)
    for person, keypoints in zip(labels, people):
        missing = np.isnan(keypoints[:, 0])
        person[:, :2] = np.where(missing[:, None], 0.0, keypoints)
        person[:, 2] = np.where(missing, 2, 1)  # v = 1 visible, 2 not labelled
    heatmaps = keypoint_heatmaps(labels, map_size, stride=stride, sigma=sigma, skeleton=skeleton)
    pafs = part_affinity_fields(labels, map_size, stride=stride, thickness=paf_thickness, skeleton=skeleton)
    return heatmaps, pafs


def render_ideal_maps(
    people: np.ndarray,
    grid_shape: tuple[int, int],
    *,
    step: float = 1.0,
    offset: float = 0.0,
    sigma: float = 3.0,
    paf_width: float = 3.0,
    skeleton: Skeleton = OPENPOSE_COCO,
) -> tuple[np.ndarray, np.ndarray]:
    """Ideal maps of (P, K, 2) keypoints of `skeleton` (NaN = absent) on a grid whose cell (i, j) lies at
    (offset + j * step, offset + i * step) in the keypoints' coordinates.

    Heatmaps: max over people of exp(-d^2 / (2 sigma^2)), channel 18 = 1 - max of the others. PAFs: the unit vector
    a -> b of each limb (decoder table) at cells within `paf_width` of the segment. Returns channel-last float32
    (gh, gw, K + 1) and (gh, gw, 2 L); sigma and paf_width are in keypoint units.
    """
    gh, gw = grid_shape
    k_count = skeleton.num_keypoints
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64) * step + offset
    heatmaps = np.zeros((gh, gw, skeleton.num_heatmaps), dtype=np.float64)
    pafs = np.zeros((gh, gw, skeleton.num_pafs), dtype=np.float64)
    for person in np.asarray(people, dtype=np.float64):
        for k in range(k_count):
            if np.isnan(person[k, 0]):
                continue
            d2 = (xs - person[k, 0]) ** 2 + (ys - person[k, 1]) ** 2
            heatmaps[..., k] = np.maximum(heatmaps[..., k], np.exp(-d2 / (2 * sigma**2)))
        for (a, b), (cx, cy) in zip(skeleton.limbs, skeleton.paf_channels):
            vec = person[b] - person[a]
            length = np.hypot(*vec)
            if np.isnan(length) or length == 0:
                continue
            unit = vec / length
            rx, ry = xs - person[a, 0], ys - person[a, 1]
            along = rx * unit[0] + ry * unit[1]
            across = np.abs(rx * unit[1] - ry * unit[0])
            inside = (along >= -paf_width) & (along <= length + paf_width) & (across <= paf_width)
            pafs[inside, cx] = unit[0]
            pafs[inside, cy] = unit[1]
    heatmaps[..., k_count] = 1 - heatmaps[..., :k_count].max(axis=2)
    return heatmaps.astype(np.float32), pafs.astype(np.float32)


def internal_to_coco(people: np.ndarray) -> list[list[float]]:
    """(P, 18, 2) internal keypoints -> one flat COCO [x, y, 2] * 17 list per person (the neck dropped)."""
    return [[float(v) for c in range(17) for v in (*person[COCO_TO_INTERNAL[c]], 2)] for person in people]


def coco_to_internal(keypoints: list[float]) -> np.ndarray:
    """Flat COCO keypoints [x, y, v] * 17 -> (18, 2) internal, NaN where v == 0; neck = mean of the shoulders."""
    coco = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)
    person = np.full((NUM_KEYPOINTS, 2), np.nan)
    for internal, c in enumerate(INTERNAL_TO_COCO):
        if c >= 0 and coco[c, 2] > 0:
            person[internal] = coco[c, :2]
    person[NECK] = (person[R_SHOULDER] + person[L_SHOULDER]) / 2
    return person


def mirror_people(people: np.ndarray, width: int) -> np.ndarray:
    """Labels of the horizontally mirrored image: x -> width - 1 - x and left/right keypoints swapped."""
    mirrored = people[:, flip_permutation()].copy()
    mirrored[..., 0] = width - 1 - mirrored[..., 0]
    return mirrored


def coco_dataset(images: list[tuple[int, str, int, int, np.ndarray]]) -> dict:
    """COCO keypoints annotations for [(image_id, file_name, height, width, people (P, 18, 2))]."""
    annotations: list[dict[str, object]] = []
    for image_id, _, _, _, people in images:
        for person, keypoints in zip(people, internal_to_coco(people)):
            x0, y0 = np.nanmin(person, axis=0) - 10
            x1, y1 = np.nanmax(person, axis=0) + 10
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "num_keypoints": 17,
                    "keypoints": keypoints,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float((x1 - x0) * (y1 - y0)),
                }
            )
    return {
        "images": [{"id": i, "file_name": f, "height": h, "width": w} for i, f, h, w, _ in images],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}],
    }
