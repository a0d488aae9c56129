import json

import cv2
import numpy as np
import pytest
import torch

from lightpose import LightweightOpenPose, PoseEstimator
from lightpose.model import load_reference_state


@pytest.fixture(scope="module")
def random_estimator() -> PoseEstimator:
    torch.manual_seed(0)
    return PoseEstimator(LightweightOpenPose(), device="cpu", height=64)


@pytest.fixture(scope="module")
def golden_estimator(golden_dir) -> PoseEstimator:
    net = LightweightOpenPose()
    checkpoint = torch.load(golden_dir / "checkpoint_random_3stages.pth", map_location="cpu", weights_only=True)
    load_reference_state(net, checkpoint)
    return PoseEstimator(net, device="cpu")


def test_estimator_reproduces_the_reference_demo(golden_dir, people_dir, golden_estimator):
    golden = json.loads((golden_dir / "demo_poses.json").read_text())
    for image in golden["images"]:
        poses = golden_estimator(people_dir / image["file"])
        assert len(poses) == len(image["poses"]), image["file"]
        for pose, ref in zip(poses, image["poses"], strict=True):
            ref_xy = np.array([[np.nan, np.nan] if k is None else k for k in ref["keypoints"]])
            assert np.array_equal(np.isnan(ref_xy[:, 0]), ~pose.found)
            np.testing.assert_allclose(pose.xy, ref_xy, rtol=0, atol=1e-3)
            assert pose.score == pytest.approx(ref["confidence"], abs=1e-6)
            assert pose.grouped_count == ref["num_keypoints"]


def test_sequence_input_equals_one_at_a_time(random_estimator):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(48, 64, 3), (48, 64, 3), (80, 50, 3)]]
    batched = random_estimator(images, batch_size=2)
    assert len(batched) == 3
    for image, poses in zip(images, batched, strict=True):
        single = random_estimator(image)
        assert len(single) == len(poses)
        for a, b in zip(single, poses, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)


def test_infer_maps_shapes(random_estimator):
    heatmaps, pafs, transform = random_estimator.infer_maps(np.zeros((120, 200, 3), np.uint8))
    assert heatmaps.shape == (19, 8, 14) and pafs.shape == (38, 8, 14)
    assert transform.input_size == (64, 112) and transform.image_size == (120, 200)


def test_image_paths_are_read(tmp_path, random_estimator):
    path = tmp_path / "frame.png"
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    direct = random_estimator(image)
    from_path = random_estimator(str(path))
    assert len(direct) == len(from_path)


def test_missing_and_broken_image_files_are_named(tmp_path, random_estimator):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        random_estimator(tmp_path / "nope.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        random_estimator(broken)


def test_bad_settings_are_refused():
    net = LightweightOpenPose()
    with pytest.raises(ValueError, match="multiple of 8"):
        PoseEstimator(net, height=250)
    with pytest.raises(ValueError, match="batch_size"):
        PoseEstimator(net, height=64)([np.zeros((8, 8, 3), np.uint8)], batch_size=0)


def test_directories_and_unknown_devices_are_refused(tmp_path, random_estimator):
    with pytest.raises(FileNotFoundError, match="not a file"):
        random_estimator(tmp_path)
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        PoseEstimator(LightweightOpenPose(), device="gpu0")


def test_inputs_that_are_neither_images_nor_lists_are_refused(random_estimator):
    with pytest.raises(TypeError, match="got int"):
        random_estimator(3)
    with pytest.raises(TypeError, match="got dict"):
        random_estimator([{"image": 1}])
