"""lightpose: real-time 2D multi-person pose estimation (Lightweight OpenPose)."""

from lightpose.pose import Keypoint, Pose

__version__ = "0.1.0"

__all__ = ["Keypoint", "Pose", "__version__"]
