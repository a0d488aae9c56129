"""Detect poses in one image and save a copy with the skeletons drawn.

Usage: python examples/single_image.py IMAGE [OUTPUT] [--checkpoint NAME_OR_PATH]
"""

from __future__ import annotations

import argparse

import lightpose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="image file or http(s) URL")
    parser.add_argument("output", nargs="?", default="poses.jpg")
    parser.add_argument("--checkpoint", default=None, help="weights name, path or URL (default: published model)")
    args = parser.parse_args()

    est = lightpose.PoseEstimator.from_pretrained(args.checkpoint)
    result = est(args.image)  # a PoseResult: a sequence of Pose
    print(f"{len(result)} people in {result.width}x{result.height}")
    for pose in result:
        print(f"  score {pose.score:.2f}, {pose.num_keypoints} keypoints, bbox {pose.bbox}")
    result.save(args.output, bbox=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
