"""Adam with the reference's 13 parameter groups and its MultiStepLR schedule (the published repository's train.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from lightpose.model import LightweightOpenPose

BASE_LR = 4e-5
WEIGHT_DECAY = 5e-4
MILESTONES = (100, 200, 260)
GAMMA = 0.333
EPOCHS = 280

_Predicate = Callable[[nn.Module, str], bool]


def _is_conv(module: nn.Module, _name: str) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == 1


def _is_depthwise(module: nn.Module, _name: str) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels
        and module.in_channels == module.out_channels
    )


def _is_bn(module: nn.Module, _name: str) -> bool:
    return isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm))


def _select(root: nn.Module, kind: _Predicate, name: str) -> Iterator[nn.Parameter]:
    for module in root.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if param_name == name and kind(module, param_name):
                yield param


def parameter_groups(
    model: LightweightOpenPose, base_lr: float = BASE_LR, weight_decay: float = WEIGHT_DECAY
) -> list[dict[str, Any]]:
    """The 13 Adam parameter groups: (part, layer kind, parameter) -> lr multiplier and weight decay.

    Every parameter of `model` is in exactly one group (a ValueError says which one is not).
    """
    table: list[tuple[nn.Module, _Predicate, str, float, float]] = [
        (model.model, _is_conv, "weight", 1, weight_decay),
        (model.model, _is_depthwise, "weight", 1, 0),
        (model.model, _is_bn, "weight", 1, 0),
        (model.model, _is_bn, "bias", 2, 0),
        (model.cpm, _is_conv, "weight", 1, weight_decay),
        (model.cpm, _is_conv, "bias", 2, 0),
        (model.cpm, _is_depthwise, "weight", 1, 0),
        (model.initial_stage, _is_conv, "weight", 1, weight_decay),
        (model.initial_stage, _is_conv, "bias", 2, 0),
        (model.refinement_stages, _is_conv, "weight", 4, weight_decay),
        (model.refinement_stages, _is_conv, "bias", 8, 0),
        (model.refinement_stages, _is_bn, "weight", 1, 0),
        (model.refinement_stages, _is_bn, "bias", 2, 0),
    ]
    selected = [list(_select(part, kind, name)) for part, kind, name, _, _ in table]
    groups = [
        {"params": params, "lr": base_lr * multiplier, "weight_decay": decay}
        for params, (_, _, _, multiplier, decay) in zip(selected, table)
    ]
    counts = Counter(id(p) for params in selected for p in params)
    names = {id(p): n for n, p in model.named_parameters()}
    stray = [names[i] for i in names if counts[i] != 1]
    if stray:
        raise ValueError(f"parameters not in exactly one optimiser group: {', '.join(stray)}")
    return groups


def make_optimizer(
    model: LightweightOpenPose, base_lr: float = BASE_LR, weight_decay: float = WEIGHT_DECAY
) -> torch.optim.Adam:
    """Adam over `parameter_groups` (L2 weight decay inside Adam, as the reference)."""
    return torch.optim.Adam(parameter_groups(model, base_lr, weight_decay), lr=base_lr, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR at epochs 100, 200, 260 with gamma 0.333, stepped once at the END of every epoch.

    So epoch e (0-based) trains at base_lr * 0.333 ** (milestones <= e); the reference stepped at the start of each
    epoch (pre-1.1 PyTorch), which decays one epoch earlier.
    """
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(MILESTONES), gamma=GAMMA)


def scheduler_state_to_plain(state: dict[str, Any]) -> dict[str, Any]:
    """The scheduler state with MultiStepLR's `milestones` Counter as a plain dict (loads with weights_only=True)."""
    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in state.items()}


def scheduler_state_from_plain(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `scheduler_state_to_plain`."""
    return {k: (Counter(v) if k == "milestones" and isinstance(v, dict) else v) for k, v in state.items()}
