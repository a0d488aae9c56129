"""The training loss: masked L2 / 2 / batch on every stage's heatmaps and PAFs, and the non-finite check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightpose.errors import NonFiniteLossError
from lightpose.training.loss import check_finite, loss_names, masked_l2, stage_losses


def _maps(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def test_masked_l2_matches_the_formula_element_by_element() -> None:
    rng = np.random.default_rng(0)
    prediction, target = _maps(rng, (3, 2, 4, 5)), _maps(rng, (3, 2, 4, 5))
    mask = torch.from_numpy((rng.random((3, 2, 4, 5)) > 0.3).astype(np.float32))
    expected = 0.0
    for index in np.ndindex(3, 2, 4, 5):
        expected += float(((prediction[index] - target[index]) * mask[index]) ** 2)
    assert masked_l2(prediction, target, mask).item() == pytest.approx(expected / 2 / 3, rel=1e-6)


def test_masked_out_cells_do_not_count_and_the_loss_is_a_per_sample_mean() -> None:
    rng = np.random.default_rng(1)
    prediction, target = _maps(rng, (2, 19, 6, 6)), _maps(rng, (2, 19, 6, 6))
    mask = torch.ones_like(target)
    mask[:, :, :3] = 0
    changed = prediction.clone()
    changed[:, :, :3] += 100.0
    assert masked_l2(changed, target, mask).item() == pytest.approx(masked_l2(prediction, target, mask).item())
    doubled = masked_l2(prediction.repeat(2, 1, 1, 1), target.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1, 1))
    assert doubled.item() == pytest.approx(masked_l2(prediction, target, mask).item(), rel=1e-6)


def test_gradient_is_masked_difference_over_batch() -> None:
    rng = np.random.default_rng(2)
    prediction = _maps(rng, (4, 3, 5, 5)).requires_grad_()
    target = _maps(rng, (4, 3, 5, 5))
    mask = torch.from_numpy((rng.random((4, 3, 5, 5)) > 0.5).astype(np.float32))
    masked_l2(prediction, target, mask).backward()
    assert prediction.grad is not None
    torch.testing.assert_close(prediction.grad, (prediction.detach() - target) * mask / 4)


def test_stage_losses_cover_every_stage_in_named_order() -> None:
    rng = np.random.default_rng(3)
    keypoint_maps, paf_maps = _maps(rng, (2, 19, 4, 4)), _maps(rng, (2, 38, 4, 4))
    keypoint_mask, paf_mask = torch.ones(2, 19, 4, 4), torch.ones(2, 38, 4, 4)
    outputs = [
        _maps(rng, (2, 19, 4, 4)),
        _maps(rng, (2, 38, 4, 4)),
        _maps(rng, (2, 19, 4, 4)),
        _maps(rng, (2, 38, 4, 4)),
    ]
    losses = stage_losses(outputs, keypoint_maps, keypoint_mask, paf_maps, paf_mask)
    expected = [
        masked_l2(outputs[0], keypoint_maps, keypoint_mask),
        masked_l2(outputs[1], paf_maps, paf_mask),
        masked_l2(outputs[2], keypoint_maps, keypoint_mask),
        masked_l2(outputs[3], paf_maps, paf_mask),
    ]
    torch.testing.assert_close(losses, torch.stack(expected))
    assert loss_names(2) == ["stage1_heatmaps_loss", "stage1_pafs_loss", "stage2_heatmaps_loss", "stage2_pafs_loss"]


def test_bad_shapes_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="same"):
        masked_l2(torch.zeros(1, 19, 4, 4), torch.zeros(1, 19, 4, 5), torch.zeros(1, 19, 4, 4))
    with pytest.raises(ValueError, match="per stage"):
        stage_losses([torch.zeros(1, 19, 4, 4)], *(torch.zeros(1, 19, 4, 4),) * 4)


def test_check_finite_names_iteration_and_loss() -> None:
    check_finite(torch.tensor([1.0, 2.0, 3.0, 4.0]), iteration=7)
    with pytest.raises(NonFiniteLossError, match=r"iteration 7: stage2_pafs_loss = nan") as error:
        check_finite(torch.tensor([1.0, 2.0, 3.0, float("nan")]), iteration=7)
    assert "stage1" not in str(error.value)
    with pytest.raises(NonFiniteLossError, match="stage1_heatmaps_loss = inf"):
        check_finite(torch.tensor([float("inf"), 2.0]), iteration=1)
