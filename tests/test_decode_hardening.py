"""Decoder hardening: non-finite maps refused, empty maps, bounded memory on many peaks."""

import importlib.util
import tracemalloc

import numpy as np
import pytest

import lightpose.decode.reference as reference_module
import lightpose.decode.vectorised as vectorised_module
from lightpose.decode import decode_maps, decode_upsampled, upsample_maps
from lightpose.errors import MapsError
from lightpose.training.synthetic import random_people, render_maps

NUMBA = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba (the fast extra) not installed")
METHODS = ["reference", "numpy", pytest.param("numba", marks=NUMBA)]


def crowd(seed: int = 3, people: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return render_maps(random_people(rng, people, (128, 192), min_height=30.0), (16, 24))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("which", ["heatmaps", "pafs"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_maps_are_refused(method, which, value):
    heatmaps, pafs = crowd()
    maps = heatmaps if which == "heatmaps" else pafs
    maps[3, 5, 7] = value
    with pytest.raises(MapsError, match=rf"{which} hold a non-finite value \({value} at channel, row, col \[3, 5, 7\]"):
        decode_maps(heatmaps, pafs, method=method)
    with pytest.raises(ValueError, match="network output is broken"):
        decode_upsampled(upsample_maps(heatmaps, 4), upsample_maps(pafs, 4), method=method)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_empty_maps_decode_to_nothing_with_every_method(shape):
    heatmaps, pafs = np.zeros((19, *shape), np.float32), np.zeros((38, *shape), np.float32)
    methods = ["reference", "numpy", "fast"] + (["numba"] if importlib.util.find_spec("numba") else [])
    for method in methods:
        for entries, keypoints in (
            decode_maps(heatmaps, pafs, method=method),
            decode_upsampled(heatmaps, pafs, method=method),
        ):
            assert entries.shape == (0, 20) and keypoints.shape == (0, 4), method
    assert upsample_maps(heatmaps, 4).shape == (19, 4 * shape[0], 4 * shape[1])


@pytest.mark.parametrize("module", [reference_module, vectorised_module])
def test_chunked_pair_scoring_changes_no_result(monkeypatch, module):
    rng = np.random.default_rng(5)
    heatmaps, pafs = crowd(5, 6)
    heatmaps = heatmaps + rng.normal(0, 0.05, heatmaps.shape).astype(np.float32)
    pafs = pafs + rng.normal(0, 0.05, pafs.shape).astype(np.float32)
    method = "reference" if module is reference_module else "numpy"
    whole = decode_maps(heatmaps, pafs, method=method)
    monkeypatch.setattr(module, "PAIRS_PER_CHUNK", 7)
    chunked = decode_maps(heatmaps, pafs, method=method)
    assert len(whole[0]) > 0
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])


def test_memory_stays_bounded_with_thousands_of_peaks():
    """Noise maps give ~3000 peaks (~30000 candidate pairs per limb): all pairs at once took hundreds of MB."""
    rng = np.random.default_rng(0)
    heatmaps = rng.random((19, 16, 60)).astype(np.float32)
    pafs = rng.normal(0, 1, (38, 16, 60)).astype(np.float32)
    tracemalloc.start()
    try:
        entries, keypoints = decode_maps(heatmaps, pafs, method="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(keypoints) > 2500 and len(entries) > 0
    assert peak < 60e6, f"{peak / 1e6:.0f} MB"
