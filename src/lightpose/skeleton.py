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

# COCO's OKS sigmas x 10, in COCO-17 order, as pycocotools' cocoeval.py lists them (it divides by 10).
_COCO_SIGMAS_X10: tuple[float, ...] = (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
)  # fmt: skip
COCO_SIGMAS: tuple[float, ...] = tuple(s / 10.0 for s in _COCO_SIGMAS_X10)
# The same sigmas in the internal layout (the neck uses the shoulders'), float32 as the published layout stores them.
_INTERNAL_SIGMAS = np.array([_COCO_SIGMAS_X10[5 if c < 0 else c] for c in INTERNAL_TO_COCO], dtype=np.float32) / 10.0

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
            raise ValueError(
                f"{where}: paf_channels must give each of the {len(self.limbs)} limbs two distinct "
                f"channels of 0..{2 * len(self.limbs) - 1}"
            )
        for left, right in self.flip_pairs:
            if not (0 <= left < k and 0 <= right < k):
                raise ValueError(f"{where}: flip pair ({left}, {right}) names an unknown keypoint (0..{k - 1})")
        flat = [i for pair in self.flip_pairs for i in pair]
        if len(set(flat)) != len(flat):
            raise ValueError(f"{where}: a keypoint appears in more than one flip pair: {self.flip_pairs}")
        if len(self.sigmas) != k or not all(s > 0 for s in self.sigmas):
            raise ValueError(f"{where}: sigmas must be {k} positive numbers (one per keypoint), got {len(self.sigmas)}")
        if self.coco_index is not None and len(self.coco_index) != k:
            raise ValueError(
                f"{where}: coco_index must have {k} entries (one per keypoint), got {len(self.coco_index)}"
            )
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

    @classmethod
    def from_coco_category(cls, category: dict[str, object], *, name: str | None = None) -> Skeleton:
        """The Skeleton of a COCO keypoints category (see `skeleton_from_coco_category`)."""
        return skeleton_from_coco_category(category, name=name)


OPENPOSE_COCO = Skeleton(
    name="openpose-coco-18",
    keypoints=KEYPOINT_NAMES,
    limbs=LIMBS,
    sigmas=tuple(float(s) for s in _INTERNAL_SIGMAS),
    paf_channels=LIMB_PAF_CHANNELS,
    redundant_limbs=GAP_FILLING_LIMBS,
    flip_pairs=FLIP_PAIRS,
    coco_index=INTERNAL_TO_COCO,
    keypoint_color=KEYPOINT_COLOR,
    limb_color=LIMB_COLOR,
)
"""The published 18-keypoint OpenPose-COCO layout (the default everywhere)."""


# COCO-17: the COCO person category's keypoint names and skeleton (1-based pairs, as in the annotation files), in
# COCO order (its OKS sigmas: COCO_SIGMAS above).
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10), (9, 11),
    (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
# OKS sigma of a keypoint whose category gives none and whose name is not a COCO-17 name: between COCO's eyes
# (0.025) and hips (0.107); the larger the sigma, the more position error a keypoint may have at a given OKS.
DEFAULT_SIGMA = 0.05
_MIRRORED_AFFIXES = (("left_", "right_", True), ("l_", "r_", True), ("_left", "_right", False), ("_l", "_r", False))


def flip_pairs_from_names(names: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """(left index, right index) of every pair of names that differ only in a left/right affix (case-insensitive):
    prefixes `left_`/`right_`, `l_`/`r_`, suffixes `_left`/`_right`, `_l`/`_r`."""
    index = {name.lower(): i for i, name in enumerate(names)}
    pairs: list[tuple[int, int]] = []
    for i, name in enumerate(names):
        low = name.lower()
        for left, right, prefix in _MIRRORED_AFFIXES:
            if prefix and low.startswith(left):
                mirrored = right + low[len(left) :]
            elif not prefix and low.endswith(left):
                mirrored = low[: -len(left)] + right
            else:
                continue
            if mirrored in index and all(i not in pair and index[mirrored] not in pair for pair in pairs):
                pairs.append((i, index[mirrored]))
                break
    return tuple(pairs)


def _category_problem(category: object) -> str | None:
    if not isinstance(category, dict):
        return f"a category must be an object, got {type(category).__name__}"
    names = category.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "its 'keypoints' must be a non-empty list of keypoint names"
    edges = category.get("skeleton") or []
    k = len(names)
    if not isinstance(edges, list) or not all(
        isinstance(e, list | tuple) and len(e) == 2 and all(isinstance(v, int) and 1 <= v <= k for v in e)
        for e in edges
    ):
        return f"its 'skeleton' must be a list of [a, b] keypoint numbers 1..{k} (COCO's 1-based pairs)"
    sigmas = category.get("sigmas")
    if sigmas is not None and (not isinstance(sigmas, list) or len(sigmas) != k):
        return f"its 'sigmas' must be a list of {k} numbers (one per keypoint)"
    return None


def _spanning_tree(
    k: int, edges: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], set[int]]:
    """(tree limbs in breadth-first order from keypoint 0, the other edges, reached keypoints) of 0-based edges."""
    tree: list[tuple[int, int]] = []
    reached, queue = {0}, [0]
    for node in queue:
        for a, b in edges:
            other = b if a == node else a if b == node else None
            if other is not None and other not in reached:
                tree.append((node, other))
                reached.add(other)
                queue.append(other)
    used = {frozenset(limb) for limb in tree}
    extra: list[tuple[int, int]] = []
    for a, b in edges:
        if frozenset((a, b)) not in used:
            used.add(frozenset((a, b)))
            extra.append((a, b))
    return tree, extra, reached


def skeleton_from_coco_category(category: dict[str, object], *, name: str | None = None) -> Skeleton:
    """A Skeleton from a COCO keypoints category: `keypoints` (names, heatmap order = the category's order) and
    `skeleton` (1-based pairs). Limbs: a breadth-first spanning tree from the first keypoint (PAF channels 2i, 2i+1
    in that order), then the other edges as redundant limbs. Flip pairs from the names (`flip_pairs_from_names`);
    sigmas from the category's optional `sigmas`, else COCO's for a COCO-17 name, else `DEFAULT_SIGMA`.
    ValueError naming the category and what is wrong (e.g. a keypoint no edge connects)."""
    label = category.get("name", category.get("id", "?")) if isinstance(category, dict) else "?"
    where = f"keypoints category {label!r}"
    problem = _category_problem(category)
    if problem is not None:
        raise ValueError(f"{where}: {problem}: fix the category in the annotation file")
    names: tuple[str, ...] = tuple(category["keypoints"])  # type: ignore[arg-type]
    edges = [(int(a) - 1, int(b) - 1) for a, b in category.get("skeleton") or []]  # type: ignore[attr-defined]
    loops = [names[a] for a, b in edges if a == b]
    if loops:
        raise ValueError(f"{where}: its skeleton joins {loops[0]!r} to itself: remove that edge")
    tree, extra, reached = _spanning_tree(len(names), edges)
    unreached = [n for i, n in enumerate(names) if i not in reached]
    if unreached:
        raise ValueError(
            f"{where}: its skeleton does not connect {', '.join(map(repr, unreached))} to {names[0]!r} (the first "
            "keypoint): add edges so every keypoint is connected, or drop the keypoints"
        )
    given = category.get("sigmas")
    coco = dict(zip(COCO_KEYPOINT_NAMES, COCO_SIGMAS))
    sigmas = given if given is not None else [coco.get(n, DEFAULT_SIGMA) for n in names]
    return Skeleton(
        name=name or str(label),
        keypoints=names,
        limbs=tuple(tree + extra),
        sigmas=tuple(sigmas),  # type: ignore[arg-type]
        redundant_limbs=tuple(range(len(tree), len(tree) + len(extra))),
        flip_pairs=flip_pairs_from_names(names),
    )


COCO_17 = skeleton_from_coco_category(
    {
        "name": "coco-17",
        "keypoints": list(COCO_KEYPOINT_NAMES),
        "skeleton": [[1, 6], [1, 7]] + [list(e) for e in COCO_SKELETON],
    }
)
"""COCO's 17 keypoints without the synthetic neck: nose-shoulder edges + COCO's skeleton, as a spanning tree from
the nose (so the body hangs from the nose, not from the ears)."""

SKELETONS: dict[str, Skeleton] = {OPENPOSE_COCO.name: OPENPOSE_COCO, COCO_17.name: COCO_17}


def get_skeleton(name: str) -> Skeleton:
    """A built-in skeleton by name ("openpose-coco-18", "coco-17"); ValueError listing the names otherwise."""
    if name not in SKELETONS:
        raise ValueError(f"no built-in skeleton called {name!r}: use one of {', '.join(SKELETONS)}")
    return SKELETONS[name]
