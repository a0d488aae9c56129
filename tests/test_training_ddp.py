"""DDP, launched as `lightpose train --help` says: `torchrun --nproc_per_node=2 -m lightpose train` on CPU (gloo)
over stick-figure images. Rank 0 alone writes checkpoints and metrics; the step uses the mean of both
ranks' gradients, and the logged loss is the mean of both ranks' losses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightpose.training.dataset import CocoKeypointsDataset
from lightpose.training.loss import loss_names
from lightpose.training.trainer import TrainConfig
from stick_people import make_prepared_stick_dataset
from test_training_trainer import first_step_reference, max_param_difference, sampler_order

SIZE = 64
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_torchrun_lightpose_train_averages_gradients_over_two_processes(tmp_path: Path) -> None:
    labels, images = make_prepared_stick_dataset(tmp_path / "data", num_images=4, size=(SIZE, SIZE))
    options = ["--prepared-train-labels", str(labels), "--train-images-folder", str(images)]
    options += ["--input-size", str(SIZE), "--batch-size", "4", "--max-iterations", "2", "--checkpoint-after", "1"]
    options += ["--log-after", "1", "--num-workers", "0", "--device", "cpu", "--no-progress"]
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "lightpose", "train", *options]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    folder = tmp_path / "default_checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint_iter_1.pth",
        "checkpoint_iter_2.pth",
        "metrics.jsonl",
    ]
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [1, 2]  # one writer
    first = torch.load(folder / "checkpoint_iter_1.pth", weights_only=True)
    assert first["world_size"] == 2 and first["iter"] == 1

    dataset = CocoKeypointsDataset(labels, images, input_size=SIZE)
    assert len(dataset) == 8
    config = TrainConfig(batch_size=4)
    rank_batches = [sampler_order(dataset, 2, rank)[:2] for rank in (0, 1)]
    averaged = first_step_reference(config, dataset, rank_batches)
    rank0_only = first_step_reference(config, dataset, rank_batches[:1])
    assert max_param_difference(first["state_dict"], averaged["params"]) < 1e-7
    assert max_param_difference(first["state_dict"], rank0_only["params"]) > 1e-6
    assert [records[0][n] for n in loss_names(2)] == pytest.approx(averaged["losses"].tolist(), rel=1e-5)
