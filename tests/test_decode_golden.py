"""The decoder against the published implementation's own outputs (golden/decode.npz)."""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lightpose.decode import decode_maps, decode_upsampled, upsample_maps


def case_maps(decode, network, case):
    if f"case{case}_heatmaps" in decode:
        return decode[f"case{case}_heatmaps"], decode[f"case{case}_pafs"]
    source = str(decode[f"case{case}_maps_from"])  # "network.npz:img{i}_stage1"
    prefix = source.split(":")[1]
    return network[f"{prefix}_heatmaps"][0], network[f"{prefix}_pafs"][0]


REPO_CASES = Path(__file__).parent / "data" / "golden_decode_small.npz"
NUMBA = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba (the fast extra) not installed")
METHODS = ["reference", "numpy", pytest.param("numba", marks=NUMBA)]


@pytest.fixture(scope="module")
def golden(golden_dir):
    return np.load(golden_dir / "decode.npz"), np.load(golden_dir / "network.npz")


def sha256(maps_chw: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(maps_chw.transpose(1, 2, 0)).tobytes()).hexdigest()


def check_case(decode, heatmaps, pafs, case, method="fast"):
    up_heatmaps, up_pafs = upsample_maps(heatmaps, 4), upsample_maps(pafs, 4)
    assert sha256(up_heatmaps) == str(decode[f"case{case}_upsampled_heatmaps_sha256"])
    assert sha256(up_pafs) == str(decode[f"case{case}_upsampled_pafs_sha256"])
    entries, keypoints = decode_upsampled(up_heatmaps, up_pafs, method=method)
    np.testing.assert_array_equal(keypoints, decode[f"case{case}_all_keypoints"])
    np.testing.assert_array_equal(entries, decode[f"case{case}_entries"])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", range(11))
def test_decoder_reproduces_reference_exactly(golden, case, method):
    decode, network = golden
    check_case(decode, *case_maps(decode, network, case), case, method)


@pytest.mark.parametrize("method", ["numpy", pytest.param("numba", marks=NUMBA)])
@pytest.mark.parametrize("case", range(11))
def test_windowed_decoding_of_stride8_maps_reproduces_reference_exactly(golden, case, method):
    decode, network = golden
    entries, keypoints = decode_maps(*case_maps(decode, network, case), 4, method=method)
    np.testing.assert_array_equal(keypoints, decode[f"case{case}_all_keypoints"])
    np.testing.assert_array_equal(entries, decode[f"case{case}_entries"])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [4, 10])
def test_decoder_reproduces_reference_cases_kept_in_the_repository(case, method):
    decode = np.load(REPO_CASES)
    check_case(decode, decode[f"case{case}_heatmaps"], decode[f"case{case}_pafs"], case, method)
