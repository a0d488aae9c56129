"""The reference val.py's detections (single and multi-scale) on shared photos with the golden random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lightpose.estimator import PoseEstimator
from lightpose.io import read_image
from lightpose.model import LightweightOpenPose, load_reference_state
from lightpose.training.evaluate import MULTISCALE_SCALES, detections_for_image, infer_val_maps


@pytest.fixture(scope="module")
def golden(golden_dir):
    return json.loads((golden_dir / "val_detections.json").read_text())


@pytest.fixture(scope="module")
def estimator(golden_dir):
    model = LightweightOpenPose()
    checkpoint = torch.load(golden_dir / "checkpoint_random_3stages.pth", map_location="cpu", weights_only=True)
    load_reference_state(model, checkpoint)
    return PoseEstimator(model, device="cpu")


def check_same_detections(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert mine["image_id"] == ref["image_id"] and mine["category_id"] == ref["category_id"] == 1
        np.testing.assert_array_equal(np.array(mine["keypoints"])[2::3], np.array(ref["keypoints"])[2::3])
        np.testing.assert_allclose(mine["keypoints"], ref["keypoints"], rtol=0, atol=1e-3)
        assert mine["score"] == pytest.approx(ref["score"], rel=0, abs=1e-5)


def run_golden(estimator, golden, people_dir, image, scales):
    heatmaps, pafs = infer_val_maps(estimator, read_image(people_dir / image["file_name"]), scales=scales)
    assert heatmaps.shape == (image["height"], image["width"], 19)
    return detections_for_image(heatmaps, pafs, image["id"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_single_scale_detections_match_the_reference(estimator, golden, people_dir, index):
    image = golden["images"][index]
    expected = [d for d in golden["single_scale"] if d["image_id"] == image["id"]]
    assert len(expected) > 100  # random weights: a crowd of noise poses
    check_same_detections(run_golden(estimator, golden, people_dir, image, (1.0,)), expected)


@pytest.mark.slow
def test_multiscale_detections_match_the_reference(estimator, golden, people_dir):
    image = golden["images"][0]  # the smallest image; 4 scales take several seconds on one core
    expected = [d for d in golden["multiscale"] if d["image_id"] == image["id"]]
    check_same_detections(run_golden(estimator, golden, people_dir, image, MULTISCALE_SCALES), expected)
