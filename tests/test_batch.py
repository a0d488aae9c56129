"""Batched estimation returns exactly the single-image results, for every backend and mixed image sizes."""

import numpy as np
import pytest

from lightpose.estimator import PoseEstimator
from random_model import random_model


@pytest.fixture(scope="module")
def model():
    return random_model(seed=5)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(2)
    sizes = [(48, 80), (48, 80), (64, 64), (48, 80), (40, 120)]  # three share one network-input size
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def assert_same_poses(batched, single):
    assert len(batched) == len(single)
    for got, expected in zip(batched, single):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            assert a.score == b.score and a.grouped_count == b.grouped_count


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_batch_equals_single(model, images, backend):
    if backend != "torch":
        pytest.importorskip(backend, reason=f"needs the {backend} runtime (lightpose[onnx] / lightpose[openvino])")
    est = PoseEstimator(model, device="cpu", height=48, backend=backend)
    single = [est(image) for image in images]
    assert sum(len(p) for p in single) > 0  # random weights: noise "poses", enough to compare
    for batch_size in (1, 2, 8):
        assert_same_poses(est(images, batch_size=batch_size), single)


def test_batched_maps_equal_single_maps(model, images):
    est = PoseEstimator(model, device="cpu", height=48)
    same_size = np.stack([est.infer_maps(images[i])[0] for i in (0, 1, 3)])
    inputs = np.stack([_input(est, images[i]) for i in (0, 1, 3)])
    np.testing.assert_array_equal(est.backend(inputs)[0], same_size)


def _input(est, image):
    from lightpose.preprocess import prepare_input

    return prepare_input(image, est.height)[0]


def test_bad_batch_size_is_refused(model, images):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        PoseEstimator(model, device="cpu", height=48)(images, batch_size=0)


def test_torch_whole_batches_are_close_to_single_images(model):
    from lightpose.backends import TorchBackend
    from random_model import random_input

    data = random_input(batch=3, height=48, width=80)
    single = TorchBackend(model, "cpu")
    whole = TorchBackend(model, "cpu", per_image=False)
    for got, expected in zip(whole(data), single(data)):
        assert float(np.abs(got - expected).max()) <= 2e-5 * float(np.abs(expected).max())
