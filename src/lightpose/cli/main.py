"""The `lightpose` command: one subcommand per module of lightpose.cli."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each name is a module lightpose.cli.<name> with add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS: tuple[str, ...] = ("prepare_coco", "train", "eval", "val_subset", "export", "quantize")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightpose", description="Lightweight OpenPose: tools and training.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"lightpose.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
