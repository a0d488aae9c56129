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


def test_library_chatter_hidden_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import cv2

    from lightpose.cli.options import configure_logging

    monkeypatch.setenv("OPENCV_LOG_LEVEL", "INFO")
    configure_logging("lightpose quantize")
    assert not logging.getLogger("nncf").isEnabledFor(logging.INFO)
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_ERROR
    configure_logging("lightpose quantize", verbose=True)
    assert logging.getLogger("nncf").level == logging.NOTSET
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_INFO
    configure_logging("lightpose")


def test_a_backend_default_other_than_auto_says_why() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name, subparser in {**subcommands, demo.PROG: demo.build_parser()}.items():
        backend = next((a for a in subparser._actions if a.dest == "backend"), None)
        if backend is not None and backend.default != "auto":
            assert f"({backend.default}: " in str(backend.help), name
