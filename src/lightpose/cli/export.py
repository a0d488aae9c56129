"""`lightpose export`: a checkpoint -> ONNX file or OpenVINO IR (input `data`, outputs `heatmaps`, `pafs`)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the network to ONNX or OpenVINO IR",
        description="Export a checkpoint's network (last stage: heatmaps and PAFs) with dynamic batch, height and "
        "width. The exported model is run (onnxruntime, or OpenVINO) against torch before it is written.",
    )
    parser.add_argument("--format", required=True, choices=("onnx", "openvino"), help="output format")
    parser.add_argument("--checkpoint", required=True, help="registered weights name, checkpoint path or URL")
    parser.add_argument("--output", required=True, help="output file (.onnx, or .xml for OpenVINO with .bin beside)")
    parser.add_argument("--height", type=int, default=256, help="trace input height, a multiple of 8 (default 256)")
    parser.add_argument("--width", type=int, default=456, help="trace input width, a multiple of 8 (default 456)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightpose.export import check_output, to_onnx, to_openvino
    from lightpose.weights import load_model

    try:
        check_output(args.output, args.format)
        model, _ = load_model(args.checkpoint)
        if args.format == "onnx":
            difference = to_onnx(model, args.output, height=args.height, width=args.width, opset=args.opset)
            print(f"wrote {args.output} (onnxruntime vs torch: max abs difference {difference:.2e})")
        else:
            difference = to_openvino(model, args.output, height=args.height, width=args.width, opset=args.opset)
            print(f"wrote {args.output} and its .bin weights (OpenVINO vs torch: max abs difference {difference:.2e})")
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        print(f"lightpose export: error: {error}", file=sys.stderr)
        return 2
    return 0
