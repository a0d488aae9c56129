"""Keypoint layouts (`Skeleton`) and the published 18-keypoint OpenPose-COCO one (`OPENPOSE_COCO`), torch-free.

The module-level tables are the published layout's (index order = heatmap channel order; channel 18 is the
background); `OPENPOSE_COCO` is built from them without changing a number.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout: everything the network heads, targets, decoder, drawing and evaluation need to know.

    keypoints: names, in heatmap channel order (one background heatmap follows them).
    limbs: (a, b) keypoint pairs in the decoder's grouping order: the first limb starts poses and every later
        limb's `a` appears in an earlier limb, so the limbs outside `redundant_limbs` form a spanning tree.
    paf_channels: per limb, its (x, y) PAF channels (default 2i, 2i + 1).
    redundant_limbs: indices of limbs that only fill gaps in poses (the published layout's ear-shoulder limbs).
    flip_pairs: keypoint pairs (one side, the mirrored side) swapped by a horizontal flip.
    sigmas: COCO OKS sigma per keypoint.
    drawn_limbs: indices of limbs to draw (default: all but the redundant ones).
    coco_index: per keypoint, its COCO-17 index (-1: not a COCO keypoint), or None when the layout has none.
    keypoint_color, limb_color: BGR drawing colours.
    Invalid tables raise ValueError naming what is wrong.
    """

    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    paf_channels: tuple[tuple[int, int], ...] = ()
    redundant_limbs: tuple[int, ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    drawn_limbs: tuple[int, ...] | None = None
    coco_index: tuple[int, ...] | None = None
    keypoint_color: tuple[int, int, int] = (0, 224, 255)
    limb_color: tuple[int, int, int] = (0, 224, 255)

    def __post_init__(self) -> None:
        as_tuple = lambda rows: tuple(tuple(int(v) for v in row) for row in rows)  # noqa: E731
        object.__setattr__(self, "keypoints", tuple(str(k) for k in self.keypoints))
        object.__setattr__(self, "limbs", as_tuple(self.limbs))
        object.__setattr__(self, "flip_pairs", as_tuple(self.flip_pairs))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "redundant_limbs", tuple(int(i) for i in self.redundant_limbs))
        if not self.paf_channels:
            object.__setattr__(self, "paf_channels", tuple((2 * i, 2 * i + 1) for i in range(len(self.limbs))))
        object.__setattr__(self, "paf_channels", as_tuple(self.paf_channels))
        drawn = self.drawn_limbs
        if drawn is None:
            drawn = tuple(i for i in range(len(self.limbs)) if i not in self.redundant_limbs)
        object.__setattr__(self, "drawn_limbs", tuple(int(i) for i in drawn))
        if self.coco_index is not None:
            object.__setattr__(self, "coco_index", tuple(int(i) for i in self.coco_index))
        self._validate()

    def _validate(self) -> None:
        k = len(self.keypoints)
        where = f"skeleton {self.name!r}"
        if k < 1 or len(set(self.keypoints)) != k:
            raise ValueError(f"{where}: keypoint names must be unique and non-empty, got {self.keypoints}")
        if not self.limbs and k > 1:
            raise ValueError(f"{where}: {k} keypoints need limbs to be grouped into poses")
        for i, (a, b) in enumerate(self.limbs):
            if not (0 <= a < k and 0 <= b < k) or a == b:
                raise ValueError(f"{where}: limb {i} ({a}, {b}) must join two different keypoints of 0..{k - 1}")
        for i in self.redundant_limbs:
            if not 0 <= i < len(self.limbs) or i == 0:
                raise ValueError(f"{where}: redundant limb index {i} is not a limb index 1..{len(self.limbs) - 1}")
        reached = set(self.limbs[0]) if self.limbs else {0}
        for i, (a, b) in enumerate(self.limbs):
            if i in self.redundant_limbs:
                continue
            if a not in reached:
                raise ValueError(
                    f"{where}: limb {i} ({self.keypoints[a]}-{self.keypoints[b]}) starts at a keypoint no earlier "
                    "limb reaches: order limbs so each starts where an earlier one ends (a spanning tree from limb 0)"
                )
            reached.add(b)
        unreachable = [self.keypoints[i] for i in range(k) if i not in reached]
        if unreachable:
            raise ValueError(f"{where}: no limb reaches keypoint(s) {', '.join(unreachable)}: add limbs to them")
        channels = [c for pair in self.paf_channels for c in pair]
        if len(self.paf_channels) != len(self.limbs) or sorted(channels) != list(range(2 * len(self.limbs))):
            raise ValueError(f"{where}: paf_channels must give each of the {len(self.limbs)} limbs two distinct "
                             f"channels of 0..{2 * len(self.limbs) - 1}")
        for left, right in self.flip_pairs:
            if not (0 <= left < k and 0 <= right < k):
                raise ValueError(f"{where}: flip pair ({left}, {right}) names an unknown keypoint (0..{k - 1})")
        flat = [i for pair in self.flip_pairs for i in pair]
        if len(set(flat)) != len(flat):
            raise ValueError(f"{where}: a keypoint appears in more than one flip pair: {self.flip_pairs}")
        if len(self.sigmas) != k or not all(s > 0 for s in self.sigmas):
            raise ValueError(f"{where}: sigmas must be {k} positive numbers (one per keypoint), got {len(self.sigmas)}")
        if self.coco_index is not None and len(self.coco_index) != k:
            raise ValueError(f"{where}: coco_index must have {k} entries (one per keypoint), got {len(self.coco_index)}")
        for i in self.drawn_limbs or ():
            if not 0 <= i < len(self.limbs):
                raise ValueError(f"{where}: drawn limb index {i} is not a limb index")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def num_heatmaps(self) -> int:
        """Keypoint heatmaps + 1 background."""
        return len(self.keypoints) + 1

    @property
    def num_pafs(self) -> int:
        return 2 * len(self.limbs)

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.keypoints)}

    def flip_permutation(self) -> np.ndarray:
        """Keypoint permutation that swaps left and right: (K,) int64."""
        perm = np.arange(len(self.keypoints))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return perm

    def oks_variances(self) -> np.ndarray:
        """float32 (K,): (2 sigma)^2, the per-keypoint variances of COCO's OKS."""
        return (2.0 * np.asarray(self.sigmas, dtype=np.float32)) ** 2

    def to_dict(self) -> dict[str, object]:
        """Plain data (str, int, float, lists) that `Skeleton.from_dict` rebuilds; stored in checkpoints."""
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "limbs": [list(p) for p in self.limbs],
            "sigmas": list(self.sigmas),
            "paf_channels": [list(p) for p in self.paf_channels],
            "redundant_limbs": list(self.redundant_limbs),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "drawn_limbs": list(self.drawn_limbs or ()),
            "coco_index": None if self.coco_index is None else list(self.coco_index),
            "keypoint_color": list(self.keypoint_color),
            "limb_color": list(self.limb_color),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Skeleton:
        """The Skeleton `to_dict` described; ValueError naming a missing or bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"a skeleton must be a dict of plain data, got {type(data).__name__}")
        try:
            fields = {key: data[key] for key in ("name", "keypoints", "limbs", "sigmas")}
        except KeyError as exc:
            raise ValueError(f"the stored skeleton lacks the field {exc.args[0]!r}") from None
        for key in ("paf_channels", "redundant_limbs", "flip_pairs", "drawn_limbs", "coco_index"):
            if data.get(key) is not None:
                fields[key] = data[key]
        for key in ("keypoint_color", "limb_color"):
            if data.get(key) is not None:
                fields[key] = tuple(data[key])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]


OPENPOSE_COCO = Skeleton(
    name="openpose-coco-18",
    keypoints=KEYPOINT_NAMES,
    limbs=LIMBS,
    sigmas=tuple(float(s) for s in OKS_SIGMAS),
    paf_channels=LIMB_PAF_CHANNELS,
    redundant_limbs=GAP_FILLING_LIMBS,
    flip_pairs=FLIP_PAIRS,
    coco_index=INTERNAL_TO_COCO,
    keypoint_color=KEYPOINT_COLOR,
    limb_color=LIMB_COLOR,
)
"""The published 18-keypoint OpenPose-COCO layout (the default everywhere)."""
