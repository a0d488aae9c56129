"""Options every command shares, defined once: the parser class, the model options, -q/-v and logging."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from lightpose.errors import UsageError
from lightpose.tracker import TRACKERS

if TYPE_CHECKING:
    from lightpose.estimator import PoseEstimator

BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "openvino")
PRECISION_CHOICES = ("fp32", "bf16", "fp16")
DEVICE_HELP = "cpu, cuda or cuda:N (default: cuda when available, else cpu)"
CHECKPOINT_HELP = "registered weights name, checkpoint file (.pth), exported model (.onnx, .xml) or URL"
CHECKPOINT_FILE_HELP = "registered weights name, checkpoint file (.pth) or URL"
BACKEND_HELP = (
    "network runtime: auto (OpenVINO on CPU where installed, else torch), torch (bit-exact reference), "
    "onnxruntime or openvino (extras lightpose[onnx] / lightpose[openvino]); default %(default)s"
)
PRECISION_HELP = "network precision: fp32, bf16 (CPUs with bf16, CUDA) or fp16 (CUDA); default %(default)s"
HEIGHT_HELP = "network input height in pixels, a multiple of 8 (default %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with no abbreviations (`--vid` is not `--video`) and one-line errors: "prog: error: ... (see --help)"
    with exit code 2; an unknown option is called one, with the closest known option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        known = {s for action in self._actions for s in action.option_strings}
        unknown = [a for a in getattr(self, "_argv", []) if a.startswith("--") and a.split("=")[0] not in known]
        if unknown and not self._subparsers:  # an unknown option explains more than what it made go missing
            message = self.unknown_option_message(unknown)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:  # type: ignore[override]
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def unknown_option_message(self, extras: list[str]) -> str:
        """'unknown option --vidoe (did you mean --video?)' for arguments the parser did not take."""
        known = [s for action in self._actions for s in action.option_strings]
        first = next((e for e in extras if e.startswith("-")), extras[0])
        if not first.startswith("-"):
            return f"unexpected argument {first!r}"
        name = first.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1)
        return f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")

    def format_help(self) -> str:
        from lightpose.cli.examples import examples_text

        return super().format_help() + examples_text(self.prog)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = getattr(parsed, "_parser", self)
            parser.error(parser.unknown_option_message(extras))
        return parsed


def add_model_options(
    parser: argparse.ArgumentParser,
    *,
    height: int = 256,
    backend: str = "auto",
    backend_reason: str = "",
    runtime: bool = True,
) -> None:
    """--checkpoint, --device, --backend, --precision and --height, with the same help in every command.

    `backend_reason` says why a command's default backend is not `auto` (the other commands' default).
    `runtime=False` (commands that convert a checkpoint rather than run it: export, quantize): only --checkpoint
    (a checkpoint, not an exported model) and --height."""
    group = parser.add_argument_group("model")
    default = "(default: the published model)"
    what = CHECKPOINT_HELP if runtime else CHECKPOINT_FILE_HELP
    group.add_argument("--checkpoint", metavar="NAME|PATH|URL", help=f"{what} {default}")
    if runtime:
        group.add_argument("--device", help=DEVICE_HELP)
        why = f" ({backend_reason})" if backend_reason else ""
        group.add_argument("--backend", choices=BACKEND_CHOICES, default=backend, help=BACKEND_HELP + why)
        group.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help=PRECISION_HELP)
    group.add_argument("--height", type=int, default=height, help=HEIGHT_HELP)


def add_tracking_options(
    group: argparse._ActionsContainer, *, track_default: str, tracker_default: str = "motion"
) -> None:
    """--track/--no-track, --smooth/--no-smooth (None = the stream's defaults), --tracker and --max-age;
    `track_default` says when tracking is on by default, in the command's words."""
    group.add_argument(
        "--track", action=argparse.BooleanOptionalAction, default=None,
        help=f"stable pose ids across frames (default: {track_default})",
    )  # fmt: skip
    group.add_argument(
        "--smooth", action=argparse.BooleanOptionalAction, default=None,
        help="One-Euro smoothing of tracked keypoints (default: on when tracking)",
    )  # fmt: skip
    group.add_argument(
        "--tracker", choices=TRACKERS, default=tracker_default,
        help="motion: ids kept through misses, occlusions and crossings (a person unseen for more than --max-age "
        "frames gets a new id); reference: the reference demo's, ids kept only between consecutive frames "
        f"(default: {tracker_default})",
    )  # fmt: skip
    group.add_argument(
        "--max-age", type=int, default=None, metavar="FRAMES",
        help="frames the motion tracker remembers a person it no longer sees (default 30)",
    )  # fmt: skip


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-q (warnings and errors only) and -v (debug messages, tracebacks on failure)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="print debug messages and tracebacks")


def say(args: argparse.Namespace, text: str) -> None:
    """Print a status line to stdout unless -q (a command's results are printed whatever -q says)."""
    if not getattr(args, "quiet", False):
        print(text, flush=True)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info and logging.getLogger("lightpose").isEnabledFor(logging.DEBUG):
            text += "\n" + self.formatException(record.exc_info)
        return f"{PROG_PREFIX[0]}: {text}"


PROG_PREFIX = ["lightpose"]  # the program name log lines start with; set by configure_logging
_HANDLER: list[logging.Handler] = []


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a message is logged (not the stream at configuration time)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(prog: str, *, quiet: bool = False, verbose: bool = False) -> None:
    """Log lightpose's messages to stderr as "prog: message" at INFO (-q: WARNING, -v: DEBUG); repeated calls
    replace the handler."""
    PROG_PREFIX[0] = prog
    logger = logging.getLogger("lightpose")
    for handler in _HANDLER:
        logger.removeHandler(handler)
    _HANDLER.clear()
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    _HANDLER.append(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    quiet_libraries(verbose)


CHATTY_LOGGERS = ("nncf", "openvino")  # libraries whose INFO lines are noise to a command's user


def quiet_libraries(verbose: bool) -> None:
    """Hide other libraries' INFO chatter (NNCF's per-step lines) and OpenCV's raw warnings (V4L probing before
    lightpose's own "no camera" message) unless -v."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    level = "INFO" if verbose else "ERROR"
    os.environ["OPENCV_LOG_LEVEL"] = level  # read when cv2 is first imported
    if "cv2" in sys.modules:
        cv2 = sys.modules["cv2"]
        cv2.utils.logging.setLogLevel(getattr(cv2.utils.logging, f"LOG_LEVEL_{level}"))


_PYTHON_ARGUMENT = re.compile(r"\b(device|backend|precision|height|checkpoint)(=| )(['\"])([\w:.\-/]*)\3")


def cli_words(message: str) -> str:
    """A library message in command-line words: "use device='cpu'" -> "use --device cpu", "device 'cuda:7' does
    not exist" -> "--device cuda:7 does not exist"."""
    return _PYTHON_ARGUMENT.sub(lambda m: f"--{m.group(1)} {m.group(4)}", message)


def load_estimator(args: argparse.Namespace, *, progress: bool = True) -> PoseEstimator:
    """The estimator of --checkpoint/--device/--backend/--precision/--height (`progress`: a download's progress
    bar); a bad value, a missing or unusable checkpoint or device raises UsageError in command-line words."""
    from lightpose.estimator import PoseEstimator

    try:
        return PoseEstimator.from_pretrained(
            args.checkpoint,
            device=args.device,
            height=args.height,
            backend=args.backend,
            precision=args.precision,
            progress=progress,
        )
    except ConnectionError:
        raise  # a failed download is a runtime failure, not bad usage
    except (OSError, ValueError, KeyError, ImportError, TypeError) as error:
        raise UsageError(cli_words(str(error))) from error
