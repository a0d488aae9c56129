"""The trainer: checkpoints in the reference layout, metrics, accumulation, exact resume after kill -9, weight
loading (--weights-only, --from-mobilenet), validation hook, non-finite loss, and `lightpose train` errors.

Run as a script (`python tests/test_training_trainer.py '<json>'`) it trains TinyDataset with the given TrainConfig
fields: the subprocess that test_resume_after_kill_9_continues_exactly kills. (Signals, unreadable images and a full
disk: test_training_hardening.py.)
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from lightpose.errors import NonFiniteLossError
from lightpose.model import CheckpointError, LightweightOpenPose, load_reference_state
from lightpose.training.loss import loss_names, stage_losses
from lightpose.training.optim import make_optimizer
from lightpose.training.trainer import ResumableDistributedSampler, TrainConfig, Trainer, build_model

SIZE = 32  # network input side of the synthetic samples: maps are 4 x 4


class TinyDataset(Dataset):
    """Random samples in the CocoKeypointsDataset format, a function of (index, epoch) only.

    With `nan_from_epoch`, every sample of that epoch and later has NaN keypoint maps.
    """

    def __init__(self, length: int = 6, nan_from_epoch: int | None = None) -> None:
        self.length = length
        self.nan_from_epoch = nan_from_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([index, self.epoch])
        side = SIZE // 8
        keypoint_maps = rng.random((19, side, side), dtype=np.float32)
        if self.nan_from_epoch is not None and self.epoch >= self.nan_from_epoch:
            keypoint_maps[:] = np.nan
        return {
            "image": rng.uniform(-0.5, 0.5, (3, SIZE, SIZE)).astype(np.float32),
            "keypoint_maps": keypoint_maps,
            "keypoint_mask": (rng.random((19, side, side)) > 0.2).astype(np.float32),
            "paf_maps": rng.uniform(-1, 1, (38, side, side)).astype(np.float32),
            "paf_mask": np.ones((38, side, side), dtype=np.float32),
        }


def tiny_config(**overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        batch_size=2, num_workers=0, log_after=1, checkpoint_after=2, max_iterations=3, progress=False, device="cpu"
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def first_step_reference(config: TrainConfig, dataset: Dataset, micro_batches: list[list[int]]) -> dict[str, Any]:
    """Weights after one Adam step whose gradient is the mean over `micro_batches` (each its own BN batch)."""
    model = build_model(config)
    optimizer = make_optimizer(model, config.base_lr)
    model.train()
    losses = []
    for indices in micro_batches:
        batch = torch.utils.data.default_collate([dataset[i] for i in indices])
        stage = stage_losses(
            model(batch["image"]), *(batch[k] for k in ("keypoint_maps", "keypoint_mask", "paf_maps", "paf_mask"))
        )
        (stage.sum() / len(micro_batches)).backward()
        losses.append(stage.detach())
    optimizer.step()
    return {"params": dict(model.named_parameters()), "losses": torch.stack(losses).mean(0)}


def sampler_order(dataset: Dataset, world_size: int, rank: int, seed: int = 0, epoch: int = 0) -> list[int]:
    sampler = ResumableDistributedSampler(dataset, num_replicas=world_size, rank=rank, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def max_param_difference(state: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> float:
    return max((state[name] - value.detach()).abs().max().item() for name, value in params.items())


# -- checkpoints and metrics ------------------------------------------------------------------------------------
def test_run_writes_reference_checkpoints_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(experiment_name="exp", max_iterations=5, checkpoint_after=2)
    last = Trainer(config, TinyDataset(length=4)).run()
    folder = tmp_path / "exp_checkpoints"
    assert last == Path("exp_checkpoints/checkpoint_iter_5.pth")
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint_iter_2.pth",
        "checkpoint_iter_4.pth",
        "checkpoint_iter_5.pth",
        "metrics.jsonl",
    ]
    checkpoint = torch.load(folder / "checkpoint_iter_5.pth", weights_only=True)
    assert {"state_dict", "optimizer", "scheduler", "iter", "current_epoch"} <= set(checkpoint)
    assert checkpoint["iter"] == 5
    assert checkpoint["current_epoch"] == 2  # 2 iterations per epoch: epochs 0, 1 done, 1 iteration into epoch 2
    assert checkpoint["scheduler"]["last_epoch"] == 2
    assert not any(k.startswith("module.") for k in checkpoint["state_dict"])
    model = LightweightOpenPose(num_refinement_stages=1)
    assert load_reference_state(model, checkpoint) == []
    records = read_metrics(folder)
    assert [r["iter"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in records] == [0, 0, 1, 1, 2]
    assert all(r["lr"] == pytest.approx(4e-5) for r in records)
    for record in records:
        stages = [record[name] for name in loss_names(2)]
        assert all(np.isfinite(stages)) and record["loss"] == pytest.approx(sum(stages))


def test_published_layout_loads_in_pose_estimator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightpose.estimator import PoseEstimator
    from lightpose.weights import load_model

    monkeypatch.chdir(tmp_path)
    path = Trainer(tiny_config(max_iterations=1), TinyDataset()).run()
    assert path is not None
    model, _ = load_model(str(tmp_path / path))
    trained = torch.load(tmp_path / path, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    poses = PoseEstimator(model, device="cpu", height=64)(np.full((64, 80, 3), 128, dtype=np.uint8))
    assert isinstance(poses, Sequence)  # the network runs in the estimator (random weights: no poses expected)


def test_gradient_accumulation_averages_micro_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(batch_size=2, batches_per_iter=2, max_iterations=1)
    dataset = TinyDataset(length=4)
    path = Trainer(config, dataset).run()
    assert path is not None
    state = torch.load(path, weights_only=True)["state_dict"]
    order = sampler_order(dataset, 1, 0)
    both = first_step_reference(config, dataset, [order[0:2], order[2:4]])
    first_only = first_step_reference(config, dataset, [order[0:2]])
    assert max_param_difference(state, both["params"]) < 1e-7
    assert max_param_difference(state, first_only["params"]) > 1e-6
    record = read_metrics(tmp_path / "default_checkpoints")[0]
    assert [record[n] for n in loss_names(2)] == pytest.approx(both["losses"].tolist(), rel=1e-5)


def test_channels_last_and_single_process_sync_bn_train_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    states, first_losses = {}, {}
    for name, options in {"plain": {}, "channels_last": {"channels_last": True}, "sync_bn": {"sync_bn": True}}.items():
        path = Trainer(tiny_config(experiment_name=name, max_iterations=2, **options), TinyDataset()).run()
        states[name] = torch.load(str(path), weights_only=True)["state_dict"]
        first_losses[name] = [read_metrics(tmp_path / f"{name}_checkpoints")[0][n] for n in loss_names(2)]
    assert states["sync_bn"].keys() == states["plain"].keys()
    assert first_losses["sync_bn"] == first_losses["plain"]
    assert first_losses["channels_last"] == pytest.approx(first_losses["plain"], rel=1e-5)
    for key, value in states["plain"].items():
        assert torch.equal(states["sync_bn"][key], value), key
        assert states["channels_last"][key].is_contiguous()
        if "running_" not in key and "num_batches" not in key:
            # other conv kernels round differently and Adam's first steps (lr x multiplier, up to 8 x 4e-5 each)
            # follow the sign of near-zero gradients (biases before BN): 2 steps of up to ~1.5 x 3.2e-4 each way
            torch.testing.assert_close(states["channels_last"][key], value, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="--amp bf16 needs a CUDA device"):
        Trainer(tiny_config(amp="bf16"), TinyDataset())


# -- resume ----------------------------------------------------------------------------------------------------
def _script(settings: dict[str, Any], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(settings)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_resume_after_kill_9_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    killed_dir.mkdir()
    straight_dir.mkdir()
    settings = {"num_workers": 1, "checkpoint_after": 2, "max_iterations": 1000}
    process = _script(settings, killed_dir)
    folder = killed_dir / "default_checkpoints"
    deadline = time.monotonic() + 60
    while not (folder / "checkpoint_iter_2.pth").exists():
        assert process.poll() is None, process.communicate()[0].decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = max(int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("checkpoint_iter_*.pth"))
    total = saved + 4  # 3 iterations per epoch: the resumed part crosses an epoch boundary
    for path in folder.glob("checkpoint_iter_*.pth"):  # a kill inside a save leaves at most a temp file
        assert torch.load(path, weights_only=True)["iter"] == int(path.stem.rsplit("_", 1)[1])

    monkeypatch.chdir(killed_dir)
    resumed = tiny_config(
        num_workers=1, max_iterations=total, checkpoint_path=str(folder / f"checkpoint_iter_{saved}.pth")
    )
    Trainer(resumed, TinyDataset()).run()
    monkeypatch.chdir(straight_dir)
    Trainer(tiny_config(num_workers=1, max_iterations=total), TinyDataset()).run()

    name = f"default_checkpoints/checkpoint_iter_{total}.pth"
    after_resume = torch.load(killed_dir / name, weights_only=True)
    straight = torch.load(straight_dir / name, weights_only=True)
    for key, value in straight["state_dict"].items():
        assert torch.equal(after_resume["state_dict"][key], value), key
    assert after_resume["current_epoch"] == straight["current_epoch"]
    resumed_records = read_metrics(folder)
    straight_records = read_metrics(straight_dir / "default_checkpoints")
    assert [r["iter"] for r in resumed_records] == list(range(1, total + 1))  # the killed run's extra lines dropped
    drop_time = [{k: v for k, v in r.items() if k != "time"} for r in resumed_records]
    assert drop_time == [{k: v for k, v in r.items() if k != "time"} for r in straight_records]


def test_resume_needs_training_state_and_a_fitting_optimizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bare = tmp_path / "bare.pth"
    torch.save(LightweightOpenPose(num_refinement_stages=1).state_dict(), bare)
    with pytest.raises(CheckpointError, match="--weights-only"):
        Trainer(tiny_config(checkpoint_path=str(bare)), TinyDataset())
    path = Trainer(tiny_config(max_iterations=1, num_refinement_stages=0), TinyDataset()).run()
    with pytest.raises(CheckpointError, match="missing key"):
        Trainer(tiny_config(checkpoint_path=str(path), num_refinement_stages=1), TinyDataset())


# -- weight loading --------------------------------------------------------------------------------------------
def test_weights_only_keeps_new_stages_and_lists_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    path = Trainer(tiny_config(max_iterations=2), TinyDataset()).run()
    source = torch.load(str(path), weights_only=True)["state_dict"]
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(
            tiny_config(checkpoint_path=str(path), weights_only=True, num_refinement_stages=3), TinyDataset()
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "refinement_stages.1.*" in warnings[0] and "refinement_stages.2.*" in warnings[0]
    assert "num_batches_tracked" not in warnings[0]
    state = trainer.module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.items())
    fresh = build_model(trainer.config).state_dict()
    assert torch.equal(state["refinement_stages.2.pafs.1.0.weight"], fresh["refinement_stages.2.pafs.1.0.weight"])
    assert trainer.iteration == 0 and trainer.epoch == 0


def test_weights_only_rejects_another_architecture(tmp_path: Path) -> None:
    wrong = LightweightOpenPose(num_refinement_stages=1, num_channels=64)
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": wrong.state_dict()}, path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        Trainer(tiny_config(checkpoint_path=str(path), weights_only=True), TinyDataset())


def test_from_mobilenet_loads_every_backbone_tensor(mobilenet_weights: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = torch.load(mobilenet_weights, weights_only=True)["state_dict"]
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(tiny_config(checkpoint_path=str(mobilenet_weights), from_mobilenet=True), TinyDataset())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    state = trainer.module.state_dict()
    backbone = [k for k in state if k.startswith("model.") and not k.endswith("num_batches_tracked")]
    assert len(backbone) == 115
    for key in backbone:
        assert torch.equal(state[key], source["module." + key]), key
    fresh = build_model(trainer.config).state_dict()
    assert torch.equal(state["cpm.align.0.weight"], fresh["cpm.align.0.weight"])


def test_from_mobilenet_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "not_mobilenet.pth"
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(1000, 1024)}}, path)
    with pytest.raises(CheckpointError, match="model.0.0.weight missing"):
        Trainer(tiny_config(checkpoint_path=str(path), from_mobilenet=True), TinyDataset())


# -- validation, non-finite loss -------------------------------------------------------------------------------
def test_validation_runs_every_val_after_on_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightpose.training.evaluate as evaluate_module
    from lightpose.estimator import PoseEstimator

    calls = []

    def fake_evaluate_coco(estimator: PoseEstimator, labels: str, images: str, **kwargs: Any) -> dict[str, float]:
        maps = estimator.run_network(np.zeros((1, 3, 32, 32), np.float32))  # the estimator runs the copy
        calls.append((labels, images, trainer.module.training, kwargs.get("subset"), len(maps)))
        return {"AP": 0.25 + len(calls), "AR": 0.5}

    monkeypatch.setattr(evaluate_module, "evaluate_coco", fake_evaluate_coco)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "val.json").write_text("{}")
    (tmp_path / "val_images").mkdir()
    validation = {"val_labels": "val.json", "val_images_folder": "val_images", "val_subset": 3}
    config = tiny_config(max_iterations=5, val_after=2, **validation)
    trainer = Trainer(config, TinyDataset())
    trainer.run()
    assert [c[:4] for c in calls] == [("val.json", "val_images", True, 3)] * 2  # the training module untouched
    assert trainer.module.training
    val = [r for r in read_metrics(tmp_path / "default_checkpoints") if "val" in r]
    assert [(r["iter"], r["val"]["AP"]) for r in val] == [(2, 1.25), (4, 2.25)]


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(max_iterations=10, checkpoint_after=2)
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: stage1_heatmaps_loss = nan.*stage2_heatmaps_loss"):
        Trainer(config, TinyDataset(length=4, nan_from_epoch=1)).run()
    folder = tmp_path / "default_checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint_iter_2.pth", "metrics.jsonl"]
    state = torch.load(folder / "checkpoint_iter_2.pth", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert [r["iter"] for r in read_metrics(folder)] == [1, 2]


# -- the CLI ---------------------------------------------------------------------------------------------------
def _train_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from lightpose.cli.main import main

    code = main(["train", *args])
    return code, capsys.readouterr().err


@pytest.fixture()
def prepared_people(people_dir: Path, tmp_path: Path) -> list[str]:
    from lightpose.training.labels import prepare_coco_labels, save_prepared_labels

    labels = tmp_path / "prepared.json"
    save_prepared_labels(prepare_coco_labels(people_dir / "person_keypoints.json"), labels)
    return ["--prepared-train-labels", str(labels), "--train-images-folder", str(people_dir)]


def test_cli_trains_on_real_images_from_mobilenet(
    prepared_people: list[str], mobilenet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    options = ["--batch-size", "2", "--num-workers", "0", "--max-iterations", "2", "--log-after", "1"]
    options += ["--input-size", "64", "--device", "cpu", "--no-progress", "--experiment-name", "step1"]
    code, err = _train_cli(
        [*prepared_people, *options, "--checkpoint-path", str(mobilenet_weights), "--from-mobilenet"], capsys
    )
    assert code == 0, err
    checkpoint = torch.load(tmp_path / "step1_checkpoints" / "checkpoint_iter_2.pth", weights_only=True)
    assert checkpoint["iter"] == 2
    assert [r["iter"] for r in read_metrics(tmp_path / "step1_checkpoints")] == [1, 2]


def test_cli_bad_inputs_are_one_line_errors(
    prepared_people: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--no-progress"]
    missing_labels = ["--prepared-train-labels", "nope.json", "--train-images-folder", str(tmp_path)]
    code, err = _train_cli([*missing_labels, *base], capsys)
    assert code == 2 and "nope.json" in err and len(err.strip().splitlines()) == 1

    code, err = _train_cli(
        [*prepared_people, *base, "--checkpoint-path", "mobilenet.pth.tar", "--from-mobilenet"], capsys
    )
    assert code == 2 and "mobilenet.pth.tar" in err and len(err.strip().splitlines()) == 1

    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": LightweightOpenPose(num_channels=64).state_dict()}, wrong)
    code, err = _train_cli([*prepared_people, *base, "--checkpoint-path", str(wrong), "--weights-only"], capsys)
    assert code == 2 and "wrong.pth" in err and "wrong shape" in err and len(err.strip().splitlines()) == 1

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    code, err = _train_cli([*prepared_people, *base, "--checkpoint-path", str(corrupt)], capsys)
    assert code == 2 and "corrupt.pth is not a" in err
    assert len(err.strip().splitlines()) == 1

    code, err = _train_cli([*prepared_people, *base, "--weights-only"], capsys)
    assert code == 2 and "need --checkpoint" in err
    assert not (tmp_path / "default_checkpoints").exists()


if __name__ == "__main__":
    torch.set_num_threads(1)
    Trainer(tiny_config(**json.loads(sys.argv[1])), TinyDataset()).run()
