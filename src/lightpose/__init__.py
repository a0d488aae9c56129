"""lightpose: real-time 2D multi-person pose estimation (Lightweight OpenPose).

The public API is what this module exports, plus the documented modules `lightpose.weights` (checkpoint registry,
download and cache), `lightpose.errors` (every exception) and the `lightpose.training` package.
"""

from lightpose import errors, weights
from lightpose.draw import draw_poses
from lightpose.errors import LightposeError
from lightpose.estimator import PoseEstimator
from lightpose.model import LightweightOpenPose
from lightpose.pose import Keypoint, Pose, PoseResult
from lightpose.serve import LiveServer
from lightpose.skeleton import OPENPOSE_COCO, Skeleton
from lightpose.tracker import MotionTracker
from lightpose.tracking import PoseTracker

__version__ = "0.2.0.dev0"

__all__ = [
    "OPENPOSE_COCO",
    "Keypoint",
    "LightposeError",
    "LightweightOpenPose",
    "LiveServer",
    "MotionTracker",
    "Pose",
    "PoseEstimator",
    "PoseResult",
    "PoseTracker",
    "Skeleton",
    "__version__",
    "draw_poses",
    "errors",
    "weights",
]
