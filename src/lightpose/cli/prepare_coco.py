"""`lightpose prepare-coco`: COCO person_keypoints JSON -> prepared training labels (JSON).

Exit codes: 0 written, 1 runtime failure (e.g. a full disk), 2 bad usage or input (a malformed annotation is
named by its id), 130 interrupted.
"""

from __future__ import annotations

import argparse

from lightpose.cli.options import add_verbosity, configure_logging, say
from lightpose.errors import UsageError
from lightpose.io import check_output_path
from lightpose.training.labels import SKELETON_CHOICES, prepare_coco, save_prepared_labels

PROG = "lightpose prepare-coco"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-coco",
        help="prepare training labels from COCO-format keypoints",
        description="Make one training sample per main person (>= 5 keypoints, area >= 32x32) from a COCO "
        "keypoints JSON file, and save the samples as JSON for `lightpose train`. A malformed annotation "
        "stops with an error naming its id; crowd annotations without a segmentation are skipped (counted in a "
        "warning). The skeleton to train is chosen here and stored with the labels (see --skeleton).",
    )
    parser.add_argument("--labels", required=True, help="COCO annotations, e.g. person_keypoints_train2017.json")
    parser.add_argument("--output", required=True, help="where to write the prepared labels (JSON)")
    parser.add_argument("--net-input-size", type=int, default=368, help="network input side (default: 368)")
    parser.add_argument(
        "--skeleton",
        choices=SKELETON_CHOICES,
        default="auto",
        help="openpose-coco-18: the published 18-keypoint layout (COCO-17 labels + a neck made from the "
        "shoulders); coco-17: COCO's 17 keypoints without the neck; from-category: the keypoints and skeleton "
        "(1-based pairs) of the file's keypoint category, with its optional 'sigmas' (else COCO's for COCO "
        "names, else 0.05); auto (default): openpose-coco-18 for a COCO-17 category, else from-category",
    )
    add_verbosity(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    check_output_path(args.output, inputs=[args.labels], option="--output")
    samples, skeleton = prepare_coco(args.labels, net_input_size=args.net_input_size, skeleton=args.skeleton)
    if not samples:
        raise UsageError(
            f"{args.labels}: no person qualifies as a training sample (>= 5 keypoints, area >= 1024): "
            "check that the file holds keypoint annotations"
        )
    save_prepared_labels(samples, args.output, skeleton)
    names = ", ".join(skeleton.keypoints)
    say(args, f"wrote {len(samples)} samples to {args.output} (skeleton {skeleton.name!r}: {names})")
    return 0
