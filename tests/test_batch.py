"""Batched estimation: backends that run whole batches (OpenVINO; torch with per_image=False) give each image the
maps and poses it gets alone (within float rounding), checked on a trained model's real photos; torch on CPU (one
image at a time by default) is bit-exact."""

import numpy as np
import pytest

from exported import fixture_model, people_images
from lightpose.backends import OpenVINOBackend, TorchBackend
from lightpose.estimator import PoseEstimator
from lightpose.io import read_image
from lightpose.preprocess import prepare_input
from random_model import random_input, random_model

FP32_TOL = 2e-5  # of the output range


class Recording:
    """A backend wrapper that records the batch sizes it is called with."""

    def __init__(self, backend):
        self.backend, self.name, self.description = backend, backend.name, backend.description
        self.sizes = []

    def __call__(self, batch):
        self.sizes.append(len(batch))
        return self.backend(batch)


@pytest.fixture(scope="module")
def photos():
    """Four photos of one size (1280x720): one network-input size, so they can share batches."""
    images = [read_image(p) for p in people_images(40) if p.name.startswith("sports2d_")][:4]
    assert len(images) == 4 and len({i.shape for i in images}) == 1
    return images


def test_real_batches_give_each_image_its_own_maps_and_poses(photos):
    pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'lightpose[openvino]'")
    for name, backend in [("openvino fp32", OpenVINOBackend(fixture_model(), precision="fp32"))]:
        recording = Recording(backend)
        est = PoseEstimator(recording, height=256)
        batched = est(photos, batch_size=3)
        assert recording.sizes == [3, 1], name  # really batched: 3 + 1 images in two network calls
        single = [est(photo) for photo in photos]
        assert sum(len(r) for r in single) > 0, name  # the trained model finds people in these photos
        for got, expected in zip(batched, single):
            assert len(got) == len(expected), name
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a.found, b.found)
                np.testing.assert_allclose(a.xy[a.found], b.xy[b.found], atol=1e-3)
                assert a.score == pytest.approx(b.score, rel=1e-4)
        inputs = np.stack([prepare_input(p, 256)[0] for p in photos[:3]])
        whole = backend(inputs)
        scale = float(np.abs(whole[0]).max())
        for i in range(3):
            for batch_map, single_map in zip(whole, backend(inputs[i : i + 1])):
                assert float(np.abs(batch_map[i] - single_map[0]).max()) <= FP32_TOL * scale, name


def test_torch_whole_batches_are_close_to_single_images():
    model = random_model(seed=5)
    data = random_input(batch=3, height=48, width=80)
    whole = TorchBackend(model, "cpu", per_image=False)
    for row in range(3):
        for got, expected in zip(whole(data), whole(data[row : row + 1])):
            assert float(np.abs(got[row] - expected[0]).max()) <= FP32_TOL * float(np.abs(expected).max())


def test_torch_cpu_default_is_bit_exact_per_image():
    model = random_model(seed=5)
    data = random_input(batch=3, height=48, width=80)
    per_image = TorchBackend(model, "cpu")
    assert per_image.per_image
    singles = [per_image(data[i : i + 1]) for i in range(3)]
    for row, (heatmaps, pafs) in enumerate(singles):
        batch_heatmaps, batch_pafs = per_image(data)
        np.testing.assert_array_equal(batch_heatmaps[row], heatmaps[0])
        np.testing.assert_array_equal(batch_pafs[row], pafs[0])


def test_mixed_sizes_keep_their_order(photos):
    backend = Recording(TorchBackend(fixture_model(), "cpu"))
    est = PoseEstimator(backend, height=256)
    narrow = photos[1][:, :640].copy()  # another network-input size, between two of the first size
    results = est([photos[0], narrow, photos[2]], batch_size=8)
    assert sorted(backend.sizes) == [1, 2]
    for got, image in zip(results, [photos[0], narrow, photos[2]]):
        assert (got.width, got.height) == (image.shape[1], image.shape[0])
        expected = est(image)
        assert len(got) == len(expected) and all(
            np.array_equal(a.keypoints, b.keypoints, equal_nan=True) for a, b in zip(got, expected)
        )


def test_bad_batch_size_is_refused(photos):
    with pytest.raises(ValueError, match="batch_size"):
        PoseEstimator(random_model(), device="cpu", height=48)(photos[:2], batch_size=0)
