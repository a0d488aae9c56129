"""The decoder's loops compiled with numba (the `fast` extra): the reference loops' result, faster than numpy.

Every value is computed with the same float32/float64 operations in the same order as the reference loops
(`lightpose.decode.reference`), including numpy's pairwise sum of a limb's sample scores; numpy's argsort (whose
tie order the reference follows) stays in numpy. Upsampling stays with cv2 (`lightpose.decode.windows`).
Importing this module needs numba; `lightpose.decode` falls back to the numpy path without it.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numba
import numpy as np

from lightpose.decode.params import EPSILON, PUBLISHED, DecodeParams
from lightpose.decode.vectorised import LimbTables, filter_entries, limb_tables
from lightpose.decode.windows import CUBIC_GAIN, hot_window, upsample_crop, upsample_window
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

_jit: Any = functools.partial(numba.njit, cache=True, nogil=True)  # numba's own stubs do not fit decorators


def tap_bounds(maps: np.ndarray) -> np.ndarray:
    """float32 (C, h, w): per source pixel, the largest |value| among the 5 x 5 source pixels around it, which hold
    every cubic tap of the upsampled pixels of that source pixel (their |value| is at most CUBIC_GAIN times it)."""
    c, h, w = maps.shape
    hwc = np.abs(np.ascontiguousarray(maps.transpose(1, 2, 0)))
    bounds = cv2.dilate(hwc, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return bounds.reshape(h, w, c).transpose(2, 0, 1)


@_jit
def _grow(buffer, size):
    if size < len(buffer):
        return buffer
    bigger = np.empty((2 * len(buffer),) + buffer.shape[1:], dtype=buffer.dtype)
    bigger[:size] = buffer[:size]
    return bigger


@_jit
def _find_peaks(heatmaps, num_keypoints, threshold, distance, origin_x, origin_y, bounds, min_bound, ratio):
    """Kept peaks of (H, W, >= K) float32 heatmaps (any strides): float64 (N, 4) x, y, score, id by type, then x,
    then y; counts (K,). A peak is >= threshold and strictly greater than its in-map 4 neighbours; a peak strictly
    closer than `distance` to an earlier kept peak of its type is dropped. With ratio > 0 the maps are upsampled by
    ratio and only the ratio x ratio blocks of source pixels whose `bounds` (K, H / ratio, W / ratio) reach
    `min_bound` are searched (elsewhere every value is below the threshold)."""
    height, width = heatmaps.shape[0], heatmaps.shape[1]
    block_h, block_w = (ratio, ratio) if ratio > 0 else (height, width)
    found = np.empty((256, 3), dtype=np.int64)
    n = 0
    for k in range(num_keypoints):
        for by in range(height // block_h):
            for bx in range(width // block_w):
                if ratio > 0 and bounds[k, by, bx] < min_bound:
                    continue
                for y in range(by * block_h, (by + 1) * block_h):
                    for x in range(bx * block_w, (bx + 1) * block_w):
                        v = heatmaps[y, x, k]
                        if v < threshold:
                            continue
                        if (x > 0 and not v > heatmaps[y, x - 1, k]) or (
                            x + 1 < width and not v > heatmaps[y, x + 1, k]
                        ):
                            continue
                        if (y > 0 and not v > heatmaps[y - 1, x, k]) or (
                            y + 1 < height and not v > heatmaps[y + 1, x, k]
                        ):
                            continue
                        found = _grow(found, n)
                        found[n, 0], found[n, 1], found[n, 2] = k, x, y
                        n += 1
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):
        keys[i] = (found[i, 0] * width + found[i, 1]) * height + found[i, 2]
    order = np.argsort(keys)  # keys are distinct: any sort gives the (type, x, y) order
    keep = np.ones(n, dtype=np.bool_)
    counts = np.zeros(num_keypoints, dtype=np.int64)
    for i in range(n):
        if not keep[i]:
            continue
        ki, xi, yi = found[order[i], 0], found[order[i], 1], found[order[i], 2]
        counts[ki] += 1
        for j in range(i + 1, n):
            kj, xj, yj = found[order[j], 0], found[order[j], 1], found[order[j], 2]
            if kj != ki or xj - xi >= distance:
                break
            if (xj - xi) * (xj - xi) + (yj - yi) * (yj - yi) < distance * distance:
                keep[j] = False
    keypoints = np.empty((counts.sum(), 4), dtype=np.float64)
    m = 0
    for i in range(n):
        if keep[i]:
            k, x, y = found[order[i], 0], found[order[i], 1], found[order[i], 2]
            keypoints[m, 0], keypoints[m, 1] = x + origin_x, y + origin_y
            keypoints[m, 2], keypoints[m, 3] = heatmaps[y, x, k], m
            m += 1
    return keypoints, counts


@_jit(inline="always")
def _pairwise_sum(values, n, r):
    """numpy's float32 add.reduce of values[:n] (pairwise summation in blocks of 8, n <= 128); r: 8 floats of
    scratch."""
    if n < 8:
        res = np.float32(0)
        for i in range(n):
            res += values[i]
        return res
    r[:] = values[:8]
    i = 8
    while i < n - n % 8:
        for j in range(8):
            r[j] += values[i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += values[i]
        i += 1
    return res


@_jit
def _score_limbs(
    keypoints,
    counts,
    limb_a,
    limb_b,
    paf_x,
    paf_y,
    pafs,
    origin_x,
    origin_y,
    points,
    min_paf_score,
    min_valid,
    min_success_ratio,
    probes,
    epsilon,
):
    """Passing candidate pairs of every limb (limb, a row, b row: int64; score: float64), limb by limb, b the
    outer index. pafs: upsampled (H, W, 2L) float32 (any strides), or a window of them that holds every keypoint,
    with its pixel (0, 0) at (origin_x, origin_y)."""
    starts = np.zeros(len(counts), dtype=np.int64)
    for k in range(1, len(counts)):
        starts[k] = starts[k - 1] + counts[k - 1]
    rows = np.empty((64, 3), dtype=np.int64)
    scores = np.empty(64, dtype=np.float64)
    n = 0
    step = np.float32(1.0 / (points - 1))
    eps32 = np.float32(epsilon)
    values = np.empty(points, dtype=np.float32)
    scratch = np.empty(8, dtype=np.float32)
    max_fails = points - min_valid
    for limb in range(len(limb_a)):
        na, nb = counts[limb_a[limb]], counts[limb_b[limb]]
        cx, cy = paf_x[limb], paf_y[limb]
        for bi in range(nb):
            b = starts[limb_b[limb]] + bi
            bx, by = np.float32(keypoints[b, 0]), np.float32(keypoints[b, 1])
            for ai in range(na):
                a = starts[limb_a[limb]] + ai
                ax, ay = np.float32(keypoints[a, 0]), np.float32(keypoints[a, 1])
                dx, dy = bx - ax, by - ay
                denom = np.sqrt(dx * dx + dy * dy) + eps32
                ux, uy = dx / denom, dy / denom
                sx, sy = step * dx, step * dy
                fails = 0
                # Probe points first: more than max_fails invalid ones rule the pair out unscored.
                for p in range(len(probes) + points):
                    t = probes[p] if p < len(probes) else p - len(probes)
                    x = np.int64(np.rint(sx * np.float32(t) + ax)) - origin_x
                    y = np.int64(np.rint(sy * np.float32(t) + ay)) - origin_y
                    value = pafs[y, x, cx] * ux + pafs[y, x, cy] * uy
                    if p >= len(probes):
                        values[t] = value
                    elif not value > min_paf_score:
                        fails += 1
                        if fails > max_fails:
                            break
                if fails > max_fails:
                    continue
                valid = 0
                for t in range(points):
                    if values[t] > min_paf_score:
                        valid += 1
                    else:
                        values[t] = np.float32(0)
                score = np.float64(_pairwise_sum(values, points, scratch)) / (valid + epsilon)
                if score > 0 and valid / points > min_success_ratio:
                    rows = _grow(rows, n)
                    scores = _grow(scores, n)
                    rows[n, 0], rows[n, 1], rows[n, 2] = limb, a, b
                    scores[n] = score
                    n += 1
    return rows[:n], scores[:n]


@_jit
def _assemble(rows, scores, order, bounds, keypoints, limb_a, limb_b, redundant, num_keypoints):
    """The reference's greedy matching (pairs of each limb taken in `order`, both ends unused) and limb-by-limb
    pose assembly; returns the entries float64 (P, K + 2) before the final filter."""
    size, score_col, count_col = num_keypoints + 2, num_keypoints, num_keypoints + 1
    entries = np.full((max(len(order), 1), size), -1.0)
    count = 0
    used_a = np.zeros(len(keypoints), dtype=np.bool_)
    used_b = np.zeros(len(keypoints), dtype=np.bool_)
    conn = np.empty((len(order), 2), dtype=np.int64)
    conn_score = np.empty(len(order), dtype=np.float64)
    for limb in range(len(limb_a)):
        lo, hi = bounds[limb], bounds[limb + 1]
        ta, tb = limb_a[limb], limb_b[limb]
        m = 0
        for i in range(lo, hi):
            a, b = rows[order[i], 1], rows[order[i], 2]
            if not used_a[a] and not used_b[b]:
                used_a[a] = True
                used_b[b] = True
                conn[m, 0], conn[m, 1] = a, b
                conn_score[m] = scores[order[i]]
                m += 1
        for i in range(m):
            used_a[conn[i, 0]] = False
            used_b[conn[i, 1]] = False
        for i in range(m):
            a, b, s = conn[i, 0], conn[i, 1], conn_score[i]
            if redundant[limb]:
                for e in range(count):
                    if entries[e, ta] == a and entries[e, tb] == -1:
                        entries[e, tb] = b
                    elif entries[e, tb] == b and entries[e, ta] == -1:
                        entries[e, ta] = a
                continue
            matched = False
            for e in range(count):
                if entries[e, ta] == a:
                    entries[e, tb] = b
                    entries[e, count_col] += 1
                    entries[e, score_col] += keypoints[b, 2] + s
                    matched = True
            if not matched:
                entries[count, ta], entries[count, tb] = a, b
                entries[count, count_col] = 2
                entries[count, score_col] = (keypoints[a, 2] + keypoints[b, 2]) + s
                count += 1
    return entries[:count]


def _probes(points: int) -> np.ndarray:
    """Sample points tried first (inner ones: a pair of keypoints of different people usually crosses empty
    field); a pair with more than points - min_valid failures among them is dropped unscored."""
    return np.array(sorted({points // 2, points // 5, 7 * points // 10}), dtype=np.int64)


def group_compiled(
    keypoints: np.ndarray,
    counts: np.ndarray,
    pafs_hwc: np.ndarray,
    skeleton: Skeleton,
    params: DecodeParams,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Pose entries (P, K + 2) from keypoints (N, 4) with per-type counts (K,) and upsampled (H, W, 2L) PAFs, or a
    window of them holding every keypoint with its pixel (0, 0) at `origin` (as `vectorised.group_all`)."""
    tables: LimbTables = limb_tables(skeleton)
    rows, scores = _score_limbs(
        keypoints, counts, tables.a, tables.b, tables.paf_x, tables.paf_y, pafs_hwc, origin[0], origin[1],
        params.points_per_limb, np.float32(params.min_paf_score), params.min_valid_points, params.min_success_ratio,
        _probes(params.points_per_limb), EPSILON,
    )  # fmt: skip
    limb_bounds = np.searchsorted(rows[:, 0], np.arange(tables.count + 1))
    order = np.empty(len(scores), dtype=np.int64)
    for lo, hi in zip(limb_bounds[:-1].tolist(), limb_bounds[1:].tolist()):
        if hi > lo:
            order[lo:hi] = lo + scores[lo:hi].argsort()[::-1]  # numpy's tie order, as the reference
    entries = _assemble(
        rows, scores, order, limb_bounds, keypoints, tables.a, tables.b, tables.redundant, skeleton.num_keypoints
    )
    return filter_entries(entries, params)


def decode_compiled(
    heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO, params: DecodeParams = PUBLISHED
) -> tuple[np.ndarray, np.ndarray]:
    """Validated upsampled maps (>= K, H, W) and (2L, H, W) float32 -> (entries (P, K + 2), all_keypoints (N, 4))."""
    keypoints, counts = _find_peaks(
        heatmaps.transpose(1, 2, 0), skeleton.num_keypoints, np.float32(params.peak_threshold),
        params.peak_min_distance, 0, 0, np.zeros((0, 0, 0), np.float32), 0.0, 0,
    )  # fmt: skip
    return group_compiled(keypoints, counts, pafs.transpose(1, 2, 0), skeleton, params), keypoints


def decode_windowed_compiled(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    ratio: int,
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> tuple[np.ndarray, np.ndarray]:
    """Validated stride-8 maps (where `windows_are_exact(ratio)`): the heatmaps upsampled over `hot_window` and
    searched only in blocks that can reach the threshold, the PAFs upsampled over the keypoints' bounding box.
    Returns what decoding the fully upsampled maps returns."""
    k = skeleton.num_keypoints
    window = hot_window(heatmaps[:k], params.peak_threshold)
    if window is None:
        return np.zeros((0, k + 2)), np.zeros((0, 4))
    (r0, r1), (c0, c1) = window
    hot = upsample_window(heatmaps[:k], ratio, (r0, r1), (c0, c1), "heatmaps")
    bounds = tap_bounds(heatmaps[:k])[:, r0 : r1 + 1, c0 : c1 + 1]
    keypoints, counts = _find_peaks(
        hot, k, np.float32(params.peak_threshold), params.peak_min_distance, ratio * c0, ratio * r0, bounds,
        params.peak_threshold / (CUBIC_GAIN * 1.001), ratio,
    )  # fmt: skip
    if len(keypoints) == 0:
        return np.zeros((0, k + 2)), keypoints
    x0, y0 = (keypoints[:, :2].min(axis=0) // ratio).astype(int)
    x1, y1 = (keypoints[:, :2].max(axis=0) // ratio).astype(int)
    paf_crop, (a0, b0) = upsample_crop(pafs, ratio, (int(y0), int(y1)), (int(x0), int(x1)), "pafs")
    return group_compiled(keypoints, counts, paf_crop, skeleton, params, (ratio * b0, ratio * a0)), keypoints
