"""`lightpose predict SOURCE... --output DIR` (and `lightpose demo`): poses of images, folders, globs, videos, URLs
and cameras, through `PoseEstimator.stream`, written per input (annotated image + .json, annotated video + .jsonl),
resumable, shardable, shown or served live."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lightpose.cli.inputs import Input, expand_sources, parse_shard, shard
from lightpose.cli.options import (
    add_model_options,
    add_tracking_options,
    add_verbosity,
    configure_logging,
    load_estimator,
)
from lightpose.cli.outputs import (
    ImageOutputs,
    InputOutputs,
    Sink,
    StreamOutputs,
    Tee,
    check_not_inputs,
    clean_stale,
    write_json,
)
from lightpose.cli.view import LiveView, StopOnSignal, window_unavailable_reason
from lightpose.errors import SourceError, UsageError
from lightpose.estimator import PoseEstimator
from lightpose.io import check_output_path
from lightpose.pose import PoseResult
from lightpose.progress import Progress
from lightpose.sources import VideoSource

logger = logging.getLogger("lightpose.cli")
STAGES = ("preprocess", "network", "decode", "tracking")
EXIT_FAILED_INPUTS = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="poses of images, folders, videos, URLs or cameras, written per input",
        description="Find poses in every input and write, per input under --output (relative paths kept): an image "
        "-> the annotated image and <name>.json; a video, stream or camera -> an annotated <name>.mp4 and "
        "<name>.jsonl (one line per frame). JSON is PoseResult.to_dict(). A rerun skips inputs whose outputs are "
        "complete (--overwrite redoes them); --shard I/N, or RANK/WORLD_SIZE (torchrun) or SLURM_PROCID/"
        "SLURM_NTASKS (Slurm), splits the inputs between processes. Exit codes: 0 done, 1 runtime failure or "
        "unreadable inputs, 2 bad usage or input, 130/143 stopped by SIGINT/SIGTERM (files so far are kept).",
    )
    add_arguments(parser, sources_default=None)
    parser.set_defaults(func=run, prog_name="lightpose predict", window_by_default=False)


def add_arguments(parser: argparse.ArgumentParser, *, sources_default: list[str] | None) -> None:
    """predict's options (shared with `lightpose demo`, whose SOURCE defaults to camera 0)."""
    parser.add_argument(
        "sources",
        nargs="+" if sources_default is None else "*",
        default=sources_default,
        metavar="SOURCE",
        help="image or video files, folders, quoted glob patterns, http(s)/rtsp URLs, camera indices"
        + ("" if sources_default is None else f" (default: camera {sources_default[0]})"),
    )
    out = parser.add_argument_group("outputs")
    out.add_argument("--output", "-o", metavar="DIR", help="output folder (created when missing)")
    out.add_argument("--no-save", action="store_true", help="write only the JSON, no annotated images or videos")
    out.add_argument("--coco", metavar="FILE", help="also write all image results as one COCO results list")
    out.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist (default: skip)")
    out.add_argument("--bbox", action="store_true", help="draw each pose's bounding box")
    out.add_argument("--show", action="store_true", help="show an OpenCV window (needs OpenCV with GUI support)")
    out.add_argument("--serve", metavar="[HOST:]PORT", help="live view at http://HOST:PORT/ (127.0.0.1 by default)")
    poses = parser.add_argument_group("poses")
    poses.add_argument("--conf", type=float, default=0.0, help="minimum pose score (default 0)")
    poses.add_argument("--min-keypoints", type=int, default=0, help="minimum keypoints per pose (default 0)")
    add_tracking_options(poses, track_default="on for videos and streams, off for images")
    runs = parser.add_argument_group("running")
    runs.add_argument("--recursive", action="store_true", help="include images and videos in sub-folders")
    runs.add_argument("--batch-size", type=int, default=1, help="images per network call (default 1)")
    runs.add_argument("--workers", type=int, default=0, help="DataLoader workers reading images (default 0)")
    runs.add_argument("--shard", metavar="I/N", help="process share I of N (0 <= I < N) of the inputs")
    add_model_options(parser)
    add_verbosity(parser)


# ---- what each input writes ----------------------------------------------------------------------------------


class OutputPlan(Protocol):
    """Where a run's results go: checked before any work, then one sink per input."""

    def check(self, inputs: Sequence[Input]) -> None: ...

    def select(self, inputs: Sequence[Input]) -> list[Input]: ...

    def sink_for(self, item: Input, fps: float | None) -> Sink: ...

    def finish(self, interrupted: bool) -> str: ...


def local_paths(inputs: Sequence[Input]) -> list[Path]:
    return [p for p in (item.path for item in inputs) if p is not None]


def announced_frames(item: Input) -> int | None:
    """The frame count a local video's container announces (None for streams, cameras and unknown counts)."""
    if item.kind != "video" or item.path is None:
        return None
    with contextlib.suppress(OSError), contextlib.closing(VideoSource(item.path)) as source:
        return source.length
    return None


@dataclass
class PerInputOutputs:
    """predict's files: per input under `root` (None: nothing written), and the optional COCO results file."""

    root: Path | None
    save: bool
    overwrite: bool
    coco: Path | None
    all_inputs: Sequence[Input]
    coco_records: list[dict[str, Any]] = field(default_factory=list)
    _coco_done: set[int] = field(default_factory=set)

    def paths(self, item: Input) -> InputOutputs:
        assert self.root is not None
        if item.kind == "image":
            return InputOutputs(self.root / item.rel if self.save else None, self.root / f"{item.base}.json")
        return InputOutputs(self.root / f"{item.base}.mp4" if self.save else None, self.root / f"{item.base}.jsonl")

    def check(self, inputs: Sequence[Input]) -> None:
        local = local_paths(self.all_inputs)
        if self.root is not None:
            check_output_path(self.root, folder=True, inputs=local, option="--output")
            check_not_inputs([p for item in inputs for p in self.paths(item).paths], local, "--output")
        if self.coco is not None:
            check_output_path(self.coco, inputs=local, option="--coco")

    def select(self, inputs: Sequence[Input]) -> list[Input]:
        """The inputs to process: those without outputs, with incomplete ones (an interrupted run), or all with
        --overwrite; says how many were skipped or are redone."""
        if self.root is None:
            return list(inputs)
        todo, skipped, replaced, incomplete = [], 0, 0, 0
        for item in inputs:
            paths = self.paths(item)
            if not paths.exists():
                todo.append(item)
            elif self.overwrite:
                todo.append(item)
                replaced += 1
            elif paths.complete(announced_frames(item)):
                skipped += 1
                self._collect_existing(item, paths)
            else:
                todo.append(item)
                incomplete += 1
        if skipped:
            logger.info("skipped %s whose outputs are complete (--overwrite redoes them)", counted(skipped, "input"))
        if replaced:
            logger.info("replacing the existing outputs of %d inputs (--overwrite)", replaced)
        if incomplete:
            logger.info("redoing %d inputs whose outputs are incomplete (an interrupted run)", incomplete)
        folders = {self.root} | {p.parent for item in inputs for p in self.paths(item).paths}
        removed = sum(clean_stale(folder) for folder in folders if folder.is_dir())
        if removed:
            logger.info("removed %d temporary files left by killed runs", removed)
        return todo

    def image_id(self, item: Input) -> int:
        """COCO image id: the file name when every image's name is a number (COCO's), else position + 1."""
        stems = [i.rel.stem for i in self.all_inputs if i.kind == "image"]
        return int(item.rel.stem) if all(s.isdigit() for s in stems) else item.index + 1

    def _collect_existing(self, item: Input, paths: InputOutputs) -> None:
        if self.coco is not None and item.kind == "image":
            record = json.loads(paths.data.read_text(encoding="utf-8"))
            self.coco_records.extend(PoseResult.from_dict(record).to_coco(self.image_id(item)))

    def sink_for(self, item: Input, fps: float | None) -> Sink:
        sinks: list[Sink] = []
        if self.root is not None:
            paths = self.paths(item)
            if item.kind == "image":
                sinks.append(ImageOutputs(paths))
            else:
                sinks.append(StreamOutputs(paths.annotated, paths.data, fps))
        if self.coco is not None and item.kind == "image":
            sinks.append(_CocoSink(self.coco_records, self.image_id(item)))
        return Tee(sinks)

    def finish(self, interrupted: bool) -> str:
        if self.coco is not None:
            write_json(self.coco, self.coco_records, allow_nan=False)
            logger.info("wrote %d COCO results to %s", len(self.coco_records), self.coco)
        return f" -> {self.root}" if self.root is not None else ""


class _CocoSink:
    def __init__(self, records: list[dict[str, Any]], image_id: int) -> None:
        self.records, self.image_id = records, image_id

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        self.records.extend(result.to_coco(self.image_id))

    def close(self) -> None:
        """Nothing to finalise: the records are written by PerInputOutputs.finish."""


# ---- the run ---------------------------------------------------------------------------------------------------


@dataclass
class Totals:
    """What a run did: inputs done / failed, frames, summed ms per stage, wall seconds."""

    done: int = 0
    failed: int = 0
    frames: int = 0
    ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys((*STAGES, "output"), 0.0))
    started: float = field(default_factory=time.perf_counter)

    def add(self, result: PoseResult, output_ms: float) -> None:
        self.frames += 1
        for stage in STAGES:
            self.ms[stage] += float(result.speed.get(stage, 0.0))
        self.ms["output"] += output_ms


class Runner:
    """Runs the estimator's stream over the inputs, one sink per input, the live view and the progress."""

    def __init__(
        self, est: PoseEstimator, args: argparse.Namespace, plan: OutputPlan, view: LiveView, stop: StopOnSignal
    ) -> None:
        self.est, self.args, self.plan, self.view, self.stop = est, args, plan, view, stop
        self.totals = Totals()
        self.draw = view.active or not getattr(args, "no_save", False)
        self.quit = False

    def stream_options(self) -> dict[str, Any]:
        """`est.stream`'s options; tracking and smoothing left at None follow the stream's defaults (on for videos
        and streams, off for images; smoothing with tracking)."""
        return {"track": self.args.track, "smooth": self.args.smooth, "tracker": self.args.tracker,
                "max_age": self.args.max_age, "batch_size": self.args.batch_size,
                "conf": self.args.conf, "min_keypoints": self.args.min_keypoints}  # fmt: skip

    def handle(self, item: Input, sink: Sink, result: PoseResult, progress: Progress) -> None:
        start = time.perf_counter()
        annotated = result.plot(bbox=self.args.bbox) if self.draw else None
        sink.write(result, annotated)
        if self.view.active and annotated is not None and self.view.publish(result, annotated, self.totals.frames):
            self.quit = True
        self.totals.add(result, (time.perf_counter() - start) * 1e3)
        progress.update(note=item.name)

    @property
    def stopped(self) -> bool:
        return self.quit or self.stop.is_set()

    def run(self, inputs: Sequence[Input], progress: Progress) -> None:
        index = 0
        while index < len(inputs) and not self.stopped:
            if inputs[index].kind == "video":
                self.run_video(inputs[index], progress, only=len(inputs) == 1)
                index += 1
                continue
            end = index
            while end < len(inputs) and inputs[end].kind == "image":
                end += 1
            self.run_images(inputs[index:end], progress)
            index = end

    def run_video(self, item: Input, progress: Progress, *, only: bool) -> None:
        try:
            source = VideoSource(item.spec)
        except SourceError as error:
            if only:
                raise
            logger.warning("%s: skipped: %s", item.name, error)
            self.totals.failed += 1
            return
        sink = self.plan.sink_for(item, source.fps)
        try:
            with contextlib.closing(self.est.stream(source, **self.stream_options())) as results:
                for result in results:
                    self.handle(item, sink, result, progress)
                    if self.stopped:
                        break
        finally:
            sink.close()
        self.totals.done += 0 if self.stopped else 1
        announced = f" of the {source.length} its container announced" if source.length is not None else ""
        logger.info("%s: read %d frames%s", item.name, source.frames_read, announced)

    def run_images(self, items: Sequence[Input], progress: Progress) -> None:
        by_name = {str(item.spec): item for item in items}

        def unreadable(name: str, error: Exception) -> None:
            logger.warning("%s: skipped, could not be read: %s", by_name[name].name if name in by_name else name, error)
            self.totals.failed += 1

        options = {**self.stream_options(), "workers": self.args.workers, "on_error": unreadable}
        with contextlib.closing(self.est.stream(list(by_name), **options)) as results:
            for result in results:
                item = by_name[str(result.source)]
                sink = self.plan.sink_for(item, None)
                try:
                    self.handle(item, sink, result, progress)
                finally:
                    sink.close()
                self.totals.done += 1
                if self.stopped:
                    return


def counted(number: int, noun: str) -> str:
    """'1 input', '2 inputs', '0 inputs'."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _summary(prog: str, n_inputs: int, skipped: int, totals: Totals, where: str) -> str:
    seconds = time.perf_counter() - totals.started
    frames = max(totals.frames, 1)
    stages = ", ".join(f"{name} {totals.ms[name] / frames:.1f}" for name in (*STAGES, "output"))
    wall = seconds * 1e3 / frames
    fps = totals.frames / seconds if seconds > 0 else 0.0
    return (
        f"{prog}: {counted(n_inputs, 'input')} ({totals.done} done, {skipped} skipped, {totals.failed} unreadable), "
        f"{counted(totals.frames, 'frame')} in {seconds:.1f} s, {fps:.1f} fps; "
        f"ms per frame: {stages}, wall {wall:.1f}{where}"
    )


def _start_line(prog: str, args: argparse.Namespace, est: PoseEstimator, todo: Sequence[Input], shard_: str) -> str:
    from lightpose.weights import DEFAULT_WEIGHTS

    weights = args.checkpoint or DEFAULT_WEIGHTS
    images = sum(item.kind == "image" for item in todo)
    return (
        f"{prog}: {weights} on {est.description}, height {est.height}; {counted(len(todo), 'input')} to do "
        f"({counted(images, 'image')}, {counted(len(todo) - images, 'video')}){shard_}"
    )


def check_common(args: argparse.Namespace) -> None:
    """Option values that are wrong whatever the inputs."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.min_keypoints < 0:
        raise UsageError(f"--min-keypoints must be >= 0, got {args.min_keypoints}")
    if args.smooth and args.track is False:
        raise UsageError("--smooth follows pose ids: drop --no-track, or drop --smooth")
    if args.max_age is not None and args.max_age < 0:
        raise UsageError(f"--max-age must be >= 0 (frames a lost person is remembered), got {args.max_age}")
    if args.max_age is not None and args.tracker != "motion":
        raise UsageError("--max-age applies to --tracker motion; the reference tracker remembers one frame")


def execute(args: argparse.Namespace, prog: str, inputs: Sequence[Input], plan: OutputPlan, view: LiveView) -> int:
    """The shared run of predict, demo and lightpose-demo: check every output, then load, process, summarise."""
    check_common(args)
    rank, world = parse_shard(getattr(args, "shard", None))
    mine = shard(inputs, rank, world)
    plan.check(mine)
    view.check()
    todo = plan.select(mine)
    skipped = len(mine) - len(todo)
    est = load_estimator(args)
    shard_text = f", shard {rank}/{world} of {counted(len(inputs), 'input')}" if world > 1 else ""
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(_start_line(prog, args, est, todo, shard_text), flush=True)
    total = sum(1 if item.kind == "image" else (announced_frames(item) or 0) for item in todo) or None
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(StopOnSignal())
        stack.enter_context(contextlib.closing(view.open()))
        runner = Runner(est, args, plan, view, stop)
        progress = Progress(total, unit="frame", enabled=not quiet)
        try:
            runner.run(todo, progress)
        finally:
            progress.close()
            where = plan.finish(stop.is_set())
        ending = "interrupted" if stop.is_set() else "quit" if runner.quit else "input finished"
        if ending == "input finished":
            view.finish()  # before the line below, which tells a watcher the outputs are final
        if todo or ending != "input finished":
            logger.info("%s after %s%s", ending, counted(runner.totals.frames, "frame"), where)
        else:
            logger.info("nothing to do: every input has complete outputs%s", where)
        if not quiet:
            print(_summary(prog, len(mine), skipped, runner.totals, where), flush=True)
        if stop.is_set():
            return stop.exit_code
        if runner.totals.failed:
            logger.error("%s could not be read (named above)", counted(runner.totals.failed, "input"))
            return EXIT_FAILED_INPUTS
        if not runner.quit:
            view.linger(stop)
    return 0


def run(args: argparse.Namespace) -> int:
    prog = args.prog_name
    configure_logging(prog, quiet=args.quiet, verbose=args.verbose)
    view = LiveView(show=args.show, serve=args.serve, prog=prog)
    if args.output is None and not (view.active or args.coco):
        if not args.window_by_default:
            raise UsageError("nothing to write: give --output DIR (or --coco FILE, --show, --serve PORT)")
        reason = window_unavailable_reason()
        if reason:
            raise UsageError(f"no window can be opened: {reason}. Give --serve PORT for a live view in a browser, "
                             "or --output DIR")  # fmt: skip
        view.show = True
    if args.no_save and args.output is None:
        raise UsageError("--no-save keeps only the JSON under --output: give --output DIR")
    inputs = expand_sources(args.sources, recursive=args.recursive)
    output = Path(args.output) if args.output else None
    coco = Path(args.coco) if args.coco else None
    if coco is not None:
        rank, world = parse_shard(args.shard)
        if world > 1:
            coco = coco.with_name(f"{coco.stem}-{rank}-of-{world}{coco.suffix}")
    plan = PerInputOutputs(output, not args.no_save, args.overwrite, coco, inputs)
    return execute(args, prog, inputs, plan, view)
