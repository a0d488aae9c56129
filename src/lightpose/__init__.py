"""lightpose: real-time 2D multi-person pose estimation (Lightweight OpenPose)."""

from lightpose import weights  # lightpose.weights.list_weights() works after `import lightpose`
from lightpose.draw import draw_poses
from lightpose.errors import LightposeError
from lightpose.estimator import PoseEstimator
from lightpose.model import LightweightOpenPose
from lightpose.pose import Keypoint, Pose, PoseResult
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

__version__ = "0.2.0.dev0"

__all__ = [
    "OPENPOSE_COCO",
    "Keypoint",
    "LightposeError",
    "LightweightOpenPose",
    "Pose",
    "PoseEstimator",
    "PoseResult",
    "Skeleton",
    "__version__",
    "draw_poses",
    "weights",
]
