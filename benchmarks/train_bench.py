"""Training speed on this machine's CPU: the data pipeline per worker and the training iteration.

Not a test. Run from the repository root (a couple of minutes on 2 cores):

    .venv/bin/python benchmarks/train_bench.py [--threads N] [--samples 40] [--iterations 3]

Data pipeline: CocoKeypointsDataset at 368x368 (the reference augmentations and target maps) over
../shared/data/people with labels prepared from its person_keypoints.json, or over generated stick-figure images
when that folder is absent; per-stage seconds per sample in one process (= one DataLoader worker).
Training: the Trainer loop (1 refinement stage, forward + backward + Adam step) on precomputed 368x368 samples, timed
from the per-iteration timestamps in metrics.jsonl after one warm-up iteration, beside a forward-only baseline
(no gradients) measured in the same run. The machine may be shared: compare numbers within one run.
With glibc's default malloc, large CPU batches spend much of their time in page faults (big buffers are mmapped
and unmapped every step); MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 shows the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lightpose.model import LightweightOpenPose
from lightpose.training.dataset import CocoKeypointsDataset
from lightpose.training.labels import prepare_coco_labels
from lightpose.training.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", ROOT.parent / "shared"))
PEOPLE = SHARED / "data" / "people"
INPUT_SIZE = 368


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def make_dataset(scratch: Path) -> tuple[CocoKeypointsDataset, str]:
    """The people photos with their labels, or generated stick figures (tests/stick_people.py) when absent."""
    if (PEOPLE / "person_keypoints.json").is_file():
        labels = prepare_coco_labels(PEOPLE / "person_keypoints.json", net_input_size=INPUT_SIZE)
        source = f"{PEOPLE} ({len(labels)} samples)"
        return CocoKeypointsDataset(labels, PEOPLE, input_size=INPUT_SIZE), source
    sys.path.insert(0, str(ROOT / "tests"))
    from stick_people import make_stick_dataset

    labels_path, images = make_stick_dataset(scratch, num_images=10, size=(480, 640), people=3)
    labels = prepare_coco_labels(labels_path, net_input_size=INPUT_SIZE)
    return CocoKeypointsDataset(labels, images, input_size=INPUT_SIZE), f"generated stick figures ({len(labels)})"


def time_pipeline(dataset: CocoKeypointsDataset, samples: int) -> dict[str, float]:
    """Mean seconds per sample of each stage: read (image + crowd mask), augment, targets."""
    totals = {"read": 0.0, "augment": 0.0, "targets": 0.0}
    for n in range(samples):
        index = n % len(dataset)
        rng = np.random.default_rng([dataset.seed, n // len(dataset), index])
        start = time.perf_counter()
        sample = dataset.raw_sample(index)
        read = time.perf_counter()
        for transform in dataset.transforms:
            sample = transform(sample, rng)
        augmented = time.perf_counter()
        dataset.make_targets(sample)
        done = time.perf_counter()
        totals["read"] += read - start
        totals["augment"] += augmented - read
        totals["targets"] += done - augmented
    return {name: total / samples for name, total in totals.items()}


class RepeatedSample(Dataset):
    """`length` copies of one precomputed training sample: training timings without the data pipeline."""

    def __init__(self, sample: dict[str, np.ndarray], length: int) -> None:
        self.sample, self.length = sample, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.sample


def time_training(sample: dict[str, np.ndarray], batch_size: int, batches_per_iter: int, iterations: int) -> float:
    """Mean seconds per Trainer iteration, from metrics.jsonl timestamps, after one warm-up iteration."""
    dataset = RepeatedSample(sample, batch_size * batches_per_iter * (iterations + 1))
    config = TrainConfig(
        batch_size=batch_size,
        batches_per_iter=batches_per_iter,
        max_iterations=iterations + 1,
        num_workers=0,
        log_after=1,
        checkpoint_after=10_000,
        progress=False,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as folder, working_directory(Path(folder)):
        Trainer(config, dataset).run()
        lines = (config.checkpoints_dir / "metrics.jsonl").read_text().splitlines()
    stamps = [json.loads(line)["time"] for line in lines]
    return (stamps[-1] - stamps[0]) / iterations


def time_forward(sample: dict[str, np.ndarray], batch_size: int, repeat: int) -> float:
    """Mean seconds of one no-grad forward pass at `batch_size` (eval mode), after one warm-up."""
    model = LightweightOpenPose(num_refinement_stages=1).eval()
    batch = torch.from_numpy(np.stack([sample["image"]] * batch_size))
    with torch.inference_mode():
        model(batch)
        start = time.perf_counter()
        for _ in range(repeat):
            model(batch)
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--samples", type=int, default=40, help="data pipeline samples to time (default 40)")
    parser.add_argument("--iterations", type=int, default=3, help="timed training iterations per row (default 3)")
    args = parser.parse_args()
    if args.threads < 1 or args.samples < 1 or args.iterations < 1:
        parser.error("--threads, --samples and --iterations must be >= 1")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, OpenCV {cv2.__version__} with 1 thread\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        dataset, source = make_dataset(Path(scratch))
        stages = time_pipeline(dataset, args.samples)
        sample = dataset[0]
    total = sum(stages.values())
    print(f"Data pipeline, one worker, {INPUT_SIZE}x{INPUT_SIZE}, {args.samples} samples of {source}:\n")
    print("| stage | ms / sample |\n|---|---|")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds * 1000:.1f} |")
    print(f"| **total** | **{total * 1000:.1f}** ({1 / total:.1f} samples/s per worker) |\n")

    print(f"Training, {INPUT_SIZE}x{INPUT_SIZE}, 1 refinement stage, CPU, precomputed samples:\n")
    print("| step | batch x batches-per-iter | s / iteration | iterations/s | samples/s |\n|---|---|---|---|---|")
    forward = time_forward(sample, 8, args.iterations)
    print(f"| forward only, no grad (baseline) | 8 x 1 | {forward:.2f} | {1 / forward:.3f} | {8 / forward:.1f} |")
    for batch_size, batches_per_iter in ((8, 1), (4, 2), (8, 2)):
        seconds = time_training(sample, batch_size, batches_per_iter, args.iterations)
        samples = batch_size * batches_per_iter
        print(
            f"| forward + backward + Adam | {batch_size} x {batches_per_iter} | {seconds:.2f} | {1 / seconds:.3f} "
            f"| {samples / seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
