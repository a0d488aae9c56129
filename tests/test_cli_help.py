"""Every command's --help ends with example command lines, and every example parses with today's options."""

from __future__ import annotations

import shlex

import pytest

from lightpose.cli import demo
from lightpose.cli.examples import EXAMPLES
from lightpose.cli.main import SUBCOMMANDS, build_parser


def _programs() -> list[str]:
    return [f"lightpose {name.replace('_', '-')}" for name in SUBCOMMANDS] + [demo.PROG]


@pytest.mark.parametrize("prog", _programs())
def test_help_ends_with_examples(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = demo.build_parser() if prog == demo.PROG else build_parser()
    argv = [] if prog == demo.PROG else [prog.split()[1]]
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args([*argv, "--help"])
    assert stopped.value.code == 0
    help_text = capsys.readouterr().out
    examples = help_text.split("\nexamples:\n", 1)[1].splitlines()
    assert len(examples) >= 1 and all(line.strip().startswith(("lightpose", "torchrun")) for line in examples)


@pytest.mark.parametrize("line", [line for lines in EXAMPLES.values() for line in lines])
def test_every_example_parses(line: str) -> None:
    words = shlex.split(line)
    if words[0] == "torchrun":  # torchrun's own options, then `-m lightpose ...`
        words = ["lightpose", *words[words.index("lightpose") + 1 :]]
    if words[0] == demo.PROG:
        args = demo.build_parser().parse_args(words[1:])
        assert args.video or args.images
    else:
        args = build_parser().parse_args(words[1:])
        assert callable(args.func)
