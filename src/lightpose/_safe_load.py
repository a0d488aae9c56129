"""Loading checkpoint files without ever running pickled code."""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import zipfile
from typing import Any

import torch

from lightpose.model import CheckpointError

# What genuine train.py checkpoints hold beyond torch's weights_only allow-list: MultiStepLR keeps its
# milestones in a Counter. Exactly these are let through; anything else is refused.
TRAINING_STATE_GLOBALS: tuple[Any, ...] = (collections.Counter,)


class UnsafeCheckpointError(CheckpointError):
    """The file holds pickled objects outside the weights-only allow-list (it could run code): refused."""


def load_checkpoint_file(path: str | os.PathLike[str]) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`, letting through only TRAINING_STATE_GLOBALS.

    Returns what the file holds (a state dict or a train.py-style dict). Raises FileNotFoundError for a missing
    file, UnsafeCheckpointError for objects weights_only refuses (nothing is executed), CheckpointError for a
    corrupt or non-torch file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {os.fspath(path)!r}")
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    allow = safe_globals(list(TRAINING_STATE_GLOBALS)) if safe_globals is not None else contextlib.nullcontext()
    try:
        with allow:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise CheckpointError(f"{os.fspath(path)} is corrupt or not a torch checkpoint: {exc}") from exc
        raise UnsafeCheckpointError(
            f"refused to load {os.fspath(path)}: weights-only loading does not accept its content ({_reason(exc)})."
            " Pickled objects can run code, so lightpose never fully unpickles a file. If you trust it, re-save its "
            "tensors only: torch.save(torch.load(path, weights_only=False)['state_dict'], new_path), and load new_path."
        ) from None
    except (PermissionError, FileNotFoundError):
        raise
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as exc:  # torch: OSError on bad zips
        raise CheckpointError(f"{os.fspath(path)} is corrupt or not a torch checkpoint: {exc}") from exc


def _reason(exc: BaseException) -> str:
    """The specific line of torch's weights_only refusal (e.g. 'Unsupported global: GLOBAL builtins.open')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for marker in ("Unsupported global", "Unsupported operand", "WeightsUnpickler error"):
        for line in lines:
            if marker in line:
                return line.removeprefix("WeightsUnpickler error:").split(" Please use")[0].strip() or line
    return lines[0] if lines else type(exc).__name__
