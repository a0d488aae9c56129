"""The training loss: masked L2 on heatmaps and PAFs of every stage (the published train.py, modules/loss.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lightpose.errors import NonFiniteLossError


def masked_l2(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(((prediction - target) * mask)^2) / 2 / batch, a 0-dim float32 tensor.

    All three are (N, C, h, w); the mask is 0 where the ground truth is unknown (crowds), else 1.
    """
    if prediction.shape != target.shape or target.shape != mask.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} "
            "must have the same (N, C, h, w) shape"
        )
    difference = (prediction.float() - target.float()) * mask.float()
    return difference.square().sum() / 2 / prediction.shape[0]


def loss_names(num_stages: int) -> list[str]:
    """Names of the per-stage losses in `stage_losses` order: stage1_heatmaps_loss, stage1_pafs_loss, ..."""
    return [f"stage{s}_{kind}_loss" for s in range(1, num_stages + 1) for kind in ("heatmaps", "pafs")]


def stage_losses(
    outputs: Sequence[torch.Tensor],
    keypoint_maps: torch.Tensor,
    keypoint_mask: torch.Tensor,
    paf_maps: torch.Tensor,
    paf_mask: torch.Tensor,
) -> torch.Tensor:
    """Masked L2 of every network output: float32 (2 * stages,), ordered as `loss_names`.

    `outputs` is the network's list [heatmaps_0, pafs_0, heatmaps_1, pafs_1, ...]; heatmaps and their maps/masks
    are (N, 19, h, w), PAFs (N, 38, h, w). The training loss is the sum of this vector.
    """
    if len(outputs) == 0 or len(outputs) % 2:
        raise ValueError(f"expected [heatmaps, pafs] per stage, got {len(outputs)} outputs")
    losses = []
    for heatmaps, pafs in zip(outputs[0::2], outputs[1::2]):
        losses.append(masked_l2(heatmaps, keypoint_maps, keypoint_mask))
        losses.append(masked_l2(pafs, paf_maps, paf_mask))
    return torch.stack(losses)


def check_finite(losses: torch.Tensor, iteration: int) -> None:
    """Raise NonFiniteLossError naming the iteration and each loss of `losses` (see `loss_names`) that is NaN/inf."""
    values = losses.detach().cpu().tolist()
    names = loss_names(len(values) // 2)
    bad = [f"{name} = {value}" for name, value in zip(names, values) if not math.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at iteration {iteration}: {', '.join(bad)}; stopping (the last checkpoint is "
            "intact; lower --base-lr or check the data)"
        )
