"""Models shared by the backend, export, batch and quantize tests: one random-model ONNX export per test process,
and the trained fixture model of ../shared (skipping with a reason when absent)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from conftest import fixture_model_path, shared_root
from lightpose.model import LightweightOpenPose
from random_model import random_model

EXPORT_SIZE = (64, 96)  # (height, width) the random model is traced at; the file takes any size


@functools.cache
def random_onnx_bytes() -> bytes:
    """`random_model()` exported to ONNX once per process (dynamic batch, height and width)."""
    from lightpose.export import onnx_model_bytes

    return onnx_model_bytes(random_model(), height=EXPORT_SIZE[0], width=EXPORT_SIZE[1])


def write_random_onnx(folder: Path, name: str = "model.onnx") -> Path:
    """The shared random-model export written to `folder / name`."""
    path = folder / name
    path.write_bytes(random_onnx_bytes())
    return path


def fixture_checkpoint() -> Path:
    """The fixture model's checkpoint, or skip (see conftest.fixture_model_path)."""
    return fixture_model_path()


@functools.cache
def _fixture_model() -> LightweightOpenPose:
    from lightpose.weights import load_model

    return load_model(fixture_checkpoint())[0]


def fixture_model() -> LightweightOpenPose:
    """The fixture model, loaded once per process (callers must not change it; backends work on copies)."""
    fixture_checkpoint()
    return _fixture_model()


def people_images(count: int) -> list[Path]:
    """The first `count` photos of ../shared/data/people (sorted by name)."""
    folder = shared_root() / "data" / "people"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (set LIGHTPOSE_SHARED to the shared data folder to run this test)")
    return sorted(folder.glob("*.jpg"))[:count]


def run_cli(name: str, argv: list[str]) -> int:
    """Run the subcommand `lightpose.cli.<name>` alone (argv without the subcommand's name), as `lightpose` would:
    its exit code, exceptions mapped by `run_command`."""
    import argparse
    import importlib

    from lightpose.cli.main import run_command

    parser = argparse.ArgumentParser(prog="lightpose")
    importlib.import_module(f"lightpose.cli.{name}").add_parser(parser.add_subparsers())
    command = name.replace("_", "-")
    args = parser.parse_args([command, *argv])
    return run_command(args.func, args, f"lightpose {command}")
