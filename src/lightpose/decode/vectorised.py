"""The vectorised numpy decoder: exactly the reference loops' peaks and pose entries, several times faster.

The per-peak, per-pair and per-connection Python loops of `lightpose.decode.reference` are replaced by numpy passes
over all keypoint types and limbs at once. Every floating-point value is computed by the same float32/float64
operations in the same order as the reference, so results are bit for bit equal (tests/test_decode_fast.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from lightpose.decode.params import EPSILON, PUBLISHED, DecodeParams
from lightpose.decode.scratch import SCRATCH
from lightpose.decode.windows import hot_window, upsample_crop, upsample_window
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

# Candidate pairs (over all limbs) scored at once: bounds memory when there are thousands of peaks per type.
PAIRS_PER_CHUNK = 1 << 16
_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint8)


@dataclass(frozen=True)
class LimbTables:
    """A skeleton's limb tables as int64 arrays: keypoint types a and b, PAF x and y channels, redundant flags."""

    a: np.ndarray
    b: np.ndarray
    paf_x: np.ndarray
    paf_y: np.ndarray
    redundant: np.ndarray

    @property
    def count(self) -> int:
        return len(self.a)


@functools.cache
def limb_tables(skeleton: Skeleton) -> LimbTables:
    """The (cached) `LimbTables` of a skeleton."""
    limbs = np.array(skeleton.limbs, dtype=np.int64).reshape(-1, 2)
    channels = np.array(skeleton.paf_channels, dtype=np.int64).reshape(-1, 2)
    redundant = np.zeros(len(limbs), dtype=np.bool_)
    redundant[list(skeleton.redundant_limbs)] = True
    return LimbTables(limbs[:, 0], limbs[:, 1], channels[:, 0], channels[:, 1], redundant)


def neighbour_max(maps_hwc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) float32 (finite): the maximum of each pixel's 4 neighbours inside the map (-inf where none).

    Written to `out` (C-contiguous, same shape) when given, else to a new array.
    """
    out = np.empty(maps_hwc.shape, np.float32) if out is None else out
    cv2.dilate(maps_hwc, _CROSS, dst=out.reshape(maps_hwc.shape[:2] + (-1,)))  # outside: ignored (-inf pad)
    return out


def find_all_peaks(
    heatmaps_hwc: np.ndarray, num_keypoints: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of the first `num_keypoints` channels of (H, W, C) float32 heatmaps: pixels >= threshold strictly
    greater than their 4 neighbours (outside the map counts as 0), as the reference's test on the thresholded map
    (a pixel >= threshold > 0 is greater than any neighbour that thresholding zeroes).

    Returns (type, x, y) int64 arrays sorted by type, then x, then y (the reference's per-type peak order).
    """
    shape = heatmaps_hwc.shape
    mask = np.greater(heatmaps_hwc, neighbour_max(heatmaps_hwc, SCRATCH.get("nmax", shape, np.float32)))
    mask &= np.greater_equal(heatmaps_hwc, np.float32(threshold), out=SCRATCH.get("above", shape, np.bool_))
    flat = np.flatnonzero(mask)
    pixel, types = np.divmod(flat, shape[2])
    ys, xs = np.divmod(pixel, shape[1])
    ours = types < num_keypoints
    types, xs, ys = types[ours], xs[ours], ys[ours]
    order = np.lexsort((ys, xs, types))
    return types[order], xs[order], ys[order]


def close_peak_mask(types: np.ndarray, xs: np.ndarray, ys: np.ndarray, distance: int) -> np.ndarray:
    """Keep-mask of the reference's greedy suppression for peaks sorted by (type, x, y).

    A peak is dropped when it lies strictly closer than `distance` to an earlier kept peak of its type.
    """
    n = len(xs)
    firsts, seconds = [], []
    for offset in range(1, n):
        near = (types[offset:] == types[:-offset]) & (xs[offset:] - xs[:-offset] < distance)
        if not near.any():  # sorted by x within a type: no pair further apart in the order can be near either
            break
        dx = xs[offset:] - xs[:-offset]
        dy = ys[offset:] - ys[:-offset]
        first = np.nonzero(near & (dx * dx + dy * dy < distance * distance))[0]
        firsts.append(first)
        seconds.append(first + offset)
    if not firsts:
        return np.ones(n, dtype=bool)
    first_all, second_all = np.concatenate(firsts), np.concatenate(seconds)
    order = np.lexsort((first_all, second_all))
    keep_list = [True] * n
    # Pairs by increasing second peak: the first peak's fate is final when its pair is reached.
    for i, j in zip(first_all[order].tolist(), second_all[order].tolist()):
        if keep_list[i]:
            keep_list[j] = False
    return np.asarray(keep_list, dtype=bool)


def extract_all_peaks(
    heatmaps: np.ndarray, num_keypoints: int, params: DecodeParams = PUBLISHED, origin: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint candidates of the first `num_keypoints` channels of (>= K, H, W) float32 upsampled heatmaps.

    The maps may be a window of larger maps whose pixel (0, 0) is at `origin` (x, y) there, if every pixel outside
    the window is below the peak threshold. Returns (all_keypoints float64 (N, 4): x, y (of the larger maps),
    score, global id, by type then x then y; counts int64 (K,)).
    """
    hwc = heatmaps.transpose(1, 2, 0)
    if hwc.strides[2] != hwc.itemsize or hwc.strides[1] != hwc.shape[2] * hwc.itemsize:
        hwc = np.ascontiguousarray(hwc)  # OpenCV needs each row's pixels contiguous (rows may be strided)
    types, xs, ys = find_all_peaks(hwc, num_keypoints, params.peak_threshold)
    keep = close_peak_mask(types, xs, ys, params.peak_min_distance)
    types, xs, ys = types[keep], xs[keep], ys[keep]
    keypoints = np.empty((len(xs), 4), dtype=np.float64)
    keypoints[:, 0] = xs + origin[0]
    keypoints[:, 1] = ys + origin[1]
    keypoints[:, 2] = heatmaps[types, ys, xs]
    keypoints[:, 3] = np.arange(len(xs))
    return keypoints, np.bincount(types, minlength=num_keypoints)


def _limb_pairs(counts: np.ndarray, tables: LimbTables, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs lo..hi-1 of the enumeration of all (limb, a, b), limb by limb with b the outer index:
    int64 limb, a row, b row."""
    starts = np.cumsum(counts) - counts
    n_a, n_b = counts[tables.a], counts[tables.b]
    ends = np.cumsum(n_a * n_b)
    index = np.arange(lo, hi)
    limb = np.searchsorted(ends, index, side="right")
    local = index - (ends - n_a * n_b)[limb]
    b_local, a_local = np.divmod(local, n_a[limb])
    return limb, starts[tables.a][limb] + a_local, starts[tables.b][limb] + b_local


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

    channel: (x-channel, y-channel) flat offsets of each point's limb, stacked on a last axis of 2; pafs float32
    C-contiguous (H, W, 2L) whose pixel (0, 0) is at `origin` (x, y) of the points' frame.
    """
    flat = ((y - origin[1]) * pafs.shape[1] + (x - origin[0])) * pafs.shape[2]
    return pafs.take(flat + channel[..., 0]) * ux + pafs.take(flat + channel[..., 1]) * uy


def _score_chunk(
    limb: np.ndarray,
    a_row: np.ndarray,
    b_row: np.ndarray,
    keypoints: np.ndarray,
    pafs: np.ndarray,
    tables: LimbTables,
    params: DecodeParams,
    origin: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the chunk of the passing pairs, and their scores (float64)."""
    n = params.points_per_limb
    kx = keypoints[:, 0].astype(np.float32)
    ky = keypoints[:, 1].astype(np.float32)
    ax, ay = kx[a_row], ky[a_row]
    dx, dy = kx[b_row] - ax, ky[b_row] - ay
    denom = np.sqrt(dx * dx + dy * dy) + np.float32(EPSILON)
    ux, uy = dx / denom, dy / denom
    step = np.float32(1 / (n - 1))
    step_x, step_y = step * dx, step * dy
    channel = np.stack([tables.paf_x[limb], tables.paf_y[limb]], axis=-1)
    threshold = np.float32(params.min_paf_score)
    # A pair needs min_valid_points of its points above threshold: a few failing probe points rule it out. Inner
    # points go first (a pair of keypoints of different people usually crosses empty field); the probes use the
    # same float32 operations as the full scoring below.
    max_fails = n - params.min_valid_points
    fails = np.zeros(len(limb), dtype=np.int64)
    alive = np.arange(len(limb))
    for point in sorted({n // 2, n // 5, 7 * n // 10}):
        t = np.float32(point)
        px = (step_x[alive] * t + ax[alive]).round().astype(np.int32).astype(np.int64)
        py = (step_y[alive] * t + ay[alive]).round().astype(np.int32).astype(np.int64)
        fails[alive] += _field_scores(px, py, channel[alive], ux[alive], uy[alive], pafs, origin) <= threshold
        alive = alive[fails[alive] <= max_fails]
    grid = np.arange(n, dtype=np.float32)
    px = (step_x[alive, None] * grid + ax[alive, None]).round().astype(np.int32).astype(np.int64)
    py = (step_y[alive, None] * grid + ay[alive, None]).round().astype(np.int32).astype(np.int64)
    point_scores = _field_scores(px, py, channel[alive, None], ux[alive, None], uy[alive, None], pafs, origin)
    valid = point_scores > threshold
    valid_num = valid.sum(1)
    scores = (point_scores * valid).sum(1) / (valid_num + EPSILON)
    success_ratio = valid_num / n
    passing = (scores > 0) & (success_ratio > params.min_success_ratio)
    return alive[passing], scores[passing]


def score_all_limbs(
    keypoints: np.ndarray,
    counts: np.ndarray,
    pafs_hwc: np.ndarray,
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
    origin: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every candidate pair of every limb along its PAF, as the reference's per-limb scoring.

    keypoints float64 (N, 4) by type; counts int64 (K,); pafs_hwc float32 (H, W, 2L) upsampled PAFs, or a window
    of them that holds every keypoint, with its pixel (0, 0) at `origin` (x, y) of the keypoints' frame.
    Returns the passing pairs (limb, a row, b row, score float64), limb by limb in the reference's pair order.
    Pairs are scored PAIRS_PER_CHUNK at a time.
    """
    tables = limb_tables(skeleton)
    pafs = np.ascontiguousarray(pafs_hwc)
    total = int((counts[tables.a] * counts[tables.b]).sum())
    parts = []
    for lo in range(0, total, PAIRS_PER_CHUNK):
        limb, a_row, b_row = _limb_pairs(counts, tables, lo, min(lo + PAIRS_PER_CHUNK, total))
        chosen, scores = _score_chunk(limb, a_row, b_row, keypoints, pafs, tables, params, origin)
        parts.append((limb[chosen], a_row[chosen], b_row[chosen], scores))
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0)
    limb, a_row, b_row, scores = (np.concatenate(column) for column in zip(*parts))
    return limb, a_row, b_row, scores


def match_greedily(
    limb: np.ndarray, a_row: np.ndarray, b_row: np.ndarray, scores: np.ndarray, num_keypoints: int, num_limbs: int
) -> np.ndarray:
    """The reference's one-to-one matching, all limbs at once: indices of the kept pairs, limb by limb.

    Per limb, pairs are taken in the order of numpy's default argsort of the limb's `scores`, reversed; a pair is
    kept when neither end is used by a kept pair before it in that order. Inputs (T,) grouped by limb; returns int64
    indices into them, limb by limb, best score first. num_keypoints: the number of keypoint rows.
    """
    bounds = np.searchsorted(limb, np.arange(num_limbs + 1))
    order = np.concatenate(
        [lo + scores[lo:hi].argsort()[::-1] for lo, hi in zip(bounds.tolist(), bounds[1:].tolist()) if hi > lo]
        or [np.zeros(0, dtype=np.int64)]
    )
    a = limb[order] * num_keypoints + a_row[order]  # keypoint ids made distinct per limb
    b = limb[order] * num_keypoints + b_row[order]
    size = num_limbs * num_keypoints
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
    limb: np.ndarray,
    a_ids: np.ndarray,
    b_ids: np.ndarray,
    scores: np.ndarray,
    kpt_scores: np.ndarray,
    skeleton: Skeleton = OPENPOSE_COCO,
) -> np.ndarray:
    """The reference's limb-by-limb pose assembly over the kept connections (limb order, best score first).

    Within a limb the connections use distinct keypoints, so each entry takes at most one of them and the limb's
    updates are applied at once. Returns the pose entries float64 (P, K + 2) before the final filter.
    """
    k = skeleton.num_keypoints
    score_col, count_col = k, k + 1
    entries = np.full((len(limb), k + 2), -1.0)
    size = 0
    lookup = np.full(len(kpt_scores) + 1, -1, dtype=np.int64)  # keypoint id -> connection; id -1 maps to the end
    bounds = np.searchsorted(limb, np.arange(len(skeleton.limbs) + 1))
    for limb_index, (type_a, type_b) in enumerate(skeleton.limbs):
        lo, hi = bounds[limb_index], bounds[limb_index + 1]
        if lo == hi:
            continue
        a, b, s = a_ids[lo:hi], b_ids[lo:hi], scores[lo:hi]
        current = entries[:size]
        col_a = current[:, type_a].astype(np.int64)
        lookup[a] = np.arange(hi - lo)
        by_a = lookup[col_a]
        lookup[a] = -1
        if limb_index in skeleton.redundant_limbs:
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
        current[rows, count_col] += 1
        current[rows, score_col] += kpt_scores[b[conn]] + s[conn]
        new = np.ones(hi - lo, dtype=bool)
        new[conn] = False
        count = int(new.sum())
        added = entries[size : size + count]
        added[:, type_a] = a[new]
        added[:, type_b] = b[new]
        added[:, count_col] = 2
        added[:, score_col] = kpt_scores[a[new]] + kpt_scores[b[new]] + s[new]
        size += count
    return entries[:size]


def filter_entries(entries: np.ndarray, params: DecodeParams) -> np.ndarray:
    """The reference's last step: drop entries with too few keypoints or too low a score per keypoint."""
    score, count = entries[:, -2], entries[:, -1]
    return entries[~((count < params.min_pose_keypoints) | (score / count < params.min_pose_mean_score))]


def group_all(
    keypoints: np.ndarray,
    counts: np.ndarray,
    pafs_hwc: np.ndarray,
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Pose entries float64 (P, K + 2) from all keypoints (N, 4) with per-type counts (K,) and (H, W, 2L) PAFs
    (a window at `origin` is enough, see `score_all_limbs`)."""
    limb, a_row, b_row, scores = score_all_limbs(keypoints, counts, pafs_hwc, skeleton, params, origin)
    chosen = match_greedily(limb, a_row, b_row, scores, len(keypoints), len(skeleton.limbs))
    entries = assemble_entries(limb[chosen], a_row[chosen], b_row[chosen], scores[chosen], keypoints[:, 2], skeleton)
    return filter_entries(entries, params)


def decode_vectorised(
    heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO, params: DecodeParams = PUBLISHED
) -> tuple[np.ndarray, np.ndarray]:
    """Validated upsampled maps (>= K, H, W) and (2L, H, W) float32 -> (entries (P, K + 2), all_keypoints (N, 4))."""
    keypoints, counts = extract_all_peaks(heatmaps, skeleton.num_keypoints, params)
    return group_all(keypoints, counts, pafs.transpose(1, 2, 0), skeleton, params), keypoints


def decode_windowed(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    ratio: int,
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> tuple[np.ndarray, np.ndarray]:
    """Validated stride-8 maps, upsampled by `ratio` (where `windows_are_exact`) only where keypoints can be: the
    heatmaps over `hot_window`, the PAFs over the keypoints' bounding box (every limb's sample points lie in it).
    Returns what decoding the fully upsampled maps returns."""
    k = skeleton.num_keypoints
    empty = np.zeros((0, k + 2)), np.zeros((0, 4))
    window = hot_window(heatmaps[:k], params.peak_threshold)
    if window is None:
        return empty
    rows, cols = window
    hot = upsample_window(heatmaps[:k], ratio, rows, cols, "heatmaps")
    keypoints, counts = extract_all_peaks(hot.transpose(2, 0, 1), k, params, (ratio * cols[0], ratio * rows[0]))
    if len(keypoints) == 0:
        return empty[0], keypoints
    x0, y0 = (keypoints[:, :2].min(axis=0) // ratio).astype(int)
    x1, y1 = (keypoints[:, :2].max(axis=0) // ratio).astype(int)
    paf_crop, (a0, b0) = upsample_crop(pafs, ratio, (int(y0), int(y1)), (int(x0), int(x1)), "pafs")
    return group_all(keypoints, counts, paf_crop, skeleton, params, (ratio * b0, ratio * a0)), keypoints
