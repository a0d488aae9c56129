"""Heatmaps + part affinity fields -> poses: peaks, limb scoring and greedy grouping.

This is the reference-exact decoder: for the same maps it returns the published implementation's peaks, pose
entries and scores, bit for bit (REFERENCE.md section c). The loops below are the specification; by default the
vectorised `lightpose.decode_fast` computes the same result several times faster.
Pose entries are float64 (P, 20) arrays: [0..17] global keypoint ids (-1 where missing), [18] pose score,
[19] keypoint count; keypoints are float64 (K, 4) rows (x, y, score, id) in upsampled-map pixels.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from lightpose.decode_fast import SCRATCH, decode_upsampled_fast, extract_all_peaks, group_all
from lightpose.skeleton import STRIDE
from lightpose.pose import Pose
from lightpose.skeleton import GAP_FILLING_LIMBS, LIMB_PAF_CHANNELS, LIMBS, NUM_KEYPOINTS, NUM_LIMBS, NUM_PAFS

PEAK_THRESHOLD = 0.1
PEAK_MIN_DISTANCE = 6  # map pixels; a later peak strictly closer than this to a kept one is dropped
POINTS_PER_LIMB = 10
MIN_PAF_SCORE = 0.05
MIN_SUCCESS_RATIO = 0.8
MIN_POSE_KEYPOINTS = 3
MIN_POSE_MEAN_SCORE = 0.2
ENTRY_SIZE = NUM_KEYPOINTS + 2
SCORE, COUNT = NUM_KEYPOINTS, NUM_KEYPOINTS + 1


def upsample_maps(maps: np.ndarray, ratio: float) -> np.ndarray:
    """Resize (C, h, w) float32 maps by `ratio` with cv2 INTER_CUBIC in one call, as the reference: (C, h*r, w*r).

    The result is a (C, H, W) view of a C-contiguous (H, W, C) array.
    """
    hwc = np.ascontiguousarray(np.asarray(maps, dtype=np.float32).transpose(1, 2, 0))
    up = cv2.resize(hwc, (0, 0), fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC)
    if up.ndim == 2:  # cv2 drops a single channel axis
        up = up[:, :, None]
    return up.transpose(2, 0, 1)


def find_peaks(heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of one (H, W) heatmap, thresholded at 0.1: a peak is strictly greater than its 4 neighbours.

    Returns x and y (int64), sorted by x (stable, so ties keep row-major order), before distance suppression.
    """
    hm = np.where(heatmap < PEAK_THRESHOLD, np.float32(0), heatmap)
    padded = np.pad(hm, 1)
    center = padded[1:-1, 1:-1]
    is_peak = (
        (center > padded[1:-1, 2:])
        & (center > padded[1:-1, :-2])
        & (center > padded[2:, 1:-1])
        & (center > padded[:-2, 1:-1])
    )
    ys, xs = np.nonzero(is_peak)
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


def suppress_close_peaks(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Greedy suppression in the given (x) order: boolean mask of the kept peaks.

    A peak is dropped when it lies strictly closer than 6 map pixels to an earlier kept peak.
    """
    n = len(xs)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    # Sorted by x: only peaks with x within 5 of each other can be close.
    for i in range(n):
        if not keep[i]:
            continue
        j_end = np.searchsorted(xs, xs[i] + PEAK_MIN_DISTANCE, side="left")
        if j_end <= i + 1:
            continue
        dx = xs[i + 1 : j_end] - xs[i]
        dy = ys[i + 1 : j_end] - ys[i]
        keep[i + 1 : j_end] &= dx * dx + dy * dy >= PEAK_MIN_DISTANCE * PEAK_MIN_DISTANCE
    return keep


def extract_peaks(heatmaps: np.ndarray) -> list[np.ndarray]:
    """Keypoint candidates of the 18 keypoint channels of (>=18, H, W) upsampled heatmaps.

    Returns one float64 (k, 4) array per keypoint type: x, y (map pixels), score (thresholded heatmap value),
    global id (consecutive over types 0..17).
    """
    peaks_by_type: list[np.ndarray] = []
    next_id = 0
    for kpt in range(NUM_KEYPOINTS):
        heatmap = heatmaps[kpt]
        xs, ys = find_peaks(heatmap)
        keep = suppress_close_peaks(xs, ys)
        xs, ys = xs[keep], ys[keep]
        rows = np.empty((len(xs), 4), dtype=np.float64)
        rows[:, 0] = xs
        rows[:, 1] = ys
        rows[:, 2] = heatmap[ys, xs]  # kept peaks are >= 0.1, so the thresholded value is the raw one
        rows[:, 3] = np.arange(next_id, next_id + len(xs))
        next_id += len(xs)
        peaks_by_type.append(rows)
    return peaks_by_type


def score_limb_candidates(
    kpts_a: np.ndarray, kpts_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every (a, b) candidate pair of one limb along its PAF.

    kpts_a (n, >=2) and kpts_b (m, >=2) float32 x, y in map pixels; paf_x, paf_y (H, W) float32.
    Returns (a_index, b_index, score) of the pairs that pass (score > 0 and more than 80% of the 10 sampled
    points above 0.05), pairs enumerated with b as the outer index.
    """
    n, m = len(kpts_a), len(kpts_b)
    a = np.broadcast_to(kpts_a[None, :, :2], (m, n, 2))
    vec_raw = (kpts_b[:, None, :2] - a).reshape(-1, 1, 2)
    steps = (1 / (POINTS_PER_LIMB - 1)) * vec_raw
    grid = np.arange(POINTS_PER_LIMB, dtype=np.float32).reshape(1, -1, 1)
    points = (steps * grid + a.reshape(-1, 1, 2)).round().astype(np.int32)
    x = points[..., 0].ravel()
    y = points[..., 1].ravel()
    field = np.stack([paf_x[y, x], paf_y[y, x]], axis=-1).reshape(-1, POINTS_PER_LIMB, 2)
    vec_norm = np.linalg.norm(vec_raw, ord=2, axis=-1, keepdims=True)
    unit = vec_raw / (vec_norm + 1e-6)
    point_scores = (field * unit).sum(-1).reshape(-1, POINTS_PER_LIMB)
    valid = point_scores > MIN_PAF_SCORE
    valid_num = valid.sum(1)
    scores = (point_scores * valid).sum(1) / (valid_num + 1e-6)
    success_ratio = valid_num / POINTS_PER_LIMB
    passing = np.nonzero((scores > 0) & (success_ratio > MIN_SUCCESS_RATIO))[0]
    b_idx, a_idx = np.divmod(passing, n)
    return a_idx, b_idx, scores[passing]


def select_connections(
    a_idx: np.ndarray, b_idx: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy one-to-one matching: best score first (numpy's default argsort, reversed), both ends unused."""
    order = scores.argsort()[::-1]
    a_idx, b_idx, scores = a_idx[order], b_idx[order], scores[order]
    used_a: set[int] = set()
    used_b: set[int] = set()
    keep = []
    for t, (i, j) in enumerate(zip(a_idx.tolist(), b_idx.tolist())):
        if i not in used_a and j not in used_b:
            keep.append(t)
            used_a.add(i)
            used_b.add(j)
    kept = np.asarray(keep, dtype=np.int64)
    return a_idx[kept], b_idx[kept], scores[kept]


def _new_entry(a_slot: int, b_slot: int, a_id: int, b_id: int, score: float) -> np.ndarray:
    entry = np.full(ENTRY_SIZE, -1.0)
    entry[a_slot] = a_id
    entry[b_slot] = b_id
    entry[COUNT] = 2
    entry[SCORE] = score
    return entry


def group_keypoints(peaks_by_type: list[np.ndarray], pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group keypoint candidates into poses along the PAFs (the reference's greedy limb-by-limb assembly).

    peaks_by_type: 18 float64 (k, 4) arrays from `extract_peaks`; pafs: (38, H, W) float32 upsampled PAFs.
    Returns (entries float64 (P, 20), all_keypoints float64 (K, 4)).
    """
    all_keypoints = np.concatenate(peaks_by_type, axis=0) if peaks_by_type else np.zeros((0, 4))
    kpt_scores = all_keypoints[:, 2]
    candidates = [p.astype(np.float32) for p in peaks_by_type]
    entries: list[np.ndarray] = []
    for limb in range(NUM_LIMBS):
        type_a, type_b = LIMBS[limb]
        kpts_a, kpts_b = candidates[type_a], candidates[type_b]
        if len(kpts_a) == 0 or len(kpts_b) == 0:
            continue
        channel_x, channel_y = LIMB_PAF_CHANNELS[limb]
        a_idx, b_idx, scores = score_limb_candidates(kpts_a, kpts_b, pafs[channel_x], pafs[channel_y])
        if len(scores) == 0:
            continue
        a_idx, b_idx, scores = select_connections(a_idx, b_idx, scores)
        a_ids = kpts_a[a_idx, 3].astype(np.int32).tolist()
        b_ids = kpts_b[b_idx, 3].astype(np.int32).tolist()
        connections = list(zip(a_ids, b_ids, scores.tolist()))
        if limb == 0:
            entries = [_new_entry(type_a, type_b, a, b, kpt_scores[[a, b]].sum() + s) for a, b, s in connections]
        elif limb in GAP_FILLING_LIMBS:
            for a, b, _ in connections:
                for entry in entries:
                    if entry[type_a] == a and entry[type_b] == -1:
                        entry[type_b] = b
                    elif entry[type_b] == b and entry[type_a] == -1:
                        entry[type_a] = a
        else:
            for a, b, s in connections:
                matched = False
                for entry in entries:
                    if entry[type_a] == a:
                        entry[type_b] = b
                        entry[COUNT] += 1
                        entry[SCORE] += kpt_scores[b] + s
                        matched = True
                if not matched:
                    entries.append(_new_entry(type_a, type_b, a, b, kpt_scores[[a, b]].sum() + s))
    kept = [e for e in entries if not (e[COUNT] < MIN_POSE_KEYPOINTS or e[SCORE] / e[COUNT] < MIN_POSE_MEAN_SCORE)]
    return (np.stack(kept) if kept else np.zeros((0, ENTRY_SIZE))), all_keypoints


def check_maps(heatmaps: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one image's (>=18, h, w) heatmaps and (38, h, w) PAFs; returns them as float32 arrays."""
    heatmaps = np.asarray(heatmaps)
    pafs = np.asarray(pafs)
    if heatmaps.ndim != 3 or heatmaps.shape[0] < NUM_KEYPOINTS:
        raise ValueError(f"heatmaps must have shape (19, h, w) (or at least 18 channels), got {heatmaps.shape}")
    if pafs.ndim != 3 or pafs.shape[0] != NUM_PAFS:
        raise ValueError(f"pafs must have shape ({NUM_PAFS}, h, w), got {pafs.shape}")
    if heatmaps.shape[1:] != pafs.shape[1:]:
        raise ValueError(f"heatmaps {heatmaps.shape} and pafs {pafs.shape} differ in spatial size")
    if heatmaps.dtype != np.float32 or pafs.dtype != np.float32:
        raise ValueError(f"heatmaps and pafs must be float32, got {heatmaps.dtype} and {pafs.dtype}")
    return heatmaps, pafs


DECODE_METHODS = ("fast", "reference")


def decode_upsampled(heatmaps: np.ndarray, pafs: np.ndarray, *, method: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """Reference-exact decoding of already-upsampled maps: heatmaps (>=18, H, W), PAFs (38, H, W), float32.

    method "fast" (vectorised, `lightpose.decode_fast`) and "reference" (the reference's loops, kept as the
    specification) return the same arrays bit for bit. Returns (entries float64 (P, 20), all_keypoints float64
    (K, 4)) in the maps' pixels.
    """
    heatmaps, pafs = check_maps(heatmaps, pafs)
    if method == "fast":
        return decode_upsampled_fast(heatmaps, pafs)
    if method == "reference":
        return group_keypoints(extract_peaks(heatmaps), pafs)
    raise ValueError(f"method must be one of {DECODE_METHODS}, got {method!r}")


# cv2's cubic kernel (A = -0.75): the |weights| of one axis sum to at most 1.375 (at phase 0.5), so an upsampled
# value is at most 1.375**2 times the largest |value| among its 4x4 source taps.
CUBIC_GAIN = 1.375**2
HOT_THRESHOLD = PEAK_THRESHOLD / (CUBIC_GAIN * 1.001)  # source values below this cannot make a peak
# Ratios at which resizing a window was found to give the same values as the full resize over that window (at
# ratio 2 some windows differ in the last bit); `windows_are_exact` checks it once per process with this OpenCV.
WINDOW_RATIOS = (4, 8)


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
                crop, (a0, b0) = upsample_crop(maps, ratio, rows, cols)
                r = ratio
                window = crop[r * (rows[0] - a0) : r * (rows[1] - a0 + 1), r * (cols[0] - b0) : r * (cols[1] - b0 + 1)]
                expected = full[:, r * rows[0] : r * (rows[1] + 1), r * cols[0] : r * (cols[1] + 1)]
                if not np.array_equal(window.transpose(2, 0, 1), expected):
                    return False
    return True


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


def _hot_span(mask: np.ndarray) -> tuple[int, int] | None:
    where = np.flatnonzero(mask)
    return (int(where[0]), int(where[-1])) if len(where) else None


def decode_maps(
    heatmaps: np.ndarray, pafs: np.ndarray, upsample: int = 4, *, method: str = "fast"
) -> tuple[np.ndarray, np.ndarray]:
    """Reference-exact decoding of stride-8 maps: heatmaps (19, h, w), PAFs (38, h, w) float32, upsampled by
    `upsample` (cubic). Returns (entries float64 (P, 20), all_keypoints float64 (K, 4)) in upsampled-map pixels.

    With method "fast" at upsample 4 or 8, only the part of the maps that can hold a keypoint is upsampled: the
    heatmaps around source values >= 0.1 / CUBIC_GAIN, the PAFs over the keypoints' bounding box. The result is
    the same as upsampling everything (windows of cv2's resize are bit-identical to the full resize there; checked
    once per process by `windows_are_exact`, else everything is upsampled).
    """
    heatmaps, pafs = check_maps(heatmaps, pafs)
    if upsample < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}")
    keypoint_maps = heatmaps[:NUM_KEYPOINTS]
    if method != "fast" or not windows_are_exact(upsample) or np.isnan(keypoint_maps.sum()):
        return decode_upsampled(upsample_maps(heatmaps, upsample), upsample_maps(pafs, upsample), method=method)
    hot = (np.abs(keypoint_maps) >= HOT_THRESHOLD).any(axis=0)
    rows, cols = _hot_span(hot.any(axis=1)), _hot_span(hot.any(axis=0))
    if rows is None or cols is None:
        return np.zeros((0, ENTRY_SIZE)), np.zeros((0, 4))
    # Upsampled pixels whose 4x4 taps hold no hot source pixel stay below 0.1 (2 source pixels of reach).
    rows = (max(rows[0] - 2, 0), min(rows[1] + 2, heatmaps.shape[1] - 1))
    cols = (max(cols[0] - 2, 0), min(cols[1] + 2, heatmaps.shape[2] - 1))
    crop, (a0, b0) = upsample_crop(keypoint_maps, upsample, rows, cols, "heatmaps")
    r = upsample
    window = crop[r * (rows[0] - a0) : r * (rows[1] - a0 + 1), r * (cols[0] - b0) : r * (cols[1] - b0 + 1)]
    keypoints, counts = extract_all_peaks(window.transpose(2, 0, 1), (r * cols[0], r * rows[0]))
    if len(keypoints) == 0:
        return np.zeros((0, ENTRY_SIZE)), keypoints
    x0, y0 = (keypoints[:, :2].min(axis=0) // r).astype(int)
    x1, y1 = (keypoints[:, :2].max(axis=0) // r).astype(int)
    # The sample points of every limb lie within the keypoints' bounding box, where the crop is exact.
    paf_crop, (a0, b0) = upsample_crop(pafs, r, (int(y0), int(y1)), (int(x0), int(x1)), "pafs")
    return group_all(keypoints, counts, paf_crop, (r * b0, r * a0)), keypoints


def entries_to_poses(entries: np.ndarray, all_keypoints: np.ndarray, coords_scale: float = 1.0) -> list[Pose]:
    """Pose objects from pose entries; keypoint x, y = map pixel * coords_scale (float64 before the float32 store)."""
    if len(entries) == 0:
        return []
    ids = entries[:, :NUM_KEYPOINTS].astype(np.int64)
    found = ids >= 0
    rows = all_keypoints[np.where(found, ids, 0)]  # (P, 18, 4); rows of missing keypoints are masked below
    keypoints = np.empty((len(entries), NUM_KEYPOINTS, 3), dtype=np.float32)
    keypoints[..., :2] = np.where(found[..., None], rows[..., :2] * coords_scale, np.nan)
    keypoints[..., 2] = np.where(found, rows[..., 2], np.nan)
    scores, counts = entries[:, SCORE].tolist(), entries[:, COUNT].astype(np.int64).tolist()
    return [Pose(k, score=s, grouped_count=c) for k, s, c in zip(keypoints, scores, counts)]


def decode_poses(heatmaps: np.ndarray, pafs: np.ndarray, upsample: int = 4, *, method: str = "fast") -> list[Pose]:
    """Poses from one image's stride-8 network outputs: heatmaps (19, h, w), PAFs (38, h, w), float32.

    The maps are upsampled by `upsample` (cubic, as the reference demo) and decoded reference-exactly (`method`:
    see `decode_upsampled` and `decode_maps`).
    Keypoints are returned in network-input pixels: upsampled-map coordinate * 8 / upsample.
    """
    entries, all_keypoints = decode_maps(heatmaps, pafs, upsample, method=method)
    return entries_to_poses(entries, all_keypoints, STRIDE / upsample)
