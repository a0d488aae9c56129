"""`lightpose val-subset`: the reference's 250-image validation subset of a COCO keypoints annotation file."""

from __future__ import annotations

import argparse

from lightpose.cli.options import add_verbosity, configure_logging, say
from lightpose.errors import OutputWriteError, UsageError

PROG = "lightpose val-subset"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "val-subset",
        help="draw the reference's validation subset of a COCO annotation file",
        description="Write a COCO annotation file holding N images (default 250) of --labels and their "
        "annotations, drawn as the reference's make_val_subset.py (shuffle with seed 0, take the first N).",
    )
    parser.add_argument("--labels", required=True, help="COCO keypoints JSON, e.g. person_keypoints_val2017.json")
    parser.add_argument("--output", required=True, help="where to write the subset, e.g. val_subset.json")
    parser.add_argument("--num-images", type=int, default=250, help="number of images (default 250)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0, as the reference)")
    add_verbosity(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightpose.io import check_output_path, write_json
    from lightpose.training.evaluate import load_keypoint_annotations
    from lightpose.training.labels import make_val_subset

    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    if args.num_images < 1:
        raise UsageError(f"--num-images must be >= 1, got {args.num_images}: pass a number of images")
    check_output_path(args.output, inputs=[args.labels], option="--output")
    subset = make_val_subset(load_keypoint_annotations(args.labels), num_images=args.num_images, seed=args.seed)
    try:
        write_json(args.output, subset)
    except OSError as error:  # a failed write is a runtime failure (exit 1), whatever OSError it is
        raise OutputWriteError(
            f"could not write {args.output}: {error}: free disk space or choose another --output"
        ) from error
    say(args, f"wrote {len(subset['images'])} images and {len(subset['annotations'])} annotations to {args.output}")
    return 0
