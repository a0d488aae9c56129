"""Detect poses in one image and save a copy with the skeletons drawn.

Usage: python examples/single_image.py IMAGE [OUTPUT] [--checkpoint NAME_OR_PATH]
"""

from __future__ import annotations

import argparse

import cv2

import lightpose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("output", nargs="?", default="poses.jpg")
    parser.add_argument("--checkpoint", default=None, help="weights name, path or URL (default: published model)")
    args = parser.parse_args()

    est = lightpose.PoseEstimator.from_pretrained(args.checkpoint)
    image = cv2.imread(args.image)
    if image is None:
        raise SystemExit(f"cannot read {args.image}")
    poses = est(image)
    print(f"{len(poses)} people")
    for pose in poses:
        print(f"  score {pose.score:.2f}, {pose.num_keypoints} keypoints, bbox {pose.bbox}")
    image = lightpose.draw_poses(image, poses, bbox=True)
    cv2.imwrite(args.output, image)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
