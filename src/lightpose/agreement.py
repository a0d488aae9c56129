"""How far the poses of a fast path (INT8, bf16, another backend) are from reference poses of the same images.

Poses are matched per image by OKS (COCO's object keypoint similarity, greedy, best pairs first). COCO scales
distances by the labelled object area; here the scale s^2 is half the squared diagonal of the reference pose's
keypoint box (its area when the box is square; unlike the area it does not vanish for the thin box of a partial
or side-on skeleton). A reference pose with no match counts as OKS 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightpose.pose import Pose

OKS_GOOD = 0.9


def oks(reference: Pose, other: Pose) -> float:
    """OKS of `other` to `reference`: the mean over the reference's found keypoints of exp(-d^2 / (2 s^2 k^2)),
    s^2 = half the squared diagonal of the reference's keypoint box (at least 1 pixel), k = the keypoint's COCO
    sigma; a keypoint `other` lacks scores 0. 0.0 when the reference has no keypoint."""
    found = reference.found
    if not found.any():
        return 0.0
    box = reference.bbox
    area = max(1.0, (box[2] ** 2 + box[3] ** 2) / 2.0) if box is not None else 1.0
    variances = reference.skeleton.oks_variances()
    d2 = ((reference.xy - other.xy) ** 2).sum(axis=1)
    similarity = np.exp(-d2 / (2.0 * area * variances))
    similarity = np.where(np.isnan(similarity), 0.0, similarity)
    return float(similarity[found].mean())


def match_poses(reference: Sequence[Pose], other: Sequence[Pose]) -> list[tuple[int, int, float]]:
    """(reference index, other index, OKS) pairs: greedy by OKS, highest first, each pose used once, OKS > 0."""
    scores = [(oks(r, o), i, j) for i, r in enumerate(reference) for j, o in enumerate(other)]
    used_r: set[int] = set()
    used_o: set[int] = set()
    pairs = []
    for score, i, j in sorted(scores, key=lambda s: -s[0]):
        if score > 0.0 and i not in used_r and j not in used_o:
            used_r.add(i)
            used_o.add(j)
            pairs.append((i, j, score))
    return pairs


@dataclass(frozen=True)
class Agreement:
    """Agreement of `other` poses with `reference` poses over a set of images.

    mean_oks: over all reference poses (unmatched ones count 0); share_good: share of reference poses whose match
    has OKS >= 0.9; only_reference / only_other: keypoints found by one side and not the other (in matched pairs,
    plus every keypoint of unmatched poses); same_count: images where both found as many poses.
    """

    images: int
    reference_poses: int
    other_poses: int
    matched: int
    mean_oks: float
    share_good: float
    only_reference: int
    only_other: int
    same_count: int

    def summary(self) -> str:
        """One line: the figures with their names."""
        return (
            f"{self.matched}/{self.reference_poses} poses matched ({self.other_poses} found), mean OKS "
            f"{self.mean_oks:.3f}, OKS >= {OKS_GOOD}: {self.share_good:.0%}, keypoints only in the reference "
            f"{self.only_reference}, only in the other {self.only_other}, same pose count on "
            f"{self.same_count}/{self.images} images"
        )


def agreement(reference: Sequence[Sequence[Pose]], other: Sequence[Sequence[Pose]]) -> Agreement:
    """Compare per-image pose lists (`reference[i]` and `other[i]` are poses of the same image)."""
    if len(reference) != len(other):
        raise ValueError(
            f"got poses of {len(reference)} reference images and {len(other)} other images: "
            "pass both for the same images"
        )
    oks_values: list[float] = []
    matched = only_reference = only_other = same_count = 0
    for ref_poses, other_poses in zip(reference, other):
        pairs = match_poses(ref_poses, other_poses)
        scores = dict.fromkeys(range(len(ref_poses)), 0.0)
        for i, j, score in pairs:
            scores[i] = score
            only_reference += int((ref_poses[i].found & ~other_poses[j].found).sum())
            only_other += int((other_poses[j].found & ~ref_poses[i].found).sum())
        matched_r = {i for i, _, _ in pairs}
        matched_o = {j for _, j, _ in pairs}
        only_reference += sum(p.num_keypoints for i, p in enumerate(ref_poses) if i not in matched_r)
        only_other += sum(p.num_keypoints for j, p in enumerate(other_poses) if j not in matched_o)
        oks_values.extend(scores.values())
        matched += len(pairs)
        same_count += len(ref_poses) == len(other_poses)
    total = len(oks_values)
    return Agreement(
        images=len(reference),
        reference_poses=total,
        other_poses=sum(len(p) for p in other),
        matched=matched,
        mean_oks=float(np.mean(oks_values)) if total else float("nan"),
        share_good=float(np.mean(np.asarray(oks_values) >= OKS_GOOD)) if total else float("nan"),
        only_reference=only_reference,
        only_other=only_other,
        same_count=same_count,
    )
