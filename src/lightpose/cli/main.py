"""The `lightpose` command: one subcommand per module of lightpose.cli.

Exit codes: 0 done, 1 runtime failure (one line; the traceback with -v), 2 bad usage or input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lightpose.cli.options import Parser, cli_words
from lightpose.errors import SourceError, UsageError

# Each name is a module lightpose.cli.<name> with add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS: tuple[str, ...] = (
    "predict", "demo", "eval", "train", "export", "quantize", "prepare_coco", "val_subset",
)  # fmt: skip
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Bad usage or input: what the user gave is wrong (exit 2); anything else raised is a runtime failure (exit 1).
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, SourceError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from lightpose import __version__

    parser = Parser(prog="lightpose", description="Lightweight OpenPose: pose estimation, tools and training.")
    parser.add_argument("--version", action="version", version=f"lightpose {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"lightpose.cli.{name}").add_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.set_defaults(_parser=subparser)  # unknown options are reported by the subcommand's parser
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_command(args.func, args, getattr(args, "_parser", parser).prog)


def run_command(func: object, args: argparse.Namespace, prog: str) -> int:
    """`func(args)` with the exit-code contract: an exception becomes one line on stderr (with -v, the traceback)
    and exit 2 for bad usage or input, 1 otherwise; Ctrl-C exits 130."""
    try:
        return int(func(args))  # type: ignore[operator]
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the one place every command's failures are reported
        if getattr(args, "verbose", False) or logging.getLogger("lightpose").isEnabledFor(logging.DEBUG):
            import traceback

            traceback.print_exc()
        message = cli_words(str(error) or type(error).__name__)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
