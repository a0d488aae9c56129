"""The decoder's parameters, each held once: `DecodeParams`, whose defaults are the published values."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Fixed by the reference's arithmetic (not tunable): added to a limb's length before dividing (unit vector) and to
# the valid-point count before averaging.
EPSILON = 1e-6


@dataclass(frozen=True)
class DecodeParams:
    """Thresholds of peak finding, limb scoring and pose filtering, all in map pixels (the published repository's
    modules/keypoints.py and demo.py).

    peak_threshold: heatmap values below it are no keypoint (> 0).
    peak_min_distance: a peak strictly closer than this to an earlier kept peak of its type is dropped.
    points_per_limb: PAF sample points per candidate limb, both ends included (>= 2).
    min_paf_score: a sample point is valid when its PAF . unit-vector value is above this.
    min_success_ratio: a candidate limb needs valid points / points_per_limb above this.
    min_pose_keypoints, min_pose_mean_score: poses with fewer keypoints, or a lower score per keypoint, are dropped.
    """

    peak_threshold: float = 0.1
    peak_min_distance: int = 6
    points_per_limb: int = 10
    min_paf_score: float = 0.05
    min_success_ratio: float = 0.8
    min_pose_keypoints: int = 3
    min_pose_mean_score: float = 0.2

    def __post_init__(self) -> None:
        for name in ("peak_threshold", "min_paf_score", "min_success_ratio", "min_pose_mean_score"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"DecodeParams.{name} must be a finite number, got {getattr(self, name)}")
        if not self.peak_threshold > 0:
            raise ValueError(f"DecodeParams.peak_threshold must be > 0, got {self.peak_threshold}")
        if self.points_per_limb < 2:
            raise ValueError(f"DecodeParams.points_per_limb must be >= 2 (both limb ends), got {self.points_per_limb}")
        if self.peak_min_distance < 0 or self.min_pose_keypoints < 0:
            raise ValueError("DecodeParams.peak_min_distance and min_pose_keypoints must be >= 0")

    @property
    def min_valid_points(self) -> int:
        """The fewest valid sample points that pass `valid / points_per_limb > min_success_ratio` (as the reference
        computes it); points_per_limb + 1 when no count does."""
        n = self.points_per_limb
        return next((v for v in range(n + 1) if v / n > self.min_success_ratio), n + 1)


PUBLISHED = DecodeParams()
"""The published implementation's values (the default everywhere)."""
