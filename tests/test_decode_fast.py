"""The vectorised decoder (lightpose.decode_fast) returns exactly what the reference loops return."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightpose.decode import decode_poses, decode_upsampled, upsample_maps
from lightpose.decode_fast import neighbour_max
from lightpose.synthetic import random_people, render_maps

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(heatmaps, pafs):
    """Both methods on the x4-upsampled maps give bit-identical entries and keypoints."""
    up_heatmaps, up_pafs = upsample_maps(heatmaps, 4), upsample_maps(pafs, 4)
    fast = decode_upsampled(up_heatmaps, up_pafs, method="fast")
    reference = decode_upsampled(up_heatmaps, up_pafs, method="reference")
    np.testing.assert_array_equal(fast[1], reference[1])
    np.testing.assert_array_equal(fast[0], reference[0])
    return reference


def crowd(seed, people, height=16, width=24, noise=0.0):
    rng = np.random.default_rng(seed)
    heatmaps, pafs = render_maps(random_people(rng, people, (8 * height, 8 * width), min_height=30.0), (height, width))
    if noise:
        heatmaps = heatmaps + rng.normal(0, noise, heatmaps.shape).astype(np.float32)
        pafs = pafs + rng.normal(0, noise, pafs.shape).astype(np.float32)
    return heatmaps, pafs


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(2, 12), width=st.integers(2, 12))
def test_random_maps(seed, height, width):
    rng = np.random.default_rng(seed)
    heatmaps = rng.uniform(-0.2, 1.0, (19, height, width)).astype(np.float32)
    pafs = rng.uniform(-1.0, 1.0, (38, height, width)).astype(np.float32)
    assert_same(heatmaps, pafs)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), levels=st.integers(2, 5))
def test_quantised_maps_with_tied_scores(seed, levels):
    """Few distinct values: many equal limb scores, so the argsort tie order must be the reference's."""
    rng = np.random.default_rng(seed)
    heatmaps = (rng.integers(0, levels, (19, 8, 10)) / (levels - 1)).astype(np.float32)
    pafs = (rng.integers(-levels, levels + 1, (38, 8, 10)) / levels).astype(np.float32)
    assert_same(heatmaps, pafs)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), people=st.integers(0, 12), noise=st.sampled_from([0.0, 0.02, 0.1]))
def test_synthetic_crowds(seed, people, noise):
    entries, _ = assert_same(*crowd(seed, people, noise=noise))
    if people and not noise:
        assert len(entries) > 0


def test_twenty_person_crowd_at_demo_size():
    entries, keypoints = assert_same(*crowd(7, 20, height=32, width=57))
    assert len(entries) >= 10 and len(keypoints) >= 200


def test_nan_maps_follow_the_reference():
    heatmaps, pafs = crowd(3, 4)
    heatmaps[2, 3:6, 4:9] = np.nan
    pafs[5, 6:9, 2:6] = np.nan
    assert_same(heatmaps, pafs)


def test_neighbour_max_propagates_nan_and_ignores_the_border():
    maps = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    expected = np.array([[4, 5, 6, 7], [8, 9, 10, 11], [9, 10, 11, 10]], dtype=np.float32)[..., None]
    np.testing.assert_array_equal(neighbour_max(maps), expected)
    maps[1, 1, 0] = np.nan
    result = neighbour_max(maps)
    assert np.isnan(result[0, 1, 0]) and np.isnan(result[1, 2, 0]) and not np.isnan(result[1, 1, 0])


def test_contiguous_channel_first_maps_give_the_same_result():
    heatmaps, pafs = crowd(5, 6)
    up_heatmaps, up_pafs = upsample_maps(heatmaps, 4), upsample_maps(pafs, 4)
    views = decode_upsampled(up_heatmaps, up_pafs)
    copies = decode_upsampled(np.ascontiguousarray(up_heatmaps), np.ascontiguousarray(up_pafs))
    np.testing.assert_array_equal(views[0], copies[0])
    np.testing.assert_array_equal(views[1], copies[1])


def test_decode_poses_methods_agree_and_unknown_method_is_rejected():
    heatmaps, pafs = crowd(11, 5)
    fast = decode_poses(heatmaps, pafs)
    reference = decode_poses(heatmaps, pafs, method="reference")
    assert len(fast) == len(reference) > 0
    for a, b in zip(fast, reference):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert a.score == b.score
    with pytest.raises(ValueError, match="method must be one of"):
        decode_poses(heatmaps, pafs, method="approximate")
