"""`lightpose-demo`: poses on a webcam, video, stream or images; drawn, tracked, smoothed; shown, served or saved."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import cv2
import numpy as np
from tqdm import tqdm

from lightpose.cli.demo_outputs import VIDEO_FOURCC, DemoOutputs
from lightpose.draw import draw_poses
from lightpose.estimator import PoseEstimator
from lightpose.serve import LiveServer
from lightpose.sources import FrameSource, open_source
from lightpose.tracking import PoseTracker

PROG = "lightpose-demo"
WINDOW_TITLE = "lightpose demo (Esc/q: quit, p: pause)"
DEFAULT_VIDEO_FPS = 15.0
EXIT_INTERRUPTED = 130
FINISHED, QUIT, INTERRUPTED = "input finished", "quit", "interrupted"  # how the frame loop ended


class UsageError(Exception):
    """A bad argument: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit code 2 (argparse's default also prints the usage)."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Multi-person pose estimation on a webcam, video, stream URL or images, with tracking, "
        "smoothing and drawing; shown in a window, served to a browser (--serve) or saved (--output, --json).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="0|PATH|URL", help="webcam index, video file or stream URL")
    source.add_argument("--images", nargs="+", metavar="PATH", help="image files and/or folders of images")
    parser.add_argument(
        "--checkpoint", metavar="NAME|PATH", help="weights name or checkpoint file (default: the published model)"
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--height", type=int, default=256, help="network input height (default 256)")
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        default="torch",
        help="network runtime (default torch; onnxruntime and openvino need the lightpose[onnx] / [openvino] extras)",
    )
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="network precision (default fp32)"
    )
    parser.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stable pose ids across frames (default: on for --video, off for --images)",
    )
    parser.add_argument(
        "--smooth",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="One-Euro smoothing of tracked keypoints (default: on when tracking)",
    )
    parser.add_argument("--bbox", action="store_true", help="draw each pose's bounding box")
    parser.add_argument("--output", metavar="PATH", help="annotated video (.mp4, .avi, .mkv, .mov) or image folder")
    parser.add_argument("--json", metavar="PATH", help="JSON Lines file: one record of poses per frame")
    parser.add_argument("--show", action="store_true", help="show an OpenCV window (needs OpenCV with GUI support)")
    parser.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve a live view at http://HOST:PORT/ (default host 127.0.0.1; port 0 picks a free one)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:  # raised while processing; the outputs so far are finalised
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, then process the input until it ends or the user stops it."""
    no_window = window_unavailable_reason()
    if args.show and no_window:
        raise UsageError(f"--show cannot open a window: {no_window}; use --serve PORT to watch in a browser")
    if not (args.output or args.json or args.show or args.serve):
        if no_window:
            raise UsageError(
                f"nothing to do: no window can be opened ({no_window}); give --serve PORT (live view in a browser), "
                "--output PATH or --json PATH"
            )
        args.show = True
    serve_address = parse_address(args.serve) if args.serve else None
    video_out = _check_output(args.output) if args.output else None
    if args.json:
        _check_writable_parent(Path(args.json), "--json")
    track = args.track if args.track is not None else args.video is not None
    if args.smooth and not track:
        raise UsageError("--smooth follows pose ids: add --track, or drop --smooth")
    smooth = track and args.smooth is not False

    source = _open_source(args)
    with contextlib.ExitStack() as stack:
        stack.callback(source.close)
        estimator = _load_estimator(args)
        server = _start_server(serve_address) if serve_address else None
        if server is not None:
            stack.callback(server.close)
            print(f"{PROG}: live view at {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        outputs = _enter_outputs(stack, args, video_out, source)
        if args.show:
            _open_window()
            stack.callback(cv2.destroyAllWindows)
        stop = stack.enter_context(_StopOnSignal())
        tracker = PoseTracker(smooth=smooth) if track else None
        done, ending = _process(source, estimator, tracker, outputs, server, args, stop)
        outputs.close()
        if server is not None and ending == FINISHED:
            server.finish()  # before the message below, which tells a watcher the outputs are final
        written = f"; wrote {', '.join(map(str, outputs.paths))}" if outputs.paths and done else ""
        print(f"{PROG}: {ending} after {done} frames{written}", file=sys.stderr, flush=True)
        if ending == INTERRUPTED:
            return EXIT_INTERRUPTED
        if server is not None and ending == FINISHED:
            print(f"{PROG}: still serving {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            while not (stop.wait(0.2) or (args.show and _quit_key(cv2.waitKey(1)))):
                pass
    return 0


def _process(
    source: FrameSource,
    estimator: PoseEstimator,
    tracker: PoseTracker | None,
    outputs: DemoOutputs,
    server: LiveServer | None,
    args: argparse.Namespace,
    stop: _StopOnSignal,
) -> tuple[int, str]:
    """Run the frame loop; (frames done, how it ended: FINISHED, QUIT or INTERRUPTED)."""
    fps = FpsMeter()
    done = 0
    paused = False
    progress = tqdm(total=source.length, unit="frame", disable=None, leave=False) if source.length else None
    try:
        for frame in source:
            poses = estimator(frame.image)
            if tracker is not None:
                poses = tracker.update(poses)
            annotated = draw_poses(frame.image, poses, bbox=args.bbox)
            outputs.write(frame, poses, annotated)
            done += 1
            rate = fps.tick()
            if progress is not None:
                progress.update()
            if args.show or server is not None:
                view = _with_fps(annotated, rate)
                if server is not None:
                    server.publish(view, frame=frame.index, fps=rate, people=len(poses))
                if args.show:
                    cv2.imshow(WINDOW_TITLE, view)
                    key = cv2.waitKey(0 if paused else 1)
                    if _quit_key(key):
                        return done, QUIT
                    if key & 0xFF == ord("p"):
                        paused = not paused
            if stop.is_set():
                return done, INTERRUPTED
    except KeyboardInterrupt:
        return done, INTERRUPTED
    finally:
        if progress is not None:
            progress.close()
    return done, FINISHED


def _quit_key(key: int) -> bool:
    return key >= 0 and key & 0xFF in (27, ord("q"))


class FpsMeter:
    """Frames per second, exponentially averaged over about the last `span` frames."""

    def __init__(self, span: int = 10) -> None:
        self._weight = 2.0 / (span + 1)
        self._last: float | None = None
        self.fps = 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            current = 1.0 / (now - self._last)
            self.fps = current if self.fps == 0.0 else self.fps + self._weight * (current - self.fps)
        self._last = now
        return self.fps


def _with_fps(image: np.ndarray, fps: float) -> np.ndarray:
    view = image.copy()
    cv2.putText(view, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(view, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return view


def window_unavailable_reason() -> str | None:
    """Why OpenCV cannot open a window here (headless build, no display), or None when it should work."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE":
            return "this OpenCV build has no GUI support (opencv-python-headless; install opencv-python for windows)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


def _open_window() -> None:
    try:
        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_AUTOSIZE)
    except cv2.error as error:
        raise UsageError(f"--show could not open a window ({error}); use --serve PORT to watch in a browser") from None


def parse_address(spec: str) -> tuple[str, int]:
    """'[HOST:]PORT' -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port_text = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--serve expects [HOST:]PORT with a port in 0..65535, got {spec!r}")
    return host, int(port_text)


def _check_writable_parent(path: Path, option: str) -> None:
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: folder {parent} is not writable")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name")


def _check_output(output: str) -> bool:
    """Whether --output is a video file (else an image folder); UsageError when it cannot be written."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FOURCC:
        _check_writable_parent(path, "--output")
        return True
    if suffix and not path.is_dir():
        raise UsageError(
            f"--output {path}: give a video file ({', '.join(VIDEO_FOURCC)}) or a folder for annotated images"
        )
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output {path} exists and is not a folder")
    existing = next(p for p in [path, *path.resolve().parents] if p.exists())
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--output {path}: {existing} is not writable")
    return False


def _enter_outputs(
    stack: contextlib.ExitStack, args: argparse.Namespace, output_is_video: bool | None, source: FrameSource
) -> DemoOutputs:
    output = Path(args.output) if args.output else None
    outputs = DemoOutputs(
        video=output if output_is_video else None,
        folder=output if output is not None and not output_is_video else None,
        json_path=Path(args.json) if args.json else None,
        fps=source.fps or DEFAULT_VIDEO_FPS,
    )
    try:
        return stack.enter_context(outputs)
    except OSError as error:
        raise UsageError(f"cannot write the outputs: {error}") from None


def _open_source(args: argparse.Namespace) -> FrameSource:
    try:
        return open_source(args.video if args.video is not None else args.images)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None


def _load_estimator(args: argparse.Namespace) -> PoseEstimator:
    try:
        return PoseEstimator.from_pretrained(
            args.checkpoint, device=args.device, height=args.height, backend=args.backend, precision=args.precision
        )
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise UsageError(str(error)) from None


def _start_server(address: tuple[str, int]) -> LiveServer:
    host, port = address
    try:
        return LiveServer(host, port).start()
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"--serve {host}:{port}: cannot listen there ({reason}); pick another port") from None


class _StopOnSignal:
    """While active, the first SIGINT/SIGTERM only sets a flag (the loop then finishes cleanly); a second
    SIGINT raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._event.set()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
