"""Decoding entry points: validate the maps, pick the method, turn pose entries into `Pose` objects."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import ModuleType

import numpy as np

from lightpose.decode.params import PUBLISHED, DecodeParams
from lightpose.decode.reference import decode_reference
from lightpose.decode.vectorised import decode_vectorised, decode_windowed
from lightpose.decode.windows import upsample_maps, windows_are_exact
from lightpose.errors import MapsError
from lightpose.pose import Pose
from lightpose.skeleton import OPENPOSE_COCO, STRIDE, Skeleton

# "fast": compiled (numba, the `fast` extra) when installed, else numpy; the others force one path.
DECODE_METHODS = ("fast", "numpy", "numba", "reference")
Result = tuple[np.ndarray, np.ndarray]


@functools.cache
def compiled_module() -> ModuleType | None:
    """`lightpose.decode.compiled` when numba imports, else None."""
    try:
        import lightpose.decode.compiled as compiled
    except ImportError:
        return None
    return compiled


def _resolve(method: str) -> str:
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {DECODE_METHODS}, got {method!r}")
    if method == "fast":
        return "numba" if compiled_module() is not None else "numpy"
    if method == "numba" and compiled_module() is None:
        raise ImportError("method='numba' needs numba, the fast extra: pip install 'lightpose[fast]'")
    return method


def check_maps(
    heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one image's (>= K, h, w) heatmaps and (2L, h, w) PAFs; returns them as float32 arrays.

    Raises MapsError (a ValueError) naming what is wrong: shape, channel count, dtype, or a NaN/inf value.
    """
    heatmaps, pafs = np.asarray(heatmaps), np.asarray(pafs)
    k, channels = skeleton.num_keypoints, skeleton.num_pafs
    if heatmaps.ndim != 3 or heatmaps.shape[0] < k:
        raise MapsError(
            f"heatmaps must have shape ({k + 1}, h, w) (or at least {k} channels) for skeleton "
            f"{skeleton.name!r}, got {heatmaps.shape}: pass one image's maps, channels first"
        )
    if pafs.ndim != 3 or pafs.shape[0] != channels:
        raise MapsError(
            f"pafs must have shape ({channels}, h, w) for skeleton {skeleton.name!r}, got {pafs.shape}: "
            "pass one image's maps, channels first, from a network with this skeleton's heads"
        )
    if heatmaps.shape[1:] != pafs.shape[1:]:
        raise MapsError(
            f"heatmaps {heatmaps.shape} and pafs {pafs.shape} differ in spatial size: pass the maps of one image"
        )
    if heatmaps.dtype != np.float32 or pafs.dtype != np.float32:
        raise MapsError(
            f"heatmaps and pafs must be float32, got {heatmaps.dtype} and {pafs.dtype}: convert them with "
            ".astype(np.float32)"
        )
    for name, maps in (("heatmaps", heatmaps), ("pafs", pafs)):
        if maps.size and not (math.isfinite(maps.max()) and math.isfinite(maps.min())):
            bad = np.argwhere(~np.isfinite(maps))[0].tolist()
            raise MapsError(
                f"{name} hold a non-finite value ({maps[tuple(bad)]} at channel, row, col {bad}): the "
                "network output is broken (check the weights, the input and the precision)"
            )
    return heatmaps, pafs


def _empty(skeleton: Skeleton) -> Result:
    return np.zeros((0, skeleton.num_keypoints + 2)), np.zeros((0, 4))


def decode_upsampled(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    *,
    method: str = "fast",
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> Result:
    """Reference-exact decoding of already-upsampled maps: heatmaps (>= K, H, W), PAFs (2L, H, W), float32.

    Every method ("fast", "numpy", "numba", "reference": the reference's loops, the specification) returns the
    same arrays bit for bit: (entries float64 (P, K + 2): K keypoint ids (-1 where missing), score, keypoint
    count; all_keypoints float64 (N, 4): x, y, score, id) in the maps' pixels.
    """
    heatmaps, pafs = check_maps(heatmaps, pafs, skeleton)
    method = _resolve(method)
    if heatmaps.shape[1] == 0 or heatmaps.shape[2] == 0:
        return _empty(skeleton)
    decode: dict[str, Callable[..., Result]] = {"reference": decode_reference, "numpy": decode_vectorised}
    if method == "numba":
        decode["numba"] = compiled_module().decode_compiled  # type: ignore[union-attr]
    return decode[method](heatmaps, pafs, skeleton, params)


def decode_maps(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    upsample: int = 4,
    *,
    method: str = "fast",
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> Result:
    """Reference-exact decoding of stride-8 maps: heatmaps (>= K, h, w), PAFs (2L, h, w) float32, upsampled by
    `upsample` (cubic, as the reference demo). Returns `decode_upsampled`'s arrays in upsampled-map pixels.

    The faster methods at upsample 4 or 8 upsample only what can hold a keypoint (the heatmaps around values
    that can reach the peak threshold, the PAFs over the keypoints' bounding box), with the same result as
    upsampling everything (checked once per process against this OpenCV, else everything is upsampled).
    """
    heatmaps, pafs = check_maps(heatmaps, pafs, skeleton)
    method = _resolve(method)
    if upsample < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}: the reference uses 4")
    if heatmaps.shape[1] == 0 or heatmaps.shape[2] == 0:
        return _empty(skeleton)
    if method == "numpy" and windows_are_exact(upsample):
        return decode_windowed(heatmaps, pafs, upsample, skeleton, params)
    if method == "numba" and windows_are_exact(upsample):
        return compiled_module().decode_windowed_compiled(heatmaps, pafs, upsample, skeleton, params)  # type: ignore[union-attr]
    up = upsample_maps(heatmaps, upsample), upsample_maps(pafs, upsample)
    return decode_upsampled(*up, method=method, skeleton=skeleton, params=params)


def entries_to_poses(
    entries: np.ndarray, all_keypoints: np.ndarray, coords_scale: float = 1.0, skeleton: Skeleton = OPENPOSE_COCO
) -> list[Pose]:
    """Pose objects from pose entries; keypoint x, y = map pixel * coords_scale (float64 before the float32 store)."""
    if len(entries) == 0:
        return []
    k = skeleton.num_keypoints
    ids = entries[:, :k].astype(np.int64)
    found = ids >= 0
    rows = all_keypoints[np.where(found, ids, 0)]  # (P, K, 4); rows of missing keypoints are masked below
    keypoints = np.empty((len(entries), k, 3), dtype=np.float32)
    keypoints[..., :2] = np.where(found[..., None], rows[..., :2] * coords_scale, np.nan)
    keypoints[..., 2] = np.where(found, rows[..., 2], np.nan)
    scores, counts = entries[:, k].tolist(), entries[:, k + 1].astype(np.int64).tolist()
    return [Pose(p, score=s, grouped_count=c, skeleton=skeleton) for p, s, c in zip(keypoints, scores, counts)]


def decode_poses(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    upsample: int = 4,
    *,
    method: str = "fast",
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> list[Pose]:
    """Poses from one image's stride-8 maps (`decode_maps`), keypoints in network-input pixels (map pixel * 8 /
    upsample), not image pixels: for callers that hold only maps (tests, tools); `PoseEstimator.decode` gives image
    pixels."""
    entries, all_keypoints = decode_maps(heatmaps, pafs, upsample, method=method, skeleton=skeleton, params=params)
    return entries_to_poses(entries, all_keypoints, STRIDE / upsample, skeleton)
