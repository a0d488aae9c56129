"""The training recipe end to end on a tiny stick-figure COCO dataset (tests/stick_people.py, made by each test):
prepare -> augmented training lowers the loss; overfitting one image raises its COCO AP; ground-truth maps decode
back to the annotated people (DDP: test_training_ddp.py).

Bars were measured over several seeds (see the constants); the runs are seeded, so each test is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightpose.decode import decode_poses
from lightpose.estimator import PoseEstimator
from lightpose.training.dataset import CocoKeypointsDataset
from lightpose.training.evaluate import evaluate_coco
from lightpose.training.labels import prepare_coco_labels
from lightpose.training.trainer import TrainConfig, Trainer
from stick_people import make_stick_dataset

# last-5 / first-5 mean logged loss after 30 iterations at 64x64 was 0.57-0.78 over seeds 0-7
LOSS_RATIO_BAR = 0.9
# AP of one 96x96 image after 40 iterations at lr 1e-3 from scratch was 0.55-1.0 over seeds 0-5 (0 before)
OVERFIT_AP_BAR = 0.3


def train_config(**overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        batch_size=2, num_workers=0, log_after=1, checkpoint_after=10_000, progress=False, device="cpu"
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def logged_losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_augmented_training_lowers_the_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    size = 64
    labels_path, images = make_stick_dataset(tmp_path, num_images=8, size=(size, size), seed=0)
    labels = prepare_coco_labels(labels_path, net_input_size=size)
    assert len(labels) == 16  # two people per image, each a main person once
    dataset = CocoKeypointsDataset(labels, images, input_size=size, seed=0)
    Trainer(train_config(max_iterations=30), dataset).run()

    losses = logged_losses(tmp_path / "default_checkpoints")
    assert len(losses) == 30 and all(np.isfinite(losses))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < LOSS_RATIO_BAR * first, f"loss {first:.1f} -> {last:.1f}"


def test_overfitting_one_image_raises_its_ap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    size = 96
    labels_path, images = make_stick_dataset(tmp_path, num_images=1, size=(size, size), seed=0)
    dataset = CocoKeypointsDataset(prepare_coco_labels(labels_path, net_input_size=size), images, augment=False)
    trainer = Trainer(train_config(max_iterations=40, base_lr=1e-3), dataset)

    def image_ap() -> float:
        trainer.module.eval()
        estimator = PoseEstimator(trainer.module, device="cpu")
        # height = the image height: the network sees exactly the training input
        stats = evaluate_coco(estimator, labels_path, images, height=size, progress=False)
        trainer.module.train()
        return stats["AP"]

    before = image_ap()
    trainer.run()
    after = image_ap()
    assert before < 0.05
    assert after > OVERFIT_AP_BAR, f"AP {before:.3f} -> {after:.3f}"


# -- ground truth -> decoder ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_maps_decode_to_the_annotated_people(tmp_path: Path, seed: int) -> None:
    labels_path, images = make_stick_dataset(tmp_path, num_images=1, size=(256, 368), people=3, seed=seed)
    dataset = CocoKeypointsDataset(prepare_coco_labels(labels_path), images, augment=False)
    item = dataset[0]
    truth = dataset.transformed_sample(0).keypoints  # (3, 18, 3) internal order, input pixels
    assert item["keypoint_maps"].shape == (19, 32, 46)
    assert (truth[..., 2] == 1).all()

    poses = decode_poses(item["keypoint_maps"], item["paf_maps"], upsample=4)
    assert len(poses) == 3
    matched = []
    for pose in poses:
        assert pose.found.all()
        errors = np.linalg.norm(pose.xy[None] - truth[:, :, :2], axis=2)  # (3 people, 18)
        person = int(errors.mean(axis=1).argmin())
        matched.append(person)
        assert errors[person].max() < 4.0, errors[person]
        assert errors[person].mean() < 1.5, errors[person]
    assert sorted(matched) == [0, 1, 2]  # each annotated person decoded once, with all its keypoints
