"""Cubic upsampling of stride-8 maps, whole (as the reference) or only over windows where keypoints can be.

A window of cv2's INTER_CUBIC resize, taken with the 2 source pixels its taps reach, equals the full resize there
bit for bit at the ratios in WINDOW_RATIOS; `windows_are_exact` checks it once per process with this OpenCV.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from lightpose.decode.scratch import SCRATCH

# cv2's cubic kernel (A = -0.75): the |weights| of one axis sum to at most 1.375 (at phase 0.5), so an upsampled
# value is at most 1.375**2 times the largest |value| among its 4x4 source taps.
CUBIC_GAIN = 1.375**2
# Ratios at which a window was found to equal the full resize (at ratio 2 some windows differ in the last bit).
WINDOW_RATIOS = (4, 8)


def upsample_maps(maps: np.ndarray, ratio: float) -> np.ndarray:
    """Resize (C, h, w) float32 maps by `ratio` with cv2 INTER_CUBIC in one call, as the reference: (C, h*r, w*r).

    The result is a (C, H, W) view of a C-contiguous (H, W, C) array; empty maps give empty maps.
    """
    hwc = np.ascontiguousarray(np.asarray(maps, dtype=np.float32).transpose(1, 2, 0))
    if hwc.size == 0:
        return np.zeros((hwc.shape[2], round(hwc.shape[0] * ratio), round(hwc.shape[1] * ratio)), np.float32)
    up = cv2.resize(hwc, (0, 0), fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC)
    if up.ndim == 2:  # cv2 drops a single channel axis
        up = up[:, :, None]
    return up.transpose(2, 0, 1)


def upsample_crop(
    maps: np.ndarray, ratio: int, rows: tuple[int, int], cols: tuple[int, int], out_tag: str | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Cubic-resize source rows (k0, k1) and cols (j0, j1) (inclusive) of (C, h, w) maps, with the 2 pixels around
    them that the cubic taps reach; returns the C-contiguous (H, W, C) result and the source (row, col) of its
    pixel (0, 0). For ratios in WINDOW_RATIOS its part over rows k0..k1 and cols j0..j1 equals the full resize
    (`upsample_maps`) there bit for bit. `out_tag` writes into this thread's reused scratch array of that name."""
    (k0, k1), (j0, j1) = rows, cols
    h, w = maps.shape[1:]
    a0, a1, b0, b1 = max(k0 - 2, 0), min(k1 + 2, h - 1), max(j0 - 2, 0), min(j1 + 2, w - 1)
    crop = np.ascontiguousarray(maps[:, a0 : a1 + 1, b0 : b1 + 1].transpose(1, 2, 0), dtype=np.float32)
    shape = ((a1 - a0 + 1) * ratio, (b1 - b0 + 1) * ratio, maps.shape[0])
    out = None if out_tag is None else SCRATCH.get(out_tag, shape, np.float32)
    up = cv2.resize(crop, (0, 0), dst=out, fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC)
    return up.reshape(shape), (a0, b0)


@functools.cache
def windows_are_exact(ratio: int) -> bool:
    """Whether, with this OpenCV build and CPU, `upsample_crop` windows equal the full resize at `ratio`."""
    if ratio not in WINDOW_RATIOS:
        return False
    rng = np.random.default_rng(0)
    for channels in (18, 38):
        for width in range(5, 14):
            maps = rng.normal(0.0, 1.0, (channels, 9, width)).astype(np.float32)
            full = upsample_maps(maps, ratio)
            for rows, cols in (((2, 6), (1, width - 3)), ((0, 3), (3, width - 1)), ((4, 8), (0, width // 2))):
                window = upsample_window(maps, ratio, rows, cols)
                expected = full[:, ratio * rows[0] : ratio * (rows[1] + 1), ratio * cols[0] : ratio * (cols[1] + 1)]
                if not np.array_equal(window.transpose(2, 0, 1), expected):
                    return False
    return True


def upsample_window(
    maps: np.ndarray, ratio: int, rows: tuple[int, int], cols: tuple[int, int], out_tag: str | None = None
) -> np.ndarray:
    """The (H, W, C) upsampled pixels of source rows (k0, k1) and cols (j0, j1) (inclusive), via `upsample_crop`."""
    crop, (a0, b0) = upsample_crop(maps, ratio, rows, cols, out_tag)
    r = ratio
    return crop[r * (rows[0] - a0) : r * (rows[1] - a0 + 1), r * (cols[0] - b0) : r * (cols[1] - b0 + 1)]


def hot_window(keypoint_maps: np.ndarray, threshold: float) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Source rows and cols (inclusive spans) outside which no upsampled value of (K, h, w) maps reaches
    `threshold` (a peak needs one); None when no value can. Source values below threshold / CUBIC_GAIN cannot make
    one, and an upsampled pixel's taps reach 2 source pixels."""
    hot = (np.abs(keypoint_maps) >= threshold / (CUBIC_GAIN * 1.001)).any(axis=0)
    rows, cols = np.flatnonzero(hot.any(axis=1)), np.flatnonzero(hot.any(axis=0))
    if len(rows) == 0:
        return None
    h, w = hot.shape
    return (max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 2, h - 1)), (
        max(int(cols[0]) - 2, 0),
        min(int(cols[-1]) + 2, w - 1),
    )
