"""lightpose: real-time 2D multi-person pose estimation (Lightweight OpenPose)."""

from lightpose import weights  # lightpose.weights.list_weights() works after `import lightpose`
from lightpose.decode import decode_poses
from lightpose.draw import draw_poses
from lightpose.estimator import PoseEstimator
from lightpose.model import LightweightOpenPose
from lightpose.pose import Keypoint, Pose

__version__ = "0.1.0"

__all__ = [
    "Keypoint",
    "LightweightOpenPose",
    "Pose",
    "PoseEstimator",
    "__version__",
    "decode_poses",
    "draw_poses",
    "weights",
]
