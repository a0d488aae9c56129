"""The 18-keypoint OpenPose-COCO layout: the one place its tables live.

Index order is the network's heatmap channel order (channel 18 is the background).
"""

from __future__ import annotations

import numpy as np

STRIDE = 8  # network output stride: one map pixel is 8 input pixels

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_sho", "r_elb", "r_wri",
    "l_sho", "l_elb", "l_wri",
    "r_hip", "r_knee", "r_ank",
    "l_hip", "l_knee", "l_ank",
    "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
NUM_KEYPOINTS = len(KEYPOINT_NAMES)  # 18
NUM_HEATMAPS = NUM_KEYPOINTS + 1  # 18 keypoints + background
BACKGROUND_CHANNEL = NUM_KEYPOINTS
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Limbs in the decoder's order: (keypoint a, keypoint b) and their PAF channels (x-component, y-component).
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip
LIMB_PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5),
    (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip
NUM_LIMBS = len(LIMBS)  # 19
NUM_PAFS = 2 * NUM_LIMBS  # 38
# Limbs 17 and 18 (shoulder-ear) only fill gaps in the decoder and are not drawn.
GAP_FILLING_LIMBS: tuple[int, ...] = (17, 18)
DRAWN_LIMBS: tuple[tuple[int, int], ...] = LIMBS[:17]

# Limbs in the training-target order: limb i is written to PAF channels 2i (x) and 2i+1 (y).
TRAINING_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)  # fmt: skip

# Left/right mirror pairs (used by flip augmentation and flip testing).
RIGHT_KEYPOINTS: tuple[int, ...] = (2, 3, 4, 8, 9, 10, 14, 16)
LEFT_KEYPOINTS: tuple[int, ...] = (5, 6, 7, 11, 12, 13, 15, 17)
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(zip(RIGHT_KEYPOINTS, LEFT_KEYPOINTS))


def flip_permutation() -> np.ndarray:
    """Keypoint index permutation that swaps left and right: (18,) int64."""
    perm = np.arange(NUM_KEYPOINTS)
    for right, left in FLIP_PAIRS:
        perm[right], perm[left] = left, right
    return perm


# COCO-17 mapping. INTERNAL_TO_COCO[i] = COCO index of internal keypoint i (-1: the neck, not in COCO).
INTERNAL_TO_COCO: tuple[int, ...] = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# COCO_TO_INTERNAL[c] = internal index of COCO keypoint c.
COCO_TO_INTERNAL: tuple[int, ...] = tuple(INTERNAL_TO_COCO.index(c) for c in range(17))
NUM_COCO_KEYPOINTS = 17
NECK = KEYPOINT_INDEX["neck"]
R_SHOULDER = KEYPOINT_INDEX["r_sho"]
L_SHOULDER = KEYPOINT_INDEX["l_sho"]

# COCO OKS sigmas re-ordered to the internal layout (the neck uses the shoulders' .79).
OKS_SIGMAS = (
    np.array(
        [0.26, 0.79, 0.79, 0.72, 0.62, 0.79, 0.72, 0.62, 1.07, 0.87, 0.89, 1.07, 0.87, 0.89, 0.25, 0.25, 0.35, 0.35],
        dtype=np.float32,
    )
    / 10.0
)
OKS_VARS = (2.0 * OKS_SIGMAS) ** 2

# Drawing colours (BGR), as the reference demo draws.
KEYPOINT_COLOR: tuple[int, int, int] = (0, 224, 255)
LIMB_COLOR: tuple[int, int, int] = (0, 224, 255)
BBOX_COLOR: tuple[int, int, int] = (0, 255, 0)
ID_COLOR: tuple[int, int, int] = (0, 0, 255)
