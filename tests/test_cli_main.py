"""The one `lightpose` command: subcommands, --version, `python -m lightpose`, unknown and abbreviated options,
-q/-v everywhere, exit codes and messages in command-line words."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import lightpose
from lightpose.cli import demo
from lightpose.cli.main import SUBCOMMANDS, build_parser, main, run_command
from lightpose.cli.options import cli_words
from lightpose.errors import UsageError


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lightpose {lightpose.__version__}"


def test_python_m_lightpose_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "lightpose", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("predict", "demo", "eval", "train", "export", "prepare-coco", "val-subset"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "x.jpg", "--vidoe", "v.mp4"], "unknown option --vidoe"),
        (["predict", "x.jpg", "--outp", "o"], "unknown option --outp (did you mean --output?)"),  # no abbreviations
        (["predict", "x.jpg", "--backend", "tensorrt"], "invalid choice: 'tensorrt'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "--help" in err


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]


def _unique_prefix(options: set[str]) -> str:
    """A prefix of one long option that no other option starts with: what argparse would accept as that option
    if abbreviations were allowed."""
    for option in sorted((o for o in options if o.startswith("--")), key=len, reverse=True):
        prefix = option[:-2]
        if len(prefix) > 3 and [o for o in options if o.startswith(prefix)] == [option]:
            return prefix
    raise AssertionError(f"no option with a unique prefix in {sorted(options)}")


@pytest.mark.parametrize("command", [name.replace("_", "-") for name in SUBCOMMANDS])
def test_every_subcommand_has_q_v_and_rejects_an_abbreviated_option(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {s for action in _subparser(command)._actions for s in action.option_strings}
    assert {"-q", "--quiet", "-v", "--verbose"} <= options
    prefix = _unique_prefix(options)
    with pytest.raises(SystemExit) as exit_info:
        main([command, prefix, "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"lightpose {command}: error: unknown option {prefix}" in err


def test_seed_demo_unknown_option_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--vidoe", "0"])
    assert exit_info.value.code == 2
    assert "unknown option --vidoe (did you mean --video?)" in capsys.readouterr().err


def _raise(error: BaseException) -> object:
    def func(args: argparse.Namespace) -> int:
        raise error

    return func


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("bad input: fix it"), 2),
        (FileNotFoundError("missing.jpg not found: check the path"), 2),
        (RuntimeError("the network failed"), 1),
        (OSError("disk on fire"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes(error: BaseException, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(verbose=False)
    assert run_command(_raise(error), args, "lightpose test") == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lightpose test: ")
    if code != 130:
        assert str(error) in err


def test_verbose_failure_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(_raise(RuntimeError("boom")), argparse.Namespace(verbose=True), "lightpose test") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("lightpose test: error: boom")


def test_messages_in_command_line_words() -> None:
    assert cli_words("CUDA is not available; use device='cpu'") == "CUDA is not available; use --device cpu"
    assert cli_words("precision='fp16' needs CUDA") == "--precision fp16 needs CUDA"
    assert cli_words("device 'cuda:3' does not exist") == "--device cuda:3 does not exist"
