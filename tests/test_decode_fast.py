"""The fast decoders (numpy: lightpose.decode.vectorised; numba: lightpose.decode.compiled) return exactly what
the reference loops return."""

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lightpose.decode.decoder as decoder_module
import lightpose.decode.windows as windows_module
from lightpose.decode import decode_maps, decode_poses, decode_upsampled, upsample_maps
from lightpose.decode.vectorised import neighbour_max
from lightpose.decode.windows import CUBIC_GAIN, WINDOW_RATIOS, upsample_crop
from lightpose.training.synthetic import random_people, render_maps

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HAS_NUMBA = importlib.util.find_spec("numba") is not None
FAST_PATHS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed"))]
PATHS = ["numpy", "numba"] if HAS_NUMBA else ["numpy"]


def assert_same(heatmaps, pafs):
    """Every fast path on the x4-upsampled maps gives the reference's entries and keypoints, bit for bit."""
    up_heatmaps, up_pafs = upsample_maps(heatmaps, 4), upsample_maps(pafs, 4)
    reference = decode_upsampled(up_heatmaps, up_pafs, method="reference")
    for method in PATHS:
        fast = decode_upsampled(up_heatmaps, up_pafs, method=method)
        np.testing.assert_array_equal(fast[1], reference[1], err_msg=method)
        np.testing.assert_array_equal(fast[0], reference[0], err_msg=method)
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


def test_neighbour_max_ignores_the_border():
    maps = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    expected = np.array([[4, 5, 6, 7], [8, 9, 10, 11], [9, 10, 11, 10]], dtype=np.float32)[..., None]
    np.testing.assert_array_equal(neighbour_max(maps), expected)


@pytest.mark.parametrize("method", FAST_PATHS)
def test_contiguous_channel_first_maps_give_the_same_result(method):
    heatmaps, pafs = crowd(5, 6)
    up_heatmaps, up_pafs = upsample_maps(heatmaps, 4), upsample_maps(pafs, 4)
    views = decode_upsampled(up_heatmaps, up_pafs, method=method)
    copies = decode_upsampled(np.ascontiguousarray(up_heatmaps), np.ascontiguousarray(up_pafs), method=method)
    np.testing.assert_array_equal(views[0], copies[0])
    np.testing.assert_array_equal(views[1], copies[1])


def test_decode_poses_methods_agree_and_unknown_method_is_rejected():
    heatmaps, pafs = crowd(11, 5)
    reference = decode_poses(heatmaps, pafs, method="reference")
    assert len(reference) > 0
    for method in ["fast", *PATHS]:
        fast = decode_poses(heatmaps, pafs, method=method)
        assert len(fast) == len(reference)
        for a, b in zip(fast, reference):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            assert a.score == b.score
    with pytest.raises(ValueError, match="method must be one of"):
        decode_poses(heatmaps, pafs, method="approximate")


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    people=st.integers(0, 6),
    ratio=st.sampled_from(WINDOW_RATIOS),
    noise=st.sampled_from([0.0, 0.03]),
    height=st.integers(4, 32),
    width=st.integers(4, 57),
)
def test_windowed_upsampling_decodes_like_the_full_maps(seed, people, ratio, noise, height, width):
    """decode_maps upsamples only where keypoints can be; the result equals the reference on the full maps."""
    heatmaps, pafs = crowd(seed, people, height, width, noise)
    full = decode_upsampled(upsample_maps(heatmaps, ratio), upsample_maps(pafs, ratio), method="reference")
    for method in PATHS:
        windowed = decode_maps(heatmaps, pafs, ratio, method=method)
        np.testing.assert_array_equal(windowed[1], full[1], err_msg=method)
        np.testing.assert_array_equal(windowed[0], full[0], err_msg=method)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), ratio=st.sampled_from(WINDOW_RATIOS), channels=st.sampled_from([18, 38]))
def test_upsample_crop_equals_the_full_resize_over_its_rows_and_cols(seed, ratio, channels):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, 2)
    maps = rng.normal(0, 1, (channels, h, w)).astype(np.float32)
    k0, j0 = rng.integers(0, h), rng.integers(0, w)
    k1, j1 = rng.integers(k0, h), rng.integers(j0, w)
    expected = upsample_maps(maps, ratio)[:, ratio * k0 : ratio * (k1 + 1), ratio * j0 : ratio * (j1 + 1)]
    crop, (a0, b0) = upsample_crop(maps, ratio, (k0, k1), (j0, j1), out_tag="test" if seed % 2 else None)
    assert crop.flags.c_contiguous and (a0, b0) == (max(k0 - 2, 0), max(j0 - 2, 0))
    window = crop[ratio * (k0 - a0) : ratio * (k1 - a0 + 1), ratio * (j0 - b0) : ratio * (j1 - b0 + 1)]
    np.testing.assert_array_equal(window.transpose(2, 0, 1), expected)


def test_cubic_gain_bounds_upsampled_values():
    a = -0.75  # cv2's INTER_CUBIC kernel, weights of the 4 taps at sub-pixel phase f
    f = np.linspace(0.0, 1.0, 10001)
    w0 = ((a * (f + 1) - 5 * a) * (f + 1) + 8 * a) * (f + 1) - 4 * a
    w1 = ((a + 2) * f - (a + 3)) * f * f + 1
    w2 = ((a + 2) * (1 - f) - (a + 3)) * (1 - f) ** 2 + 1
    w3 = 1 - w0 - w1 - w2
    per_axis = (np.abs(w0) + np.abs(w1) + np.abs(w2) + np.abs(w3)).max()
    assert per_axis**2 <= CUBIC_GAIN
    rng = np.random.default_rng(0)
    maps = rng.choice([-1.0, 1.0], (38, 12, 12)).astype(np.float32)  # signs that add up
    for ratio in WINDOW_RATIOS:
        peak = np.abs(upsample_maps(maps, ratio)).max()
        assert 1.7 < peak <= CUBIC_GAIN * 1.0001  # the bound holds and is nearly reached


@pytest.mark.parametrize("method", FAST_PATHS)
def test_decode_maps_without_peaks_and_at_other_ratios(method):
    zeros = np.zeros((19, 6, 8), np.float32), np.zeros((38, 6, 8), np.float32)
    entries, keypoints = decode_maps(*zeros, method=method)
    assert entries.shape == (0, 20) and keypoints.shape == (0, 4)
    heatmaps, pafs = crowd(4, 3)
    for ratio in (4, 3):  # 3: no windows, everything upsampled
        got = decode_maps(heatmaps, pafs, ratio, method=method)
        expected = decode_upsampled(upsample_maps(heatmaps, ratio), upsample_maps(pafs, ratio), method="reference")
        assert len(expected[0]) > 0
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    with pytest.raises(ValueError, match="upsample must be >= 1"):
        decode_maps(heatmaps, pafs, 0)


@pytest.mark.parametrize("method", FAST_PATHS)
def test_threads_decoding_at_once_do_not_share_scratch_arrays(method):
    from concurrent.futures import ThreadPoolExecutor

    scenes = [crowd(seed, 3 + seed % 4, height=24, width=40) for seed in range(8)]
    expected = [decode_maps(*scene, method=method) for scene in scenes]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda scene: decode_maps(*scene, method=method), scenes * 4))
    for got, want in zip(results, expected * 4):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("method", FAST_PATHS)
def test_window_check_notices_any_difference_and_the_fallback_is_exact(monkeypatch, method):
    assert windows_module.windows_are_exact(4) and windows_module.windows_are_exact(8)
    real_crop = windows_module.upsample_crop

    def crop_one_ulp_off(*args, **kwargs):
        crop, origin = real_crop(*args, **kwargs)
        np.nextafter(crop, np.float32(np.inf), out=crop)
        return crop, origin

    monkeypatch.setattr(windows_module, "upsample_crop", crop_one_ulp_off)
    assert not windows_module.windows_are_exact.__wrapped__(4)  # a last-bit difference is noticed
    monkeypatch.setattr(windows_module, "upsample_crop", real_crop)
    heatmaps, pafs = crowd(8, 5)
    monkeypatch.setattr(decoder_module, "windows_are_exact", lambda ratio: False)  # the full-map fallback
    expected = decode_upsampled(upsample_maps(heatmaps, 4), upsample_maps(pafs, 4), method="reference")
    got = decode_maps(heatmaps, pafs, 4, method=method)
    assert len(expected[0]) > 0
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
