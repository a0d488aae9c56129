"""Vectorised grouping that returns exactly the reference-exact decoder's peaks and pose entries.

Same inputs and outputs as `lightpose.decode.decode_upsampled`; the per-peak, per-pair and per-connection Python
loops of the reference are replaced by numpy passes over all keypoint types and limbs at once. Every floating-point
value is computed by the same float32/float64 operations in the same order as the reference, so results are bit
for bit equal (tests/test_decode_fast.py checks this on random, noisy and synthetic-crowd maps).
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from lightpose.skeleton import GAP_FILLING_LIMBS, LIMB_PAF_CHANNELS, LIMBS, NUM_KEYPOINTS, NUM_LIMBS

PEAK_THRESHOLD = np.float32(0.1)
PEAK_MIN_DISTANCE = 6
POINTS_PER_LIMB = 10
MIN_PAF_SCORE = 0.05
MIN_VALID_POINTS = 9  # the reference's "valid_num / 10 > 0.8"
MIN_POSE_KEYPOINTS = 3
MIN_POSE_MEAN_SCORE = 0.2
ENTRY_SIZE = NUM_KEYPOINTS + 2
SCORE, COUNT = NUM_KEYPOINTS, NUM_KEYPOINTS + 1

_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint8)
_LIMB_A = np.array([a for a, _ in LIMBS], dtype=np.int64)
_LIMB_B = np.array([b for _, b in LIMBS], dtype=np.int64)
_LIMB_PAF_X = np.array([x for x, _ in LIMB_PAF_CHANNELS], dtype=np.int64)
_LIMB_PAF_Y = np.array([y for _, y in LIMB_PAF_CHANNELS], dtype=np.int64)


class Scratch(threading.local):
    """Per-thread reusable work arrays: fresh multi-megabyte temporaries would cost page faults on every call."""

    def __init__(self) -> None:
        self.flat: dict[str, np.ndarray] = {}

    def get(self, tag: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A C-contiguous array of `shape` for `tag`, reused (and overwritten) by the next call with that tag."""
        size = math.prod(shape)
        buffer = self.flat.get(tag)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self.flat[tag] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


SCRATCH = Scratch()


def neighbour_max(maps_hwc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) float32: the maximum of each pixel's 4 neighbours inside the map (NaN if any of them is NaN).

    Written to `out` (C-contiguous, same shape) when given, else to a new array.
    """
    if not np.isnan(maps_hwc.min()):
        out = np.empty(maps_hwc.shape, np.float32) if out is None else out
        cv2.dilate(maps_hwc, _CROSS, dst=out.reshape(maps_hwc.shape[:2] + (-1,)))  # outside: ignored (-inf pad)
        return out
    padded = np.pad(maps_hwc, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    vertical = np.maximum(padded[:-2, 1:-1], padded[2:, 1:-1])
    return np.maximum(vertical, np.maximum(padded[1:-1, :-2], padded[1:-1, 2:]), out=out)


def find_all_peaks(heatmaps_hwc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of the first 18 channels of (H, W, C) float32 heatmaps: pixels >= 0.1 strictly greater
    than their 4 neighbours (outside the map counts as 0), as the reference's test on the 0.1-thresholded map
    (a pixel >= 0.1 is greater than any neighbour that thresholding zeroes).

    Returns (type, x, y) int64 arrays sorted by type, then x, then y (the reference's per-type peak order).
    """
    shape = heatmaps_hwc.shape
    mask = np.greater(heatmaps_hwc, neighbour_max(heatmaps_hwc, SCRATCH.get("nmax", shape, np.float32)))
    mask &= np.greater_equal(heatmaps_hwc, PEAK_THRESHOLD, out=SCRATCH.get("above", shape, np.bool_))
    flat = np.flatnonzero(mask)
    pixel, types = np.divmod(flat, heatmaps_hwc.shape[2])
    ys, xs = np.divmod(pixel, heatmaps_hwc.shape[1])
    ours = types < NUM_KEYPOINTS
    types, xs, ys = types[ours], xs[ours], ys[ours]
    order = np.lexsort((ys, xs, types))
    return types[order], xs[order], ys[order]


def close_peak_mask(types: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Keep-mask of the reference's greedy suppression for peaks sorted by (type, x, y).

    A peak is dropped when it lies strictly closer than 6 pixels to an earlier kept peak of its type.
    """
    n = len(xs)
    firsts, seconds = [], []
    for offset in range(1, n):
        near = (types[offset:] == types[:-offset]) & (xs[offset:] - xs[:-offset] < PEAK_MIN_DISTANCE)
        if not near.any():  # sorted by x within a type: no pair further apart in the order can be near either
            break
        dx = xs[offset:] - xs[:-offset]
        dy = ys[offset:] - ys[:-offset]
        first = np.nonzero(near & (dx * dx + dy * dy < PEAK_MIN_DISTANCE * PEAK_MIN_DISTANCE))[0]
        firsts.append(first)
        seconds.append(first + offset)
    keep = np.ones(n, dtype=bool)
    if not firsts:
        return keep
    first_all, second_all = np.concatenate(firsts), np.concatenate(seconds)
    order = np.lexsort((first_all, second_all))
    keep_list = [True] * n
    # Pairs by increasing second peak: the first peak's fate is final when its pair is reached.
    for i, j in zip(first_all[order].tolist(), second_all[order].tolist()):
        if keep_list[i]:
            keep_list[j] = False
    return np.asarray(keep_list, dtype=bool)


def extract_all_peaks(heatmaps: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint candidates of the 18 keypoint channels of (>=18, H, W) float32 upsampled heatmaps.

    The maps may be a window of larger maps whose pixel (0, 0) is at `origin` (x, y) there, if every pixel outside
    the window is below 0.1 and not NaN. Returns (all_keypoints float64 (K, 4): x, y (of the larger maps), score,
    global id, by type then x then y; counts int64 (18,)).
    """
    hwc = heatmaps.transpose(1, 2, 0)
    if hwc.strides[2] != hwc.itemsize or hwc.strides[1] != hwc.shape[2] * hwc.itemsize:
        hwc = np.ascontiguousarray(hwc)  # OpenCV needs each row's pixels contiguous (rows may be strided)
    types, xs, ys = find_all_peaks(hwc)
    keep = close_peak_mask(types, xs, ys)
    types, xs, ys = types[keep], xs[keep], ys[keep]
    keypoints = np.empty((len(xs), 4), dtype=np.float64)
    keypoints[:, 0] = xs + origin[0]
    keypoints[:, 1] = ys + origin[1]
    keypoints[:, 2] = heatmaps[types, ys, xs]
    keypoints[:, 3] = np.arange(len(xs))
    return keypoints, np.bincount(types, minlength=NUM_KEYPOINTS)


def _limb_pairs(counts: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (limb, a, b) candidate pairs, limb by limb with b the outer index: int64 limb, a row, b row (T,)."""
    n_a, n_b = counts[_LIMB_A], counts[_LIMB_B]
    sizes = n_a * n_b
    limb = np.repeat(np.arange(NUM_LIMBS), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    b_local, a_local = np.divmod(local, np.repeat(np.maximum(n_a, 1), sizes))
    return limb, starts[_LIMB_A][limb] + a_local, starts[_LIMB_B][limb] + b_local


def _field_scores(
    x: np.ndarray,
    y: np.ndarray,
    channel: np.ndarray,
    ux: np.ndarray,
    uy: np.ndarray,
    pafs: np.ndarray,
    origin: tuple[int, int],
) -> np.ndarray:
    """PAF . unit at integer points x, y (int64, any shape): float32, as the reference's (field * unit).sum(-1).

    channel: x-channel of each point's limb (the y-channel is the next one); pafs float32 C-contiguous (H, W, 38),
    whose pixel (0, 0) is at `origin` (x, y) of the points' frame.
    """
    flat = ((y - origin[1]) * pafs.shape[1] + (x - origin[0])) * pafs.shape[2] + channel
    return pafs.take(flat) * ux + pafs.take(flat + 1) * uy


def score_all_limbs(
    keypoints: np.ndarray, counts: np.ndarray, pafs_hwc: np.ndarray, origin: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every candidate pair of every limb along its PAF, as the reference's per-limb scoring.

    keypoints float64 (K, 4) by type; counts int64 (18,); pafs_hwc float32 (H, W, 38) upsampled PAFs, or a window
    of them that holds every keypoint, with its pixel (0, 0) at `origin` (x, y) of the keypoints' frame.
    Returns the passing pairs (limb, a row, b row, score float64), limb by limb in the reference's pair order.
    """
    pafs = np.ascontiguousarray(pafs_hwc)
    starts = np.cumsum(counts) - counts
    limb, a_row, b_row = _limb_pairs(counts, starts)
    kx = keypoints[:, 0].astype(np.float32)
    ky = keypoints[:, 1].astype(np.float32)
    ax, ay = kx[a_row], ky[a_row]
    dx, dy = kx[b_row] - ax, ky[b_row] - ay
    denom = np.sqrt(dx * dx + dy * dy) + np.float32(1e-6)
    ux, uy = dx / denom, dy / denom
    step_x = np.float32(1 / (POINTS_PER_LIMB - 1)) * dx
    step_y = np.float32(1 / (POINTS_PER_LIMB - 1)) * dy
    channel = _LIMB_PAF_X[limb]
    # A pair needs 9 of its 10 points above 0.05: two failures among a few probe points rule it out. Inner points
    # go first (a pair of keypoints of different people usually crosses empty field). The probes are computed with
    # the same float32 operations as the full scoring below.
    fails = np.zeros(len(limb), dtype=np.int64)
    alive = np.arange(len(limb))
    for point in (POINTS_PER_LIMB // 2, 2, 7):
        t = np.float32(point)
        px = (step_x[alive] * t + ax[alive]).round().astype(np.int32).astype(np.int64)
        py = (step_y[alive] * t + ay[alive]).round().astype(np.int32).astype(np.int64)
        fails[alive] += _field_scores(px, py, channel[alive], ux[alive], uy[alive], pafs, origin) <= MIN_PAF_SCORE
        alive = alive[fails[alive] <= POINTS_PER_LIMB - MIN_VALID_POINTS]
    grid = np.arange(POINTS_PER_LIMB, dtype=np.float32)
    px = (step_x[alive, None] * grid + ax[alive, None]).round().astype(np.int32).astype(np.int64)
    py = (step_y[alive, None] * grid + ay[alive, None]).round().astype(np.int32).astype(np.int64)
    point_scores = _field_scores(px, py, channel[alive, None], ux[alive, None], uy[alive, None], pafs, origin)
    valid = point_scores > MIN_PAF_SCORE
    valid_num = valid.sum(1)
    scores = (point_scores * valid).sum(1) / (valid_num + 1e-6)
    success_ratio = valid_num / POINTS_PER_LIMB
    passing = (scores > 0) & (success_ratio > 0.8)
    chosen = alive[passing]
    return limb[chosen], a_row[chosen], b_row[chosen], scores[passing]


def match_greedily(
    limb: np.ndarray, a_row: np.ndarray, b_row: np.ndarray, scores: np.ndarray, num_keypoints: int
) -> np.ndarray:
    """The reference's one-to-one matching, all limbs at once: indices of the kept pairs, limb by limb.

    Per limb, pairs are taken in the order of numpy's default argsort of the limb's `scores`, reversed; a pair is
    kept when neither end is used by a kept pair before it in that order. Inputs (T,) grouped by limb; returns int64
    indices into them, limb by limb, best score first.
    """
    bounds = np.searchsorted(limb, np.arange(NUM_LIMBS + 1))
    order = np.concatenate(
        [lo + scores[lo:hi].argsort()[::-1] for lo, hi in zip(bounds.tolist(), bounds[1:].tolist()) if hi > lo]
        or [np.zeros(0, dtype=np.int64)]
    )
    a = limb[order] * num_keypoints + a_row[order]  # keypoint ids made distinct per limb
    b = limb[order] * num_keypoints + b_row[order]
    size = NUM_LIMBS * num_keypoints
    remaining = np.arange(len(order))
    kept = []
    # Rounds: a pair that is the first remaining use of both its ends is kept, and every later pair sharing an end
    # with it is dropped; what remains is matched the same way.
    first_a = np.full(size, len(order))
    first_b = np.full(size, len(order))
    used = np.zeros(size, dtype=bool)
    while remaining.size:
        ar, br = a[remaining], b[remaining]
        np.minimum.at(first_a, ar, remaining)
        np.minimum.at(first_b, br, remaining)
        win = (first_a[ar] == remaining) & (first_b[br] == remaining)
        kept.append(remaining[win])
        used[ar[win]] = True
        lost_a = used[ar]
        used[ar[win]] = False
        used[br[win]] = True
        lost = lost_a | used[br]
        used[br[win]] = False
        first_a[ar] = len(order)
        first_b[br] = len(order)
        remaining = remaining[~lost]
    return order[np.sort(np.concatenate(kept))] if kept else np.zeros(0, dtype=np.int64)


def assemble_entries(
    limb: np.ndarray, a_ids: np.ndarray, b_ids: np.ndarray, scores: np.ndarray, kpt_scores: np.ndarray
) -> np.ndarray:
    """The reference's limb-by-limb pose assembly over the kept connections (limb order, best score first).

    Within a limb the connections use distinct keypoints, so each entry takes at most one of them and the limb's
    updates are applied at once. Returns the pose entries float64 (P, 20) before the final filter.
    """
    entries = np.full((len(limb), ENTRY_SIZE), -1.0)
    size = 0
    lookup = np.full(len(kpt_scores) + 1, -1, dtype=np.int64)  # keypoint id -> connection; id -1 maps to the end
    bounds = np.searchsorted(limb, np.arange(NUM_LIMBS + 1))
    for limb_index in range(NUM_LIMBS):
        lo, hi = bounds[limb_index], bounds[limb_index + 1]
        if lo == hi:
            continue
        type_a, type_b = LIMBS[limb_index]
        a, b, s = a_ids[lo:hi], b_ids[lo:hi], scores[lo:hi]
        current = entries[:size]
        col_a = current[:, type_a].astype(np.int64)
        lookup[a] = np.arange(hi - lo)
        by_a = lookup[col_a]
        lookup[a] = -1
        if limb_index in GAP_FILLING_LIMBS:
            col_b = current[:, type_b].astype(np.int64)
            fill_b = (by_a >= 0) & (col_b == -1)
            lookup[b] = np.arange(hi - lo)
            by_b = lookup[col_b]
            lookup[b] = -1
            fill_a = ~fill_b & (by_b >= 0) & (col_a == -1)
            current[fill_b, type_b] = b[by_a[fill_b]]
            current[fill_a, type_a] = a[by_b[fill_a]]
            continue
        rows = np.nonzero(by_a >= 0)[0]
        conn = by_a[rows]
        current[rows, type_b] = b[conn]
        current[rows, COUNT] += 1
        current[rows, SCORE] += kpt_scores[b[conn]] + s[conn]
        new = np.ones(hi - lo, dtype=bool)
        new[conn] = False
        count = int(new.sum())
        added = entries[size : size + count]
        added[:, type_a] = a[new]
        added[:, type_b] = b[new]
        added[:, COUNT] = 2
        added[:, SCORE] = kpt_scores[a[new]] + kpt_scores[b[new]] + s[new]
        size += count
    return entries[:size]


def group_all(
    keypoints: np.ndarray, counts: np.ndarray, pafs_hwc: np.ndarray, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Pose entries float64 (P, 20) from all keypoints (K, 4) with per-type counts (18,) and (H, W, 38) PAFs
    (a window at `origin` is enough, see `score_all_limbs`)."""
    limb, a_row, b_row, scores = score_all_limbs(keypoints, counts, pafs_hwc, origin)
    chosen = match_greedily(limb, a_row, b_row, scores, len(keypoints))
    entries = assemble_entries(limb[chosen], a_row[chosen], b_row[chosen], scores[chosen], keypoints[:, 2])
    keep = ~((entries[:, COUNT] < MIN_POSE_KEYPOINTS) | (entries[:, SCORE] / entries[:, COUNT] < MIN_POSE_MEAN_SCORE))
    return entries[keep]


def decode_upsampled_fast(heatmaps: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `decode_upsampled`: heatmaps (>=18, H, W), PAFs (38, H, W) float32 upsampled maps (validated).

    Returns (entries float64 (P, 20), all_keypoints float64 (K, 4)), bit for bit the reference-exact result.
    """
    keypoints, counts = extract_all_peaks(heatmaps)
    return group_all(keypoints, counts, pafs.transpose(1, 2, 0)), keypoints
