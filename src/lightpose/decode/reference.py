"""The reference decoder's loops: the specification every faster path is tested against, bit for bit.

Heatmaps + PAFs (already upsampled) -> peaks, limb scoring, greedy grouping, as the published implementation
(the published repository's modules/keypoints.py: extract_keypoints, group_keypoints). Pose entries are float64
(P, K + 2) arrays: [0..K-1] global keypoint ids (-1 where missing), [K] pose score, [K + 1] keypoint count;
keypoints are float64 (N, 4) rows (x, y, score, id) in map pixels.
"""

from __future__ import annotations

import numpy as np

from lightpose.decode.params import EPSILON, PUBLISHED, DecodeParams
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

# Candidate pairs scored at once: bounds the memory of a limb with thousands of candidates on each side.
PAIRS_PER_CHUNK = 1 << 15


def find_peaks(heatmap: np.ndarray, params: DecodeParams = PUBLISHED) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of one (H, W) heatmap thresholded at `peak_threshold`: a peak is strictly greater than its 4 neighbours.

    Returns x and y (int64), sorted by x (stable, so ties keep row-major order), before distance suppression.
    """
    hm = np.where(heatmap < np.float32(params.peak_threshold), np.float32(0), heatmap)
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


def suppress_close_peaks(xs: np.ndarray, ys: np.ndarray, params: DecodeParams = PUBLISHED) -> np.ndarray:
    """Greedy suppression in the given (x) order: boolean mask of the kept peaks.

    A peak is dropped when it lies strictly closer than `peak_min_distance` to an earlier kept peak.
    """
    distance = params.peak_min_distance
    keep = np.ones(len(xs), dtype=bool)
    for i in range(len(xs)):
        if not keep[i]:
            continue
        # Sorted by x: only peaks with x closer than the distance can be close.
        j_end = np.searchsorted(xs, xs[i] + distance, side="left")
        if j_end <= i + 1:
            continue
        dx = xs[i + 1 : j_end] - xs[i]
        dy = ys[i + 1 : j_end] - ys[i]
        keep[i + 1 : j_end] &= dx * dx + dy * dy >= distance * distance
    return keep


def extract_peaks(
    heatmaps: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO, params: DecodeParams = PUBLISHED
) -> list[np.ndarray]:
    """Keypoint candidates of the K keypoint channels of (>= K, H, W) upsampled heatmaps.

    Returns one float64 (k, 4) array per keypoint type: x, y (map pixels), score (heatmap value), global id
    (consecutive over the types in order).
    """
    peaks_by_type: list[np.ndarray] = []
    next_id = 0
    for kpt in range(skeleton.num_keypoints):
        heatmap = heatmaps[kpt]
        xs, ys = find_peaks(heatmap, params)
        keep = suppress_close_peaks(xs, ys, params)
        xs, ys = xs[keep], ys[keep]
        rows = np.empty((len(xs), 4), dtype=np.float64)
        rows[:, 0] = xs
        rows[:, 1] = ys
        rows[:, 2] = heatmap[ys, xs]  # kept peaks are above the threshold: the thresholded value is the raw one
        rows[:, 3] = np.arange(next_id, next_id + len(xs))
        next_id += len(xs)
        peaks_by_type.append(rows)
    return peaks_by_type


def _score_pairs(
    kpts_a: np.ndarray, kpts_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, params: DecodeParams
) -> tuple[np.ndarray, np.ndarray]:
    """Limb score and valid-point count of every (a, b) pair, b the outer index: float64 (m*n,), int64 (m*n,)."""
    points_per_limb = params.points_per_limb
    n, m = len(kpts_a), len(kpts_b)
    a = np.broadcast_to(kpts_a[None, :, :2], (m, n, 2))
    vec_raw = (kpts_b[:, None, :2] - a).reshape(-1, 1, 2)
    steps = (1 / (points_per_limb - 1)) * vec_raw
    grid = np.arange(points_per_limb, dtype=np.float32).reshape(1, -1, 1)
    points = (steps * grid + a.reshape(-1, 1, 2)).round().astype(np.int32)
    x = points[..., 0].ravel()
    y = points[..., 1].ravel()
    field = np.stack([paf_x[y, x], paf_y[y, x]], axis=-1).reshape(-1, points_per_limb, 2)
    vec_norm = np.linalg.norm(vec_raw, ord=2, axis=-1, keepdims=True)
    unit = vec_raw / (vec_norm + EPSILON)
    point_scores = (field * unit).sum(-1).reshape(-1, points_per_limb)
    valid = point_scores > params.min_paf_score
    valid_num = valid.sum(1)
    return (point_scores * valid).sum(1) / (valid_num + EPSILON), valid_num


def score_limb_candidates(
    kpts_a: np.ndarray,
    kpts_b: np.ndarray,
    paf_x: np.ndarray,
    paf_y: np.ndarray,
    params: DecodeParams = PUBLISHED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every (a, b) candidate pair of one limb along its PAF.

    kpts_a (n, >=2) and kpts_b (m, >=2) float32 x, y in map pixels; paf_x, paf_y (H, W) float32.
    Returns (a_index, b_index, score) of the pairs that pass (score > 0 and valid points / points_per_limb above
    min_success_ratio), pairs enumerated with b as the outer index. Pairs are scored in chunks of whole b rows
    (each pair's arithmetic is independent, so chunking changes no value).
    """
    n = len(kpts_a)
    rows_per_chunk = max(1, PAIRS_PER_CHUNK // max(n, 1))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for b0 in range(0, len(kpts_b), rows_per_chunk):
        scores, valid_num = _score_pairs(kpts_a, kpts_b[b0 : b0 + rows_per_chunk], paf_x, paf_y, params)
        success_ratio = valid_num / params.points_per_limb
        passing = np.nonzero((scores > 0) & (success_ratio > params.min_success_ratio))[0]
        b_idx, a_idx = np.divmod(passing, n)
        found.append((a_idx, b_idx + b0, scores[passing]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    a_idx, b_idx, scores = (np.concatenate(parts) for parts in zip(*found))
    return a_idx, b_idx, scores


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


def _new_entry(size: int, slots: tuple[int, int], ids: tuple[int, int], score: float) -> np.ndarray:
    entry = np.full(size, -1.0)
    entry[list(slots)] = ids
    entry[-1] = 2
    entry[-2] = score
    return entry


def group_keypoints(
    peaks_by_type: list[np.ndarray],
    pafs: np.ndarray,
    skeleton: Skeleton = OPENPOSE_COCO,
    params: DecodeParams = PUBLISHED,
) -> tuple[np.ndarray, np.ndarray]:
    """Group keypoint candidates into poses along the PAFs (the reference's greedy limb-by-limb assembly).

    peaks_by_type: K float64 (k, 4) arrays from `extract_peaks`; pafs: (2L, H, W) float32 upsampled PAFs.
    Returns (entries float64 (P, K + 2), all_keypoints float64 (N, 4)).
    """
    size = skeleton.num_keypoints + 2
    score_col, count_col = size - 2, size - 1
    all_keypoints = np.concatenate(peaks_by_type, axis=0) if peaks_by_type else np.zeros((0, 4))
    kpt_scores = all_keypoints[:, 2]
    candidates = [p.astype(np.float32) for p in peaks_by_type]
    entries: list[np.ndarray] = []
    for limb, (type_a, type_b) in enumerate(skeleton.limbs):
        kpts_a, kpts_b = candidates[type_a], candidates[type_b]
        if len(kpts_a) == 0 or len(kpts_b) == 0:
            continue
        channel_x, channel_y = skeleton.paf_channels[limb]
        a_idx, b_idx, scores = score_limb_candidates(kpts_a, kpts_b, pafs[channel_x], pafs[channel_y], params)
        if len(scores) == 0:
            continue
        a_idx, b_idx, scores = select_connections(a_idx, b_idx, scores)
        a_ids = kpts_a[a_idx, 3].astype(np.int32).tolist()
        b_ids = kpts_b[b_idx, 3].astype(np.int32).tolist()
        connections = list(zip(a_ids, b_ids, scores.tolist()))
        slots = (type_a, type_b)
        if limb == 0:
            entries = [_new_entry(size, slots, (a, b), kpt_scores[[a, b]].sum() + s) for a, b, s in connections]
        elif limb in skeleton.redundant_limbs:
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
                        entry[count_col] += 1
                        entry[score_col] += kpt_scores[b] + s
                        matched = True
                if not matched:
                    entries.append(_new_entry(size, slots, (a, b), kpt_scores[[a, b]].sum() + s))
    kept = [
        e
        for e in entries
        if not (e[count_col] < params.min_pose_keypoints or e[score_col] / e[count_col] < params.min_pose_mean_score)
    ]
    return (np.stack(kept) if kept else np.zeros((0, size))), all_keypoints


def decode_reference(
    heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO, params: DecodeParams = PUBLISHED
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's decoding of validated upsampled maps: (entries (P, K + 2), all_keypoints (N, 4))."""
    return group_keypoints(extract_peaks(heatmaps, skeleton, params), pafs, skeleton, params)
