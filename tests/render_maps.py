"""Test helper: ideal heatmaps and PAFs rendered from known keypoints (what a perfect network would output)."""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import (
    COCO_TO_INTERNAL,
    INTERNAL_TO_COCO,
    L_SHOULDER,
    LIMB_PAF_CHANNELS,
    LIMBS,
    NECK,
    NUM_HEATMAPS,
    NUM_KEYPOINTS,
    NUM_PAFS,
    R_SHOULDER,
    flip_permutation,
)

# A standing person facing the camera, internal 18-keypoint order, x centred on 0, height 1 (y down).
# The face is wide so that its keypoints stay apart at stride 8.
PERSON_TEMPLATE = np.array(
    [
        (0.0, 0.09), (0.0, 0.20), (-0.13, 0.21), (-0.19, 0.36), (-0.21, 0.50), (0.13, 0.21), (0.19, 0.36),
        (0.21, 0.50), (-0.08, 0.54), (-0.09, 0.75), (-0.10, 0.97), (0.08, 0.54), (0.09, 0.75), (0.10, 0.97),
        (-0.05, 0.05), (0.05, 0.05), (-0.11, 0.07), (0.11, 0.07),
    ],
    dtype=np.float64,
)  # fmt: skip


def make_person(x: float, top: float, height: float) -> np.ndarray:
    """(18, 2) float64 keypoints of the template person, centred at x, from y = top, `height` pixels tall."""
    return PERSON_TEMPLATE * height + np.array([x, top])


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


def render_maps(
    people: np.ndarray,
    grid_shape: tuple[int, int],
    *,
    step: float = 1.0,
    offset: float = 0.0,
    sigma: float = 3.0,
    paf_width: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Ideal maps of (P, 18, 2) keypoints (NaN = absent) on a grid whose cell (i, j) lies at
    (offset + j * step, offset + i * step) in the keypoints' coordinates.

    Heatmaps: max over people of exp(-d^2 / (2 sigma^2)), channel 18 = 1 - max of the others. PAFs: the unit vector
    a -> b of each limb (decoder table) at cells within `paf_width` of the segment. Returns channel-last float32
    (gh, gw, 19) and (gh, gw, 38); sigma and paf_width are in keypoint units.
    """
    gh, gw = grid_shape
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64) * step + offset
    heatmaps = np.zeros((gh, gw, NUM_HEATMAPS), dtype=np.float64)
    pafs = np.zeros((gh, gw, NUM_PAFS), dtype=np.float64)
    for person in np.asarray(people, dtype=np.float64):
        for k in range(NUM_KEYPOINTS):
            if np.isnan(person[k, 0]):
                continue
            d2 = (xs - person[k, 0]) ** 2 + (ys - person[k, 1]) ** 2
            heatmaps[..., k] = np.maximum(heatmaps[..., k], np.exp(-d2 / (2 * sigma**2)))
        for (a, b), (cx, cy) in zip(LIMBS, LIMB_PAF_CHANNELS):
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
    heatmaps[..., NUM_KEYPOINTS] = 1 - heatmaps[..., :NUM_KEYPOINTS].max(axis=2)
    return heatmaps.astype(np.float32), pafs.astype(np.float32)


def coco_dataset(images: list[tuple[int, str, int, int, np.ndarray]]) -> dict:
    """COCO keypoints annotations for [(image_id, file_name, height, width, people (P, 18, 2))]."""
    annotations = []
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
