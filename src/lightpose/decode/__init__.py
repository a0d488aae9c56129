"""Heatmaps + part affinity fields -> poses, bit for bit as the published implementation.

`decode_maps` (stride-8 network outputs) and `decode_upsampled` (already upsampled maps) return pose entries and
keypoints; `entries_to_poses` turns them into `Pose` objects. The reference loops (`reference`) are the
specification; the vectorised numpy path (`vectorised`) and the numba-compiled one (`compiled`, the `fast` extra)
return the same arrays faster. `DecodeParams` holds every threshold once; limb tables come from a `Skeleton`.
"""

from lightpose.decode.decoder import (
    DECODE_METHODS,
    check_maps,
    decode_maps,
    decode_poses,
    decode_upsampled,
    entries_to_poses,
)
from lightpose.decode.params import PUBLISHED, DecodeParams
from lightpose.decode.windows import upsample_maps

__all__ = [
    "DECODE_METHODS",
    "PUBLISHED",
    "DecodeParams",
    "check_maps",
    "decode_maps",
    "decode_poses",
    "decode_upsampled",
    "entries_to_poses",
    "upsample_maps",
]
