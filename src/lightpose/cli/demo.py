"""`lightpose demo` (predict on webcam 0, shown in a window by default) and `lightpose-demo`, the seed's command,
whose options (--video, --images, --output VIDEO|FOLDER, --json FILE, ...) map onto the same run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightpose.cli import predict
from lightpose.cli.inputs import Input, expand_sources
from lightpose.cli.main import run_command
from lightpose.cli.options import Parser, add_model_options, add_tracking_options, add_verbosity, configure_logging
from lightpose.cli.outputs import VIDEO_FOURCC, FolderOutputs, Sink, StreamOutputs, Tee, check_not_inputs
from lightpose.cli.view import LiveView, window_unavailable_reason
from lightpose.errors import UsageError
from lightpose.io import check_output_path
from lightpose.pose import PoseResult

PROG = "lightpose-demo"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="poses live from a webcam (or any SOURCE), in a window or a browser",
        description="`lightpose predict` with camera 0 as the default SOURCE and a window (--show) by default, or "
        "a browser view with --serve PORT; files only with --output DIR.",
    )
    predict.add_arguments(parser, sources_default=["0"])
    parser.set_defaults(func=predict.run, prog_name="lightpose demo", window_by_default=True)  # no output: a window


def build_parser() -> argparse.ArgumentParser:
    """`lightpose-demo`'s seed options."""
    parser = Parser(
        prog=PROG,
        description="Multi-person pose estimation on a webcam, video, stream URL or images, with tracking, "
        "smoothing and drawing; shown in a window, served to a browser (--serve) or saved (--output, --json). "
        "The same run as `lightpose demo` / `lightpose predict`.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="0|PATH|URL", help="webcam index, video file or stream URL")
    source.add_argument("--images", nargs="+", metavar="PATH", help="image files, folders and/or glob patterns")
    add_tracking_options(parser, track_default="on for --video, off for --images", tracker_default="reference")
    parser.add_argument("--bbox", action="store_true", help="draw each pose's bounding box")
    parser.add_argument("--output", metavar="PATH", help="annotated video (.mp4, .avi, .mkv, .mov) or image folder")
    parser.add_argument("--json", metavar="PATH", help="JSON Lines file: PoseResult.to_dict() per frame")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --output / --json files")
    parser.add_argument("--show", action="store_true", help="show an OpenCV window (needs OpenCV with GUI support)")
    parser.add_argument("--serve", metavar="[HOST:]PORT", help="live view at http://HOST:PORT/ (127.0.0.1 default)")
    add_model_options(parser, backend="torch", backend_reason="torch: the reference demo's runtime")
    add_verbosity(parser)
    parser.set_defaults(recursive=False, batch_size=1, workers=0, conf=0.0, min_keypoints=0, shard=None, no_save=False)
    return parser


class _Shared:
    """The one sink of every input; finalised after a video input (lightpose-demo has one) or by finish()."""

    def __init__(self, sink: Sink, item: Input) -> None:
        self.sink, self.item = sink, item

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        self.sink.write(result, annotated)

    def close(self) -> None:
        if self.item.kind == "video":
            self.sink.close()


@dataclass
class SeedOutputs:
    """lightpose-demo's files: one annotated video or image folder (--output) and one JSON Lines file (--json)."""

    video: Path | None
    folder: Path | None
    jsonl: Path | None
    overwrite: bool
    all_inputs: Sequence[Input]
    _sink: Sink | None = None
    written: list[Path] = field(default_factory=list)

    def check(self, inputs: Sequence[Input]) -> None:
        local = [p for p in (item.path for item in self.all_inputs) if p is not None]
        files = [(self.video, "--output"), (self.jsonl, "--json")]
        for path, option in files:
            if path is not None:
                check_output_path(path, inputs=local, option=option)
                if path.exists() and not self.overwrite:
                    raise UsageError(f"{option} {path} exists: add --overwrite to replace it, or choose another name")
        if self.folder is not None:
            check_output_path(self.folder, folder=True, inputs=local, option="--output")
            images = [self.folder / item.rel for item in inputs if item.kind == "image"]
            check_not_inputs(images, local, "--output")
            existing = [p for p in images if p.exists()]
            if existing and not self.overwrite:
                raise UsageError(
                    f"--output {self.folder} already holds {existing[0].name} (and {len(existing) - 1} more of the "
                    "outputs): add --overwrite to replace them, or choose another folder"
                )

    def select(self, inputs: Sequence[Input]) -> list[Input]:
        return list(inputs)

    def sink_for(self, item: Input, fps: float | None) -> Sink:
        if self._sink is None:
            sinks: list[Sink] = []
            if self.video is not None or self.jsonl is not None:
                sinks.append(StreamOutputs(self.video, self.jsonl, fps))
            if self.folder is not None:
                sinks.append(FolderOutputs(self.folder, {str(i.spec): i.rel.as_posix() for i in self.all_inputs}))
            self._sink = Tee(sinks)
        return _Shared(self._sink, item)

    def finish(self, interrupted: bool) -> str:
        if self._sink is None:
            return ""
        self._sink.close()
        paths = [p for p in (self.video, self.folder, self.jsonl) if p is not None]
        return f"; wrote {', '.join(map(str, paths))}" if paths else ""


def run(args: argparse.Namespace) -> int:
    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    view = LiveView(show=args.show, serve=args.serve, prog=PROG)
    if not (args.output or args.json or view.active):
        reason = window_unavailable_reason()
        if reason:
            raise UsageError(f"nothing to do: no window can be opened: {reason}. Give --serve PORT for a live view "
                             "in a browser, --output PATH or --json PATH")  # fmt: skip
        view.show = True
    video = folder = None
    if args.output:
        output = Path(args.output)
        if output.suffix.lower() in VIDEO_FOURCC:
            video = output
        elif output.suffix and not output.is_dir():
            raise UsageError(f"--output {output}: give a video file ({', '.join(VIDEO_FOURCC)}) or a folder")
        else:
            folder = output
    inputs = expand_sources([args.video] if args.video is not None else args.images)
    if args.video is not None and inputs[0].kind != "video":
        raise UsageError(f"--video {args.video} is an image: use --images")
    if args.images is not None:
        inputs = [item for item in inputs if item.kind == "image"]  # folders may also hold videos
        if not inputs:
            raise UsageError(f"no images in {' '.join(args.images)}: give a video with --video")
    plan = SeedOutputs(video, folder, Path(args.json) if args.json else None, args.overwrite, inputs)
    return predict.execute(args, PROG, inputs, plan, view)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(run, args, PROG)


if __name__ == "__main__":
    sys.exit(main())
