"""DDP: `torchrun --standalone --nproc_per_node=2` on CPU (gloo) trains TinyDataset; rank 0 alone writes checkpoints
and metrics, and the step uses the mean of both ranks' gradients (and the logged loss is the mean of both ranks')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightpose.training.loss import loss_names
from test_training_trainer import (
    TinyDataset,
    first_step_reference,
    max_param_difference,
    read_metrics,
    sampler_order,
    tiny_config,
)

pytest.importorskip("torch.distributed.run")


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_cpu_processes_average_gradients(tmp_path: Path) -> None:
    script = Path(__file__).with_name("test_training_trainer.py")
    settings = {"batch_size": 4, "max_iterations": 2, "checkpoint_after": 1, "dataset": {"length": 8}}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*command, str(script), json.dumps(settings)], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    folder = tmp_path / "default_checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint_iter_1.pth",
        "checkpoint_iter_2.pth",
        "metrics.jsonl",
    ]
    records = read_metrics(folder)
    assert [r["iter"] for r in records] == [1, 2]  # one writer
    first = torch.load(folder / "checkpoint_iter_1.pth", weights_only=True)
    assert first["world_size"] == 2 and first["iter"] == 1

    dataset = TinyDataset(length=8)
    config = tiny_config(batch_size=4)
    rank_batches = [sampler_order(dataset, 2, rank)[:2] for rank in (0, 1)]
    averaged = first_step_reference(config, dataset, rank_batches)
    rank0_only = first_step_reference(config, dataset, rank_batches[:1])
    assert max_param_difference(first["state_dict"], averaged["params"]) < 1e-7
    assert max_param_difference(first["state_dict"], rank0_only["params"]) > 1e-6
    assert [records[0][n] for n in loss_names(2)] == pytest.approx(averaged["losses"].tolist(), rel=1e-5)
