"""Ground-truth heatmaps and PAFs: golden reproduction, a loop-by-loop transcription of the rules, properties."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lightpose.skeleton import KEYPOINT_INDEX, TRAINING_LIMBS
from lightpose.training.augment import ConvertKeypoints, TrainingSample
from lightpose.training.targets import keypoint_heatmaps, part_affinity_fields


def _persons(visible: dict[int, tuple[float, float]], v: int = 1) -> np.ndarray:
    """(1, 18, 3): the given internal keypoints at (x, y) with visibility v, all others absent (v = 2)."""
    keypoints = np.zeros((1, 18, 3))
    keypoints[0, :, 2] = 2
    for k, (x, y) in visible.items():
        keypoints[0, k] = (x, y, v)
    return keypoints


def _loop_heatmaps(keypoints: np.ndarray, h: int, w: int, stride: int = 8, sigma: float = 7) -> np.ndarray:
    """The published datasets/coco.py target rules, one pixel at a time."""
    maps = np.zeros((19, h, w), dtype=np.float32)
    for k in range(18):
        for x, y, v in keypoints[:, k].tolist():
            if v > 1:
                continue
            x0, y0 = max(int(x - 4 * sigma), 0), max(int(y - 4 * sigma), 0)
            x1, y1 = min(int(x + 4 * sigma), w * stride), min(int(y + 4 * sigma), h * stride)
            for row in range(y0 // stride, y1 // stride):
                for col in range(x0 // stride, x1 // stride):
                    dx, dy = col * stride + 3.5 - x, row * stride + 3.5 - y
                    exponent = (dx * dx + dy * dy) / 2 / sigma / sigma
                    if exponent <= 4.6052:
                        maps[k, row, col] = min(maps[k, row, col] + np.float32(math.exp(-exponent)), 1)
    maps[18] = 1 - maps[:18].max(axis=0)
    return maps


def _loop_pafs(keypoints: np.ndarray, h: int, w: int, stride: int = 8) -> np.ndarray:
    maps = np.zeros((38, h, w), dtype=np.float32)
    for limb, (a, b) in enumerate(TRAINING_LIMBS):
        for person in keypoints.tolist():
            (xa, ya, va), (xb, yb, vb) = person[a], person[b]
            if va > 1 or vb > 1:
                continue
            xa, ya, xb, yb = xa / stride, ya / stride, xb / stride, yb / stride
            norm = ((xb - xa) ** 2 + (yb - ya) ** 2) ** 0.5
            if norm < 1e-7:
                continue
            ux, uy = (xb - xa) / norm, (yb - ya) / norm
            for row in range(int(max(min(ya, yb) - 1, 0)), int(min(max(ya, yb) + 1, h))):
                for col in range(int(max(min(xa, xb) - 1, 0)), int(min(max(xa, xb) + 1, w))):
                    if abs((col - xa) * uy - (row - ya) * ux) <= 1:
                        maps[2 * limb : 2 * limb + 2, row, col] = (ux, uy)
    return maps


def test_golden_maps_from_convert_keypoints(golden_dir: Path) -> None:
    golden = np.load(golden_dir / "targets.npz")
    labels = json.loads((golden_dir / "prepared_labels.json").read_text())
    for n, index in enumerate(golden["sample_indices"].tolist()):
        label = labels[index]
        width, height = label["img_width"], label["img_height"]
        persons = [label["keypoints"]] + [o["keypoints"] for o in label["processed_other_annotations"]]
        sample = TrainingSample(
            image=np.zeros((height, width, 3), np.uint8),
            mask=np.ones((height, width), np.float32),
            keypoints=np.array(persons, dtype=np.float64),
            objpos=np.array(label["objpos"], dtype=np.float64),
            scale_provided=label["scale_provided"],
        )
        keypoints = ConvertKeypoints().apply(sample).keypoints
        size = (height // 8, width // 8)
        np.testing.assert_array_equal(keypoint_heatmaps(keypoints, size), golden[f"s{n}_keypoint_maps"])
        np.testing.assert_array_equal(part_affinity_fields(keypoints, size), golden[f"s{n}_paf_maps"])


def test_vectorised_maps_equal_the_pixel_loop_on_random_crowds() -> None:
    rng = np.random.default_rng(3)
    h, w = 12, 15
    keypoints = np.zeros((6, 18, 3))
    keypoints[..., 0] = rng.uniform(-40, w * 8 + 40, (6, 18))
    keypoints[..., 1] = rng.uniform(-40, h * 8 + 40, (6, 18))
    keypoints[..., 2] = rng.integers(0, 3, (6, 18))
    keypoints[2, 3, :2] = keypoints[2, 2, :2]  # a zero-length limb
    expected_heatmaps, expected_pafs = _loop_heatmaps(keypoints, h, w), _loop_pafs(keypoints, h, w)
    assert (expected_heatmaps[:18] == 1).any() and np.count_nonzero(expected_pafs) > 100
    np.testing.assert_array_equal(keypoint_heatmaps(keypoints, (h, w)), expected_heatmaps)
    np.testing.assert_array_equal(part_affinity_fields(keypoints, (h, w)), expected_pafs)


def test_gaussian_peaks_at_the_keypoint_cell() -> None:
    nose = KEYPOINT_INDEX["nose"]
    maps = keypoint_heatmaps(_persons({nose: (8 * 5 + 3.5, 8 * 7 + 3.5)}), (12, 10))
    assert maps.shape == (19, 12, 10) and maps.dtype == np.float32
    assert np.unravel_index(np.argmax(maps[nose]), maps[nose].shape) == (7, 5)
    assert maps[nose, 7, 5] == 1.0
    assert maps[nose, 7, 6] == pytest.approx(math.exp(-64 / 98), rel=1e-6)  # one cell = 8 px, sigma 7
    assert maps[nose, 7, 8] == 0  # 24 px: exp(-576/98) < 0.01 is skipped
    assert not maps[1:18].any()
    np.testing.assert_array_equal(maps[18], 1 - maps[nose])


def test_overlapping_gaussians_add_and_clip_and_absent_keypoints_do_not_draw() -> None:
    point = (8 * 3 + 3.5, 8 * 3 + 3.5)
    two = np.concatenate([_persons({0: point}), _persons({0: (point[0] + 8, point[1])})])
    maps = keypoint_heatmaps(two, (8, 8))
    assert maps[0].max() == 1.0
    one = keypoint_heatmaps(two[:1], (8, 8))
    assert maps[0, 3, 5] == pytest.approx(one[0, 3, 5] + one[0, 3, 4], rel=1e-6)
    assert not keypoint_heatmaps(_persons({0: point}, v=2), (8, 8))[:18].any()
    assert keypoint_heatmaps(_persons({0: point}, v=0), (8, 8))[0].max() == 1.0  # occluded keypoints draw


def test_paf_holds_unit_vectors_along_the_limb() -> None:
    limb = TRAINING_LIMBS.index((1, 8))  # neck -> r_hip, channels 2 * limb, 2 * limb + 1
    pafs = part_affinity_fields(_persons({1: (16, 24), 8: (64, 24)}), (8, 12))
    x, y = pafs[2 * limb], pafs[2 * limb + 1]
    # endpoints (2, 3) -> (8, 3) in cells; the box grows by 1 cell but its end is exclusive: rows 2-3, columns 1-8
    assert np.all(x[2:4, 1:9] == 1) and not y.any()
    assert np.count_nonzero(pafs) == 16
    diagonal = part_affinity_fields(_persons({1: (8, 8), 8: (56, 56)}), (8, 8))
    vx, vy = diagonal[2 * limb], diagonal[2 * limb + 1]
    on = vx != 0
    np.testing.assert_allclose(vx[on], math.sqrt(0.5), rtol=1e-6)
    np.testing.assert_allclose(vy[on], math.sqrt(0.5), rtol=1e-6)
    assert on[4, 4] and not on[0, 7] and not on[7, 0]


def test_paf_skips_absent_endpoints_and_zero_length_limbs() -> None:
    assert not part_affinity_fields(_persons({1: (16, 24), 8: (64, 24)}, v=2), (8, 12)).any()
    assert not part_affinity_fields(_persons({1: (16, 24), 8: (16, 24)}), (8, 12)).any()


def test_targets_reject_wrong_keypoint_shape() -> None:
    with pytest.raises(ValueError, match="persons, 18, 3"):
        keypoint_heatmaps(np.zeros((1, 17, 3)), (4, 4))
    with pytest.raises(ValueError, match="persons, 18, 3"):
        part_affinity_fields(np.zeros((18, 3)), (4, 4))
