"""`lightpose prepare-coco`: COCO person_keypoints JSON -> prepared training labels (JSON)."""

from __future__ import annotations

import argparse
import sys

from lightpose.training.labels import prepare_coco_labels, save_prepared_labels


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-coco",
        help="prepare training labels from COCO person keypoints",
        description="Make one training sample per main person (>= 5 keypoints, area >= 32x32) from a COCO "
        "person_keypoints JSON file, and save the samples as JSON for `lightpose train`.",
    )
    parser.add_argument("--labels", required=True, help="COCO annotations, e.g. person_keypoints_train2017.json")
    parser.add_argument("--output", required=True, help="where to write the prepared labels (JSON)")
    parser.add_argument("--net-input-size", type=int, default=368, help="network input side (default 368)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        samples = prepare_coco_labels(args.labels, net_input_size=args.net_input_size)
        if not samples:
            raise ValueError(f"{args.labels}: no person qualifies as a training sample (>= 5 keypoints, area >= 1024)")
        save_prepared_labels(samples, args.output)
    except (OSError, ValueError) as error:
        print(f"lightpose prepare-coco: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(samples)} samples to {args.output}")
    return 0
