"""Training checkpoints in the reference layout: atomic save, safe load, resume, weights-only and MobileNet init.

A checkpoint is the dict {state_dict, optimizer, scheduler, iter, current_epoch} of the reference train.py plus
lightpose's resume extras (epoch_position, rng, scaler, world_size, batch_size, batches_per_iter), all tensors or
plain Python values, so `torch.load(weights_only=True)` reads it and `lightpose.model.load_reference_state` loads it.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightpose.model import CheckpointError, extract_state_dict

_NEW_STAGE_PREFIX = "refinement_stages."


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """torch.load(path, weights_only=True) on CPU; FileNotFoundError or CheckpointError with the path if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: check --checkpoint-path")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({reason})") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict or state dict")
    return checkpoint


def write_checkpoint(path: str | os.PathLike[str], checkpoint: Mapping[str, Any]) -> Path:
    """torch.save to a temp file in the same folder, then os.replace: a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(dict(checkpoint), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def checkpoint_path(folder: str | os.PathLike[str], iteration: int) -> Path:
    """`<folder>/checkpoint_iter_<iteration>.pth`, the reference name."""
    return Path(folder) / f"checkpoint_iter_{iteration}.pth"


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (no `module.` prefix; unwrap DDP before calling)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], source: str) -> list[str]:
    """Load weights only (--weights-only): keys missing from the checkpoint keep their initialisation.

    Only refinement-stage keys may be missing (a checkpoint with fewer refinement stages); those are returned (see
    `describe_missing`). Any other missing key or any shape mismatch raises CheckpointError (wrong model).
    """
    state = extract_state_dict(checkpoint, source)
    target = model.state_dict()
    wrong_shape = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in target.items()
        if k in state and state[k].shape != v.shape
    ]
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    not_new_stage = [k for k in missing if not k.startswith(_NEW_STAGE_PREFIX)]
    if wrong_shape or not_new_stage:
        detail = wrong_shape[:5] + not_new_stage[:5]
        raise CheckpointError(
            f"{source} does not fit LightweightOpenPose({getattr(model, 'num_refinement_stages', '?')} refinement "
            f"stages): {len(wrong_shape)} key(s) of the wrong shape, {len(not_new_stage)} missing key(s) such as "
            f"{', '.join(detail)}"
        )
    merged = {k: state.get(k, v) for k, v in target.items()}
    model.load_state_dict(merged, strict=True)
    return missing


def describe_missing(missing: list[str]) -> str:
    """One line for the keys `load_weights` left at their initialisation, by module: 'N parameters ...: a.*, b.*'."""
    modules = sorted({".".join(k.split(".")[:2]) for k in missing})
    return f"{len(missing)} parameter(s) not in the checkpoint keep their initialisation: " + ", ".join(
        f"{m}.*" for m in modules
    )


def load_from_mobilenet(model: nn.Module, checkpoint: Mapping[str, Any], source: str) -> int:
    """Initialise the backbone `model.X` from ImageNet MobileNet v1 weights `module.model.X` (REFERENCE.md §a).

    Every backbone weight/BN tensor must be present with the right shape (else CheckpointError); the file's missing
    `num_batches_tracked` buffers are expected and stay as they are. Returns the number of tensors copied.
    """
    if "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{source} has no 'state_dict': not a MobileNet checkpoint like mobilenet_sgd_68.848.pth.tar"
        )
    state = checkpoint["state_dict"]
    target = model.state_dict()
    new_state = dict(target)
    problems = []
    for key, value in target.items():
        if not key.startswith("model.") or key.endswith("num_batches_tracked"):
            continue
        source_value = state.get("module." + key, state.get(key))
        if not isinstance(source_value, torch.Tensor):
            problems.append(f"{key} missing")
        elif source_value.shape != value.shape:
            problems.append(f"{key} has shape {tuple(source_value.shape)}, expected {tuple(value.shape)}")
        else:
            new_state[key] = source_value
    if problems:
        raise CheckpointError(
            f"{source} is not MobileNet v1 weights in the --from-mobilenet layout (module.model.X): "
            f"{len(problems)} problem(s): {'; '.join(problems[:5])}"
        )
    model.load_state_dict(new_state, strict=True)
    return sum(1 for k in target if k.startswith("model.") and not k.endswith("num_batches_tracked"))


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python `random` generator states as tensors and plain lists."""
    numpy_state = np.random.get_state(legacy=False)
    python_version, python_internal, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": [python_version, list(python_internal), python_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
