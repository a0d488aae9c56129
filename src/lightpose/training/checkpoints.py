"""Training checkpoints in the reference layout: atomic save, safe load, resume, weights-only and MobileNet init.

A checkpoint is the dict {state_dict, optimizer, scheduler, iter, current_epoch} of the reference train.py plus
lightpose's resume extras (epoch_position, rng, scaler, world_size, batch_size, batches_per_iter) and the
`skeleton` it was trained for (`Skeleton.to_dict()`; absent: the published layout), all tensors or plain Python
values, so `torch.load(weights_only=True)` reads it. Reading and fitting go through
`lightpose._checkpoint` (the one reader and the one fitter), writing through `lightpose.io.atomic_write`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightpose._checkpoint import (
    extract_state_dict,
    fit_state_dict,
    looks_like_mobilenet,
    read_checkpoint,
    stored_skeleton,
)
from lightpose.errors import CheckpointError
from lightpose.io import atomic_write
from lightpose.skeleton import Skeleton

__all__ = [
    "capture_rng_state",
    "check_resumable",
    "check_skeleton",
    "checkpoint_path",
    "cpu_state_dict",
    "describe_missing",
    "load_features",
    "load_from_mobilenet",
    "load_weights",
    "read_checkpoint",
    "restore_rng_state",
    "stored_skeleton",
    "write_checkpoint",
]

_NEW_STAGE_PREFIX = "refinement_stages."
_BACKBONE_PREFIX = "model."
_FEATURE_PREFIXES = ("model.", "cpm.")


def write_checkpoint(path: str | os.PathLike[str], checkpoint: Mapping[str, Any]) -> Path:
    """torch.save through `lightpose.io.atomic_write`: a kill never leaves a half-written file, a full disk raises
    DiskFullError and keeps the previous file, and a killed write's temporary file is removed by the next one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as file:
        torch.save(dict(checkpoint), file)
    return path


def checkpoint_path(folder: str | os.PathLike[str], iteration: int) -> Path:
    """`<folder>/checkpoint_iter_<iteration>.pth`, the reference name."""
    return Path(folder) / f"checkpoint_iter_{iteration}.pth"


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (no `module.` prefix; unwrap DDP before calling)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def check_resumable(checkpoint: Mapping[str, Any], source: str, keys: Sequence[str]) -> None:
    """CheckpointError when `checkpoint` lacks the training state `keys` a resume needs, with the option that fits
    the file: --from-mobilenet for MobileNet weights, --weights-only for a pose model's weights."""
    missing = [k for k in keys if k not in checkpoint]
    if not missing:
        return
    if looks_like_mobilenet(extract_state_dict(checkpoint, source)):
        action = (
            "it holds ImageNet MobileNet v1 weights (module.model.N... keys): to start from them, add --from-mobilenet"
        )
    else:
        action = "to start from its weights, add --weights-only"
    raise CheckpointError(f"{source} has no training state ({', '.join(missing)} missing): {action}")


def check_skeleton(stored: Skeleton, training: Skeleton, source: str) -> None:
    """CheckpointError when a checkpoint's skeleton (`_checkpoint.stored_skeleton`) is not the one being trained."""
    if stored != training:
        raise CheckpointError(
            f"{source} was trained for skeleton {stored.name!r} ({stored.num_keypoints} keypoints, "
            f"{len(stored.limbs)} limbs), but the labels are for {training.name!r} ({training.num_keypoints} "
            f"keypoints, {len(training.limbs)} limbs): resume with labels of its skeleton, or start from ImageNet "
            "MobileNet weights (--from-mobilenet)"
        )


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], source: str) -> list[str]:
    """Load weights only (--weights-only): refinement stages missing from the checkpoint keep their
    initialisation and are returned (see `describe_missing`). Any other missing key, a shape mismatch or a NaN/inf
    tensor raises CheckpointError (a MobileNet file is told to use --from-mobilenet)."""
    return fit_state_dict(model, checkpoint, source, optional=lambda key: key.startswith(_NEW_STAGE_PREFIX)).kept


def describe_missing(missing: list[str]) -> str:
    """One line for the keys `load_weights` left at their initialisation, by module: 'N parameters ...: a.*, b.*'."""
    modules = sorted({".".join(k.split(".")[:2]) for k in missing})
    return f"{len(missing)} parameter(s) not in the checkpoint keep their initialisation: " + ", ".join(
        f"{m}.*" for m in modules
    )


def load_from_mobilenet(model: nn.Module, checkpoint: Mapping[str, Any], source: str) -> int:
    """Initialise the backbone `model.X` from ImageNet MobileNet v1 weights `module.model.X` (the published
    repository's modules/load_state.py, load_from_mobilenet).

    Every backbone weight/BN tensor must be present with the right shape and finite (else CheckpointError); the
    file's missing `num_batches_tracked` buffers are expected and stay as they are, the rest of the network keeps
    its initialisation. Returns the number of tensors copied.
    """
    state = extract_state_dict(checkpoint, source)
    if not any(k.startswith(_BACKBONE_PREFIX) for k in state):
        raise CheckpointError(
            f"{source} holds no backbone tensor (model.0.0.weight missing): it is not MobileNet v1 weights in the "
            "--from-mobilenet layout (module.model.N..., like mobilenet_sgd_68.848.pth.tar)"
        )
    fit = fit_state_dict(model, state, source, include=lambda key: key.startswith(_BACKBONE_PREFIX))
    return sum(1 for k in fit.loaded if not k.endswith("num_batches_tracked"))


def load_features(model: nn.Module, checkpoint: Mapping[str, Any], source: str) -> int:
    """Initialise the backbone and Cpm (`model.*`, `cpm.*`: everything before the skeleton-sized stages) from a
    pose checkpoint of another skeleton (--weights-only across skeletons). Every such tensor must be present with
    the right shape and finite (else CheckpointError); the stages keep their initialisation. Returns the number of
    tensors copied."""
    fit = fit_state_dict(model, checkpoint, source, include=lambda key: key.startswith(_FEATURE_PREFIXES))
    return sum(1 for k in fit.loaded if not k.endswith("num_batches_tracked"))


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
