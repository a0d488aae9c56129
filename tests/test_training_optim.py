"""Adam parameter groups (13, with the reference's lr multipliers and weight decays) and the MultiStepLR schedule."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from lightpose.model import LightweightOpenPose
from lightpose.training.optim import (
    make_optimizer,
    make_scheduler,
    parameter_groups,
    scheduler_state_from_plain,
    scheduler_state_to_plain,
)

# (lr multiplier, weight decay) of the 13 groups, the published repository's train.py.
EXPECTED = [
    (1, 5e-4),
    (1, 0),
    (1, 0),
    (2, 0),
    (1, 5e-4),
    (2, 0),
    (1, 0),
    (1, 5e-4),
    (2, 0),
    (4, 5e-4),
    (8, 0),
    (1, 0),
    (2, 0),
]


def _group_of(groups: list[dict], model: nn.Module) -> dict[str, int]:
    index = {id(p): g for g, group in enumerate(groups) for p in group["params"]}
    return {name: index[id(p)] for name, p in model.named_parameters()}


@pytest.mark.parametrize("stages", [1, 3])
def test_every_parameter_is_in_exactly_one_of_13_groups(stages: int) -> None:
    model = LightweightOpenPose(num_refinement_stages=stages)
    groups = parameter_groups(model, base_lr=1e-3)
    assert len(groups) == 13
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["lr"] / 1e-3 for g in groups] == pytest.approx([m for m, _ in EXPECTED])
    assert [g["weight_decay"] for g in groups] == [d for _, d in EXPECTED]
    assert all(g["params"] for g in groups)


def test_parameters_land_in_the_reference_groups() -> None:
    model = LightweightOpenPose(num_refinement_stages=1)
    group = _group_of(parameter_groups(model), model)
    expected = {
        "model.0.0.weight": 0,  # first conv
        "model.3.3.weight": 0,  # pointwise
        "model.3.0.weight": 1,  # depthwise
        "model.3.1.weight": 2,
        "model.3.4.bias": 3,
        "cpm.align.0.weight": 4,
        "cpm.conv.0.bias": 5,
        "cpm.trunk.1.0.weight": 6,  # depthwise
        "cpm.trunk.1.2.weight": 4,  # pointwise
        "initial_stage.pafs.1.0.weight": 7,
        "initial_stage.trunk.2.0.bias": 8,
        "refinement_stages.0.trunk.0.initial.0.weight": 9,
        "refinement_stages.0.heatmaps.1.0.bias": 10,
        "refinement_stages.0.trunk.4.trunk.1.1.weight": 11,
        "refinement_stages.0.trunk.4.trunk.1.1.bias": 12,
    }
    assert {name: group[name] for name in expected} == expected


def test_sync_batchnorm_model_keeps_every_parameter_grouped() -> None:
    model = nn.SyncBatchNorm.convert_sync_batchnorm(LightweightOpenPose(num_refinement_stages=1))
    groups = parameter_groups(model)  # type: ignore[arg-type]
    assert isinstance(model.model[0][1], nn.SyncBatchNorm)
    assert len(groups[2]["params"]) == len(groups[3]["params"]) == 23


def test_adam_uses_the_groups_and_the_schedule_decays_at_100_200_260() -> None:
    model = LightweightOpenPose(num_refinement_stages=0)
    optimizer = make_optimizer(model, base_lr=4e-5)
    assert isinstance(optimizer, torch.optim.Adam)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _epoch in range(280):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[99] == pytest.approx(4e-5)
    assert lrs[100] == pytest.approx(4e-5 * 0.333)
    assert lrs[199] == pytest.approx(4e-5 * 0.333)
    assert lrs[200] == pytest.approx(4e-5 * 0.333**2)
    assert lrs[260] == pytest.approx(4e-5 * 0.333**3)
    assert lrs[279] == pytest.approx(4e-5 * 0.333**3)


def test_scheduler_state_round_trips_through_a_weights_only_load() -> None:
    model = LightweightOpenPose(num_refinement_stages=0)
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer)
    for _ in range(150):
        optimizer.step()
        scheduler.step()
    plain = scheduler_state_to_plain(scheduler.state_dict())
    assert type(plain["milestones"]) is dict
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh_optimizer = make_optimizer(LightweightOpenPose(num_refinement_stages=0))
    fresh_optimizer.load_state_dict(optimizer.state_dict())  # resume restores both, as the trainer does
    fresh = make_scheduler(fresh_optimizer)
    fresh.load_state_dict(scheduler_state_from_plain(loaded))
    assert fresh.last_epoch == 150
    assert fresh.get_last_lr()[0] == pytest.approx(4e-5 * 0.333)
    for _ in range(60):
        fresh_optimizer.step()
        fresh.step()
    assert fresh.get_last_lr()[0] == pytest.approx(4e-5 * 0.333**2)
