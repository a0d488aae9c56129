"""`lightpose eval`: COCO keypoint AP of a checkpoint, as the reference val.py (plus multi-scale and flip)."""

from __future__ import annotations

import argparse
import json

from lightpose.cli.options import add_model_options, add_verbosity, configure_logging, load_estimator, say
from lightpose.errors import UsageError
from lightpose.skeleton import STRIDE

PROG = "lightpose eval"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="COCO keypoint AP of a checkpoint (the reference val.py)",
        description="Run the network over a COCO keypoints annotation file and its images as the reference val.py "
        "does (input height 368, maps at original resolution), write the detections in COCO results format and "
        "print the COCOeval table. The published model gives 40.0 AP on val2017 single scale.",
    )
    parser.add_argument("--labels", required=True, help="COCO keypoints JSON, e.g. person_keypoints_val2017.json")
    parser.add_argument("--images", required=True, help="folder of the annotated images, e.g. val2017/")
    parser.add_argument("--multiscale", action="store_true", help="average scales 0.5, 1, 1.5, 2 (as val.py)")
    parser.add_argument("--flip", action="store_true", help="also average the mirrored image's maps (flip test)")
    parser.add_argument("--output", default="detections.json", help="detections file (default detections.json)")
    parser.add_argument("--subset", type=int, help="evaluate N images drawn as make_val_subset (seed 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_options(
        parser, height=368, backend="torch", backend_reason="torch: the published arithmetic, so AP is the model's own"
    )
    add_verbosity(parser)
    parser.set_defaults(func=run)


def _print_stats(stats: dict[str, float]) -> None:
    print(json.dumps({name: round(value, 4) for name, value in stats.items()}))


def run(args: argparse.Namespace) -> int:
    from lightpose.errors import OutputWriteError
    from lightpose.io import check_output_path
    from lightpose.training.evaluate import evaluate_coco

    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    if args.height < STRIDE or args.height % STRIDE:
        raise UsageError(f"--height must be a positive multiple of {STRIDE}, got {args.height}: pass e.g. 368")
    if args.subset is not None and args.subset < 1:
        raise UsageError(f"--subset must be >= 1, got {args.subset}: pass a number of images, or leave it out")
    check_output_path(args.output, inputs=[args.labels, args.checkpoint], option="--output")
    estimator = load_estimator(args, progress=not args.no_progress)
    try:
        stats = evaluate_coco(
            estimator,
            args.labels,
            args.images,
            multiscale=args.multiscale,
            flip=args.flip,
            output_path=args.output,
            subset=args.subset,
            progress=not args.no_progress,
            height=args.height,
        )
    except OutputWriteError as error:  # the run finished: its numbers are not lost
        if isinstance(error.result, dict):
            _print_stats(error.result)
        raise
    _print_stats(stats)
    say(args, f"detections written to {args.output}")
    return 0
