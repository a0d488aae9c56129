"""Flip test: map the heatmaps and PAFs of a horizontally mirrored image back onto the original image.

Mirroring an image turns every person's left side into a right side: the heatmap channels of left/right keypoint
pairs swap, the PAF channel pairs of mirrored limbs swap (r_sho->r_elb <-> l_sho->l_elb, ...) and the x-component
of every limb vector changes sign.
"""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import LIMB_PAF_CHANNELS, LIMBS, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS, flip_permutation


def heatmap_flip_permutation() -> np.ndarray:
    """(19,) int64: heatmap channel c of a mirrored image is channel perm[c] of the original (background kept)."""
    return np.concatenate([flip_permutation(), np.arange(NUM_KEYPOINTS, NUM_HEATMAPS)])


def paf_flip_permutation() -> tuple[np.ndarray, np.ndarray]:
    """PAF channel permutation (38,) int64 and sign (38,) float32 of a horizontal mirror.

    For each limb, the mirrored limb (both keypoints mapped by `flip_permutation`) is looked up in `skeleton.LIMBS`;
    channel c of the mirrored maps holds sign[c] * original channel perm[c] (x-components negated, and both
    components negated if the mirrored limb is stored in the opposite direction).
    """
    keypoint_perm = flip_permutation()
    limb_index = {limb: i for i, limb in enumerate(LIMBS)}
    perm = np.arange(NUM_PAFS)
    sign = np.ones(NUM_PAFS, dtype=np.float32)
    for limb, (a, b) in enumerate(LIMBS):
        mirrored = (int(keypoint_perm[a]), int(keypoint_perm[b]))
        if mirrored in limb_index:
            other, direction = limb_index[mirrored], 1.0
        elif mirrored[::-1] in limb_index:
            other, direction = limb_index[mirrored[::-1]], -1.0
        else:  # the skeleton tables are not mirror-symmetric: a programming error in skeleton.py
            raise RuntimeError(f"limb {LIMBS[limb]} has no mirrored limb {mirrored} in skeleton.LIMBS")
        (x, y), (other_x, other_y) = LIMB_PAF_CHANNELS[limb], LIMB_PAF_CHANNELS[other]
        perm[x], perm[y] = other_x, other_y
        sign[x], sign[y] = -direction, direction
    return perm, sign


_HEATMAP_PERM = heatmap_flip_permutation()
_PAF_PERM, _PAF_SIGN = paf_flip_permutation()


def mirror_maps(heatmaps: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror channel-last maps: heatmaps (H, W, 19) and PAFs (H, W, 38) float32 of an image -> the maps of the
    horizontally mirrored image (x -> W - 1 - x, left/right channels swapped, PAF x-components negated).

    The mapping is an involution: applying it to the maps of a mirrored image gives maps of the original.
    """
    if heatmaps.ndim != 3 or heatmaps.shape[2] != NUM_HEATMAPS:
        raise ValueError(f"heatmaps must have shape (H, W, {NUM_HEATMAPS}), got {heatmaps.shape}")
    if pafs.ndim != 3 or pafs.shape[2] != NUM_PAFS or pafs.shape[:2] != heatmaps.shape[:2]:
        raise ValueError(f"pafs must have shape {heatmaps.shape[:2] + (NUM_PAFS,)}, got {pafs.shape}")
    mirrored_heatmaps = np.ascontiguousarray(heatmaps[:, ::-1, _HEATMAP_PERM])
    mirrored_pafs = np.ascontiguousarray(pafs[:, ::-1, _PAF_PERM] * _PAF_SIGN)
    return mirrored_heatmaps, mirrored_pafs
