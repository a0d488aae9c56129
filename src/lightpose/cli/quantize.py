"""`lightpose quantize`: a checkpoint -> INT8 OpenVINO IR (NNCF post-training quantization), with the agreement of
its poses with fp32 poses on held-out images."""

from __future__ import annotations

import argparse
import time

from lightpose.cli.options import add_model_options, add_verbosity, configure_logging, quiet_libraries, say

PROG = "lightpose quantize"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize the network to INT8 (OpenVINO IR, NNCF)",
        description="Quantize a checkpoint's network to INT8 with NNCF post-training quantization, calibrated on a "
        "folder of images like the ones it will see, and write it as OpenVINO IR (.xml, .bin beside it); "
        "PoseEstimator.from_pretrained(OUTPUT) runs it. Then prints how its poses agree with torch fp32 poses on "
        "held-out images (--validation, else every 4th calibration image, which is then not used to calibrate). "
        "The checkpoint's skeleton is stored in the IR.",
    )
    parser.add_argument("--calibration", required=True, help="folder of calibration images (a few hundred at most)")
    parser.add_argument("--output", required=True, help="output .xml file (the weights go beside it as .bin)")
    parser.add_argument("--validation", help="folder of held-out images for the agreement report")
    parser.add_argument(
        "--labels",
        metavar="COCO_JSON",
        help="COCO keypoints labels of the held-out images: also print the COCO AP of fp32 and INT8 on them "
        "(single scale at height 368, as `lightpose eval`; needs lightpose[train])",
    )
    add_model_options(parser, runtime=False)
    parser.add_argument(
        "--preset", choices=("mixed", "performance"), default="mixed", help="NNCF preset (default mixed)"
    )
    parser.add_argument(
        "--quantize-edges",
        action="store_true",
        help="also quantize the first convolution and the last convolution of each output head (default: keep "
        "them in float; they cost little time and most of the agreement)",
    )
    parser.add_argument(
        "--bias-correction", choices=("fast", "full"), default="fast", help="NNCF bias correction (default fast)"
    )
    parser.add_argument("--subset-size", type=int, default=300, help="calibration images used, at most (300)")
    parser.add_argument(
        "--max-drop",
        type=float,
        help="use nncf.quantize_with_accuracy_control: return layers to float (up to 8 rounds) until the mean OKS "
        "to fp32 poses on the validation images drops by at most this much (e.g. 0.05); minutes per round",
    )
    add_verbosity(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightpose.backends import OpenVINOBackend
    from lightpose.export import check_output, save_openvino
    from lightpose.io import list_images
    from lightpose.quantize import (
        HeldOutLabels,
        QuantizeOptions,
        ValidationSet,
        calibration_inputs,
        load_nncf,
        split_folder,
    )
    from lightpose.quantize import quantize as quantize_model
    from lightpose.quantize import quantize_with_accuracy_control as quantize_controlled
    from lightpose.weights import load_model

    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    check_output(args.output, "openvino")
    options = QuantizeOptions(
        preset=args.preset,
        keep_edges_float=not args.quantize_edges,
        bias_correction=args.bias_correction,
        subset_size=args.subset_size,
    )
    if args.validation:
        calibration_paths, validation_paths = list_images([args.calibration]), list_images([args.validation])
    else:
        calibration_paths, validation_paths = split_folder(args.calibration)
    held_out = HeldOutLabels(args.labels, validation_paths) if args.labels else None  # checked before the work
    load_nncf()  # NNCF sets its own logger up on import: import it now, then hide its INFO lines unless -v
    quiet_libraries(args.verbose)
    model, _ = load_model(args.checkpoint)
    validation = ValidationSet(model, validation_paths, args.height)
    calibration = calibration_inputs(calibration_paths, args.height)
    say(args, f"calibrating on {len(calibration)} images, validating on {len(validation_paths)} held-out images")
    start = time.perf_counter()
    if args.max_drop is None:
        int8 = quantize_model(model, calibration, options)
    else:
        int8 = quantize_controlled(
            model, calibration, validation.inputs, validation.metric, max_drop=args.max_drop, options=options
        )
    save_openvino(int8, args.output, skeleton=model.skeleton)
    say(args, f"wrote {args.output} and its .bin weights ({time.perf_counter() - start:.0f} s)")
    result = validation.compare(OpenVINOBackend(args.output))
    print(f"INT8 vs torch fp32 on {result.images} held-out images: {result.summary()}")
    if held_out is not None:
        from lightpose.backends import TorchBackend

        fp32, int8 = held_out.ap(TorchBackend(model, "cpu")), held_out.ap(OpenVINOBackend(args.output))
        print(
            f"COCO AP on {held_out.images} labelled held-out images: fp32 {fp32['AP']:.3f}, INT8 {int8['AP']:.3f} "
            f"(drop {fp32['AP'] - int8['AP']:.3f}); medium {fp32['APm']:.3f} / {int8['APm']:.3f}, "
            f"large {fp32['APl']:.3f} / {int8['APl']:.3f}"
        )
    return 0
