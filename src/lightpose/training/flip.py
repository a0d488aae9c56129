"""Flip test: map the heatmaps and PAFs of a horizontally mirrored image back onto the original image.

Mirroring an image turns every person's left side into a right side: the heatmap channels of left/right keypoint
pairs swap, the PAF channel pairs of mirrored limbs swap (r_sho->r_elb <-> l_sho->l_elb, ...) and the x-component
of every limb vector changes sign. The pairs come from a `Skeleton` (default: the published layout).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from lightpose.skeleton import OPENPOSE_COCO, Skeleton


def heatmap_flip_permutation(skeleton: Skeleton = OPENPOSE_COCO) -> np.ndarray:
    """(K + 1,) int64: heatmap channel c of a mirrored image is channel perm[c] of the original (background kept)."""
    return np.concatenate([skeleton.flip_permutation(), [skeleton.num_keypoints]]).astype(np.int64)


def paf_flip_permutation(skeleton: Skeleton = OPENPOSE_COCO) -> tuple[np.ndarray, np.ndarray]:
    """PAF channel permutation (2 L,) int64 and sign (2 L,) float32 of a horizontal mirror.

    For each limb, the mirrored limb (both keypoints mapped by `skeleton.flip_permutation()`) is looked up in the
    skeleton's limbs; channel c of the mirrored maps holds sign[c] * original channel perm[c] (x-components
    negated, and both components negated if the mirrored limb is stored in the opposite direction). A skeleton
    whose limbs are not mirror-symmetric raises ValueError naming the limb.
    """
    keypoint_perm = skeleton.flip_permutation()
    limb_index = {limb: i for i, limb in enumerate(skeleton.limbs)}
    perm = np.arange(skeleton.num_pafs)
    sign = np.ones(skeleton.num_pafs, dtype=np.float32)
    for limb, (a, b) in enumerate(skeleton.limbs):
        mirrored = (int(keypoint_perm[a]), int(keypoint_perm[b]))
        if mirrored in limb_index:
            other, direction = limb_index[mirrored], 1.0
        elif mirrored[::-1] in limb_index:
            other, direction = limb_index[mirrored[::-1]], -1.0
        else:
            names = skeleton.keypoints
            raise ValueError(
                f"skeleton {skeleton.name!r}: limb {names[a]}-{names[b]} has no mirrored limb "
                f"{names[mirrored[0]]}-{names[mirrored[1]]}: the flip test needs mirror-symmetric limbs"
            )
        (x, y), (other_x, other_y) = skeleton.paf_channels[limb], skeleton.paf_channels[other]
        perm[x], perm[y] = other_x, other_y
        sign[x], sign[y] = -direction, direction
    return perm, sign


@cache
def _permutations(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return heatmap_flip_permutation(skeleton), *paf_flip_permutation(skeleton)


def mirror_maps(
    heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton = OPENPOSE_COCO
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror channel-last maps: heatmaps (H, W, K + 1) and PAFs (H, W, 2 L) float32 of an image -> the maps of the
    horizontally mirrored image (x -> W - 1 - x, left/right channels swapped, PAF x-components negated).

    The mapping is an involution: applying it to the maps of a mirrored image gives maps of the original.
    """
    if heatmaps.ndim != 3 or heatmaps.shape[2] != skeleton.num_heatmaps:
        raise ValueError(f"heatmaps must have shape (H, W, {skeleton.num_heatmaps}), got {heatmaps.shape}")
    if pafs.ndim != 3 or pafs.shape[2] != skeleton.num_pafs or pafs.shape[:2] != heatmaps.shape[:2]:
        raise ValueError(f"pafs must have shape {heatmaps.shape[:2] + (skeleton.num_pafs,)}, got {pafs.shape}")
    heatmap_perm, paf_perm, paf_sign = _permutations(skeleton)
    mirrored_heatmaps = np.ascontiguousarray(heatmaps[:, ::-1, heatmap_perm])
    mirrored_pafs = np.ascontiguousarray(pafs[:, ::-1, paf_perm] * paf_sign)
    return mirrored_heatmaps, mirrored_pafs
