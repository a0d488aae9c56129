"""`lightpose export`: a checkpoint -> ONNX file or OpenVINO IR (input `data`, outputs `heatmaps`, `pafs`)."""

from __future__ import annotations

import argparse

from lightpose.cli.options import add_model_options, add_verbosity, configure_logging, say

PROG = "lightpose export"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the network to ONNX or OpenVINO IR",
        description="Export a checkpoint's network (last stage: heatmaps and PAFs) with dynamic batch, height and "
        "width, and its skeleton (PoseEstimator.from_pretrained(OUTPUT) decodes with it). The exported model is "
        "run (onnxruntime, or OpenVINO) against torch at --height x --width and a second size before it is written.",
    )
    parser.add_argument("--format", required=True, choices=("onnx", "openvino"), help="output format")
    parser.add_argument("--output", required=True, help="output file (.onnx, or .xml for OpenVINO with .bin beside)")
    add_model_options(parser, runtime=False)
    parser.add_argument("--width", type=int, default=456, help="trace input width, a multiple of 8 (default 456)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    add_verbosity(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightpose.export import check_output, to_onnx, to_openvino
    from lightpose.weights import load_model

    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    check_output(args.output, args.format)
    model, _ = load_model(args.checkpoint)
    if args.format == "onnx":
        difference = to_onnx(model, args.output, height=args.height, width=args.width, opset=args.opset)
        say(args, f"wrote {args.output} (onnxruntime vs torch: max abs difference {difference:.2e})")
    else:
        difference = to_openvino(model, args.output, height=args.height, width=args.width, opset=args.opset)
        say(args, f"wrote {args.output} and its .bin weights (OpenVINO vs torch: max abs difference {difference:.2e})")
    return 0
