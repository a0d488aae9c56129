"""The training loop: one process or torch.distributed DDP (torchrun), AMP, gradient accumulation, exact resume.

`Trainer(config, dataset).run()` trains LightweightOpenPose on a dataset whose items are dicts of float32 arrays
image (3, H, W), keypoint_maps / keypoint_mask (K + 1, H/8, W/8), paf_maps / paf_mask (2 L, H/8, W/8), optionally
with `set_epoch(epoch)` for per-epoch augmentation. The network's heads and the checkpoints' stored `skeleton`
(plain data, `Skeleton.to_dict()`) come from the dataset's `skeleton` attribute (default: the published layout).
Under torchrun each process trains on its DistributedSampler share of every batch; rank 0 alone logs, validates
and writes `<experiment_name>_checkpoints/`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightpose.errors import CheckpointError, DeviceError, UnreadableSamplesError, UsageError
from lightpose.io import atomic_write, clean_stale_temps
from lightpose.model import LightweightOpenPose, load_reference_state
from lightpose.progress import Progress
from lightpose.skeleton import OPENPOSE_COCO, Skeleton
from lightpose.training import checkpoints
from lightpose.training.loss import check_finite, loss_names, stage_losses
from lightpose.training.optim import (
    BASE_LR,
    EPOCHS,
    make_optimizer,
    make_scheduler,
    scheduler_state_from_plain,
    scheduler_state_to_plain,
)

logger = logging.getLogger(__name__)

TARGET_KEYS = ("keypoint_maps", "keypoint_mask", "paf_maps", "paf_mask")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
RESUME_KEYS = ("optimizer", "scheduler", "iter", "current_epoch")


def _setting(default: Any, help: str, **argparse_options: Any) -> Any:
    """A TrainConfig field whose metadata `lightpose train` turns into its option (help, flags, choices). The help
    of a bool field describes its switch: --name sets a False default, flags=("--no-name",) clears a True one."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class TrainConfig:
    """Run settings; defaults are the reference recipe's (the published repository's train.py). `lightpose train`
    makes one option per field (--field-name, or the metadata's `flags`) with the metadata's help and the
    field's default.

    `batch_size` is the global batch of one optimiser step's micro-batch, split evenly over torchrun processes;
    one iteration = one optimiser step = `batches_per_iter` micro-batches.
    """

    experiment_name: str = _setting("default", "checkpoints and metrics.jsonl go to <name>_checkpoints/")
    num_refinement_stages: int = _setting(1, "refinement stages after the initial stage")
    batch_size: int = _setting(80, "global batch per step, split over the torchrun processes")
    batches_per_iter: int = _setting(1, "micro-batches accumulated per optimiser step")
    base_lr: float = _setting(BASE_LR, "Adam learning rate of the base parameter groups")
    epochs: int = _setting(EPOCHS, "stop after this many epochs")
    max_iterations: int | None = _setting(None, "stop after this many iterations")
    num_workers: int = _setting(8, "DataLoader worker processes per training process")
    checkpoint_after: int = _setting(5000, "write a checkpoint every this many iterations")
    val_after: int = _setting(5000, "validate every this many iterations (with --val-labels)")
    log_after: int = _setting(100, "log the mean losses to metrics.jsonl every this many iterations")
    checkpoint_path: str | None = _setting(
        None,
        "checkpoint to resume from (or weights to start from: --weights-only, --from-mobilenet)",
        flags=("--checkpoint", "--checkpoint-path"),
    )
    from_mobilenet: bool = _setting(False, "--checkpoint is ImageNet MobileNet v1 weights for the backbone")
    weights_only: bool = _setting(False, "take only the weights of --checkpoint (no optimiser state, iteration 0)")
    val_labels: str | None = _setting(None, "COCO keypoints JSON for validation AP (with --val-images-folder)")
    val_images_folder: str | None = _setting(None, "images of --val-labels")
    val_subset: int | None = _setting(None, "validate on this many images (the reference's subset: 250)")
    device: str | None = _setting(None, "cpu, cuda or cuda:N (default: cuda if available)")
    amp: str | None = _setting(None, "mixed precision on CUDA (fp16 uses a GradScaler)", choices=("bf16", "fp16"))
    channels_last: bool = _setting(False, "channels-last memory format")
    sync_bn: bool = _setting(False, "SyncBatchNorm across DDP processes (CUDA)")
    seed: int = _setting(0, "shuffling, augmentation and initialisation seed")
    max_unreadable_samples: int = _setting(
        100,
        "unreadable samples (missing, empty or corrupt images) are skipped with a warning and counted in "
        "metrics.jsonl; past this many different ones in a run, training stops with a checkpoint",
    )
    progress: bool = _setting(True, "hide the progress bar", flags=("--no-progress",))

    @property
    def checkpoints_dir(self) -> Path:
        return Path(f"{self.experiment_name}_checkpoints")

    def check(self) -> None:
        """Raise UsageError naming the first setting that is out of range or inconsistent."""
        positive = ("batch_size", "batches_per_iter", "epochs", "checkpoint_after", "val_after", "log_after")
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        non_negative = ("num_refinement_stages", "num_workers", "max_unreadable_samples")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.max_iterations is not None and self.max_iterations < 1:
            raise UsageError(f"--max-iterations must be >= 1, got {self.max_iterations}")
        if not self.base_lr > 0:
            raise UsageError(f"--base-lr must be > 0, got {self.base_lr}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise UsageError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {self.amp!r}")
        if (self.weights_only or self.from_mobilenet) and not self.checkpoint_path:
            raise UsageError("--weights-only and --from-mobilenet need --checkpoint (the file to load)")
        if self.val_subset is not None and self.val_subset < 1:
            raise UsageError(f"--val-subset must be >= 1, got {self.val_subset}")
        if (self.val_labels is None) != (self.val_images_folder is None):
            raise UsageError("validation needs both --val-labels and --val-images-folder")


@dataclass
class Runtime:
    """Where this process runs: its rank among `world_size` torchrun processes and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str | None, timeout: timedelta = timedelta(hours=2)) -> Runtime:
    """Read torchrun's environment; join the process group (NCCL on CUDA, gloo on CPU) when WORLD_SIZE > 1.

    The long timeout lets rank 0 validate while the other ranks wait at their next collective.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} asks for CUDA but torch sees no GPU: use --device cpu")
        if world_size > 1:
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", timeout=timeout)
    return Runtime(rank, local_rank, world_size, resolved)


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler that can start an epoch part-way: `set_start(n)` skips this rank's first n indices."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


def build_model(config: TrainConfig, skeleton: Skeleton = OPENPOSE_COCO) -> LightweightOpenPose:
    """The network with heads for `skeleton` and its seeded initialisation (identical on every rank)."""
    torch.manual_seed(config.seed)
    return LightweightOpenPose(num_refinement_stages=config.num_refinement_stages, skeleton=skeleton)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Builds model, optimiser, scheduler and sampler from a TrainConfig, loads --checkpoint-path, and trains."""

    def __init__(self, config: TrainConfig, dataset: Dataset, runtime: Runtime | None = None) -> None:
        config.check()
        self.config = config
        self.dataset = dataset
        self.runtime = runtime or setup_runtime(config.device)
        device = self.runtime.device
        if config.amp is not None and device.type != "cuda":
            raise UsageError(f"--amp {config.amp} needs a CUDA device, got {device}")
        if config.sync_bn and self.runtime.distributed and device.type != "cuda":
            raise UsageError("--sync-bn needs CUDA devices (SyncBatchNorm does not run on CPU)")
        if config.batch_size % self.runtime.world_size:
            raise UsageError(
                f"--batch-size {config.batch_size} must be a multiple of the number of processes "
                f"({self.runtime.world_size})"
            )
        self.local_batch = config.batch_size // self.runtime.world_size
        self.sampler = ResumableDistributedSampler(
            dataset, num_replicas=self.runtime.world_size, rank=self.runtime.rank, seed=config.seed
        )
        self.batches_per_epoch = (self.sampler.num_samples // self.local_batch) // config.batches_per_iter
        self.batches_per_epoch *= config.batches_per_iter
        if self.batches_per_epoch == 0:
            raise UsageError(
                f"the dataset has {len(self.sampler.dataset)} samples: too few for one iteration of "  # type: ignore[arg-type]
                f"--batch-size {config.batch_size} x --batches-per-iter {config.batches_per_iter}"
            )

        seed_everything(config.seed)
        self.skeleton: Skeleton = getattr(dataset, "skeleton", None) or OPENPOSE_COCO
        self.module = build_model(config, self.skeleton)
        checkpoint = checkpoints.read_checkpoint(config.checkpoint_path) if config.checkpoint_path else None
        resume = checkpoint is not None and not config.weights_only and not config.from_mobilenet
        source = str(config.checkpoint_path)
        stored = checkpoints.stored_skeleton(checkpoint, source) if checkpoint is not None else self.skeleton
        if resume:
            checkpoints.check_skeleton(stored, self.skeleton, source)
        if checkpoint is not None and config.from_mobilenet:
            count = checkpoints.load_from_mobilenet(self.module, checkpoint, source)
            self._log(f"backbone initialised from MobileNet weights {source} ({count} tensors)")
        elif checkpoint is not None and config.weights_only and stored != self.skeleton:
            count = checkpoints.load_features(self.module, checkpoint, source)
            self._log(
                f"backbone and Cpm initialised from {source} (skeleton {stored.name!r}, {count} tensors); the "
                f"stages for skeleton {self.skeleton.name!r} start from their initialisation"
            )
        elif checkpoint is not None and config.weights_only:
            missing = checkpoints.load_weights(self.module, checkpoint, source)
            if missing and self.runtime.is_main:
                logger.warning("%s: %s", source, checkpoints.describe_missing(missing))
        elif checkpoint is not None:
            checkpoints.check_resumable(checkpoint, source, RESUME_KEYS)
            load_reference_state(self.module, checkpoint, source)

        if config.sync_bn:
            nn.SyncBatchNorm.convert_sync_batchnorm(self.module)  # converts the children in place
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.module.to(device)
        if config.channels_last:
            self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = make_optimizer(self.module, config.base_lr)
        self.scheduler = make_scheduler(self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16")
        self.model: nn.Module = self.module
        if self.runtime.distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=device_ids)

        self.iteration = 0
        self.epoch = 0
        self.position = 0  # micro-batches of this epoch already trained (at the last completed iteration)
        if checkpoint is not None and resume:
            self._resume(checkpoint, source)
        self.last_saved = self.iteration
        self.signal_received: int | None = None  # SIGINT or SIGTERM, when this process received one
        self.stop_requested = False  # set when any process received one (agreed through the loss all-reduce)
        self.unreadable: set[int] = set()  # indices of unreadable samples this process met in this run
        self.unreadable_count = 0  # different unreadable samples met by all processes in this run
        self.skipped_window = 0  # sample reads replaced since the last log line, all processes
        self.window = torch.zeros(2 * (config.num_refinement_stages + 1), dtype=torch.float64)  # summed stage losses
        self.window_batches = 0
        self.metrics_path = config.checkpoints_dir / "metrics.jsonl"
        if self.runtime.is_main:
            clean_stale_temps(config.checkpoints_dir)  # temporary files of a killed checkpoint write
            _keep_metrics_up_to(self.metrics_path, self.iteration)
        self.evaluate = _validation_function(config) if config.val_labels else None

    # -- resume -----------------------------------------------------------------------------------------
    def _resume(self, checkpoint: Mapping[str, Any], source: str) -> None:
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(scheduler_state_from_plain(checkpoint["scheduler"]))
        except (ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(
                f"{source}: its optimiser/scheduler state does not fit this model ({error}); use --weights-only"
            ) from error
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.iteration = int(checkpoint["iter"])
        self.epoch = int(checkpoint["current_epoch"])
        samples = int(checkpoint.get("epoch_position", 0))
        self.position = min(samples // self.config.batch_size, self.batches_per_epoch)
        self.position -= self.position % self.config.batches_per_iter
        same = all(checkpoint.get(k) == getattr(self.config, k) for k in ("seed", "batch_size", "batches_per_iter"))
        if not same or checkpoint.get("world_size") != self.runtime.world_size:
            logger.warning("%s: seed, batch size or process count changed; batches will not repeat exactly", source)
        if "rng" in checkpoint:
            checkpoints.restore_rng_state(checkpoint["rng"])
        self._log(f"resumed from {source} at iteration {self.iteration}, epoch {self.epoch}")

    def _checkpoint_dict(self) -> dict[str, Any]:
        return {
            "state_dict": checkpoints.cpu_state_dict(self.module),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler_state_to_plain(self.scheduler.state_dict()),
            "iter": self.iteration,
            "current_epoch": self.epoch,
            "epoch_position": self.position * self.config.batch_size,
            "rng": checkpoints.capture_rng_state(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "num_refinement_stages": self.config.num_refinement_stages,
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "batches_per_iter": self.config.batches_per_iter,
            "world_size": self.runtime.world_size,
            "skeleton": self.skeleton.to_dict(),
        }

    def save(self) -> Path | None:
        """Write checkpoint_iter_<iteration>.pth (rank 0 only; atomic)."""
        self.last_saved = self.iteration
        if not self.runtime.is_main:
            return None
        path = checkpoints.checkpoint_path(self.config.checkpoints_dir, self.iteration)
        return checkpoints.write_checkpoint(path, self._checkpoint_dict())

    # -- the loop -------------------------------------------------------------------------------------------
    @property
    def interrupted_by(self) -> int | None:
        """The signal that stopped the run (SIGINT or SIGTERM; SIGTERM when only another process received one)."""
        if not self.stop_requested:
            return None
        return self.signal_received or signal.SIGTERM

    def run(self) -> Path | None:
        """Train until --epochs or --max-iterations, or SIGINT/SIGTERM (see `interrupted_by`); returns the last
        checkpoint written. A failure after unsaved iterations writes a checkpoint before it propagates."""
        import cv2

        cv2.setNumThreads(0)
        cv2.ocl.setUseOpenCL(False)
        config = self.config
        total = config.epochs * self.batches_per_epoch // config.batches_per_iter
        if config.max_iterations is not None:
            total = min(total, config.max_iterations)
        show = config.progress and self.runtime.is_main
        bar = Progress(total, unit="iter", initial=min(self.iteration, total), enabled=show)
        previous_handlers = self._install_signal_handlers()
        try:
            self.model.train()
            while self.epoch < config.epochs and not self._done():
                self._train_epoch(bar)
                if self.position >= self.batches_per_epoch:
                    self.epoch += 1
                    self.position = 0
                    self.scheduler.step()
            if self.iteration > self.last_saved:
                self.save()
        except Exception:
            self._save_before_failing()
            raise
        finally:
            bar.close()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        path = checkpoints.checkpoint_path(config.checkpoints_dir, self.iteration)
        return path if self.runtime.is_main and path.exists() else None

    def _save_before_failing(self) -> None:
        if self.iteration <= self.last_saved:  # nothing new, or the failure is the save itself
            return
        try:
            path = self.save()
        except Exception as error:  # keep the original failure; this one is secondary
            logger.warning("could not write a checkpoint before stopping: %s", error)
        else:
            if path is not None:
                logger.warning("wrote %s before stopping", path)

    def _done(self) -> bool:
        limit = self.config.max_iterations
        return self.stop_requested or (limit is not None and self.iteration >= limit)

    def _train_epoch(self, bar: Progress) -> None:
        config = self.config
        remaining = self.batches_per_epoch - self.position
        if remaining <= 0:
            return
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.position * self.local_batch)
        set_epoch: Callable[[int], None] | None = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.epoch)
        loader = DataLoader(
            self.dataset,
            batch_size=self.local_batch,
            sampler=self.sampler,
            num_workers=config.num_workers,
            pin_memory=self.runtime.device.type == "cuda",
            drop_last=True,
            generator=torch.Generator().manual_seed(config.seed * 100_003 + self.epoch),
            worker_init_fn=_leave_stop_signals_to_the_main_process,
        )
        batches = iter(loader)
        try:
            self._train_batches(batches, remaining, bar)
        finally:
            # Workers ignore SIGTERM, so they must not outlive a failure (multiprocessing's exit would wait for them).
            shutdown: Callable[[], None] | None = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def _train_batches(self, batches: Iterator[Mapping[str, torch.Tensor]], remaining: int, bar: Progress) -> None:
        config = self.config
        micro = 0
        for batch in batches:
            if micro == remaining:
                break
            if micro % config.batches_per_iter == 0:
                self.optimizer.zero_grad(set_to_none=True)
            last_micro = (micro + 1) % config.batches_per_iter == 0
            self._micro_step(batch, last_micro)
            micro += 1
            if not last_micro:
                continue
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.iteration += 1
            self.position += config.batches_per_iter
            bar.update(1)
            self._after_iteration(bar)
            if self._done():
                break

    def _micro_step(self, batch: Mapping[str, torch.Tensor], sync: bool) -> None:
        missing = [k for k in ("image", *TARGET_KEYS) if k not in batch]
        if missing:
            raise ValueError(f"dataset items lack {', '.join(missing)}: expected image and {', '.join(TARGET_KEYS)}")
        device = self.runtime.device
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=self.memory_format)
        targets = [batch[k].to(device, non_blocking=True) for k in TARGET_KEYS]
        no_sync = self.model.no_sync if isinstance(self.model, DistributedDataParallel) and not sync else None
        with no_sync() if no_sync else contextlib.nullcontext():
            amp_dtype = AMP_DTYPES.get(self.config.amp or "", torch.float32)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=self.config.amp is not None):
                outputs = self.model(images)
            losses = stage_losses(outputs, *targets)
            skipped = self._unreadable_in(batch)
            counts = [float(len(skipped)), float(len(skipped - self.unreadable)), float(bool(self.signal_received))]
            self.unreadable |= skipped
            summary = torch.cat([losses.detach(), torch.tensor(counts, device=device)])
            if self.runtime.distributed:
                dist.all_reduce(summary)
                summary[:-3] /= self.runtime.world_size
            summary = summary.cpu()
            losses_mean, (reads, new, stops) = summary[:-3], summary[-3:].tolist()
            self.stop_requested = stops > 0
            self.skipped_window += int(reads)
            self.unreadable_count += int(new)
            check_finite(losses_mean, self.iteration + 1)
            self.window += losses_mean.double()
            self.window_batches += 1
            self.scaler.scale(losses.sum() / self.config.batches_per_iter).backward()

    @staticmethod
    def _unreadable_in(batch: Mapping[str, torch.Tensor]) -> set[int]:
        """Indices of the unreadable samples the dataset replaced in this batch (its optional `skipped` entry)."""
        skipped = batch.get("skipped")
        return set() if skipped is None else set(skipped[skipped >= 0].tolist())

    def _after_iteration(self, bar: Progress) -> None:
        config = self.config
        if self.unreadable_count > config.max_unreadable_samples:
            self._log_losses(bar)
            raise UnreadableSamplesError(
                f"{self.unreadable_count} different training samples could not be read in this run, more than "
                f"--max-unreadable-samples {config.max_unreadable_samples} (see the warnings): fix the images or "
                "labels (or raise the limit) and resume from the last checkpoint"
            )
        if self.iteration % config.log_after == 0:
            self._log_losses(bar)
        if self.iteration % config.checkpoint_after == 0:
            self.save()
        if self.evaluate is not None and self.iteration % config.val_after == 0:
            self._validate(self.evaluate, bar)

    def _log_losses(self, bar: Progress) -> None:
        means = (self.window / max(self.window_batches, 1)).tolist()
        skipped, self.skipped_window = self.skipped_window, 0
        self.window.zero_()
        self.window_batches = 0
        if not self.runtime.is_main:
            return
        record: dict[str, Any] = {
            "iter": self.iteration,
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "loss": sum(means),
            **dict(zip(loss_names(len(means) // 2), means)),
            "skipped_samples": skipped,
            "unreadable_samples": self.unreadable_count,
            "time": time.time(),
        }
        _append_metrics(self.metrics_path, record)
        stages = " ".join(f"{k} {record[k]:.6g}" for k in loss_names(len(means) // 2))
        bar.write(f"iter {self.iteration} epoch {self.epoch} lr {record['lr']:.3g}: {stages}")
        bar.set_postfix(f"loss {record['loss']:.4g}")

    def _validate(self, evaluate: Callable[[nn.Module, torch.device], dict[str, float]], bar: Progress) -> None:
        if self.runtime.is_main:
            network = copy.deepcopy(self.module).float().eval()
            stats = evaluate(network, self.runtime.device)
            _append_metrics(self.metrics_path, {"iter": self.iteration, "epoch": self.epoch, "val": stats})
            bar.write(f"iter {self.iteration}: validation AP {stats.get('AP', float('nan')):.4f}")

    # -- interrupts ------------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGINT/SIGTERM stop the run at the next iteration boundary with a checkpoint; a second one aborts
        (KeyboardInterrupt). DataLoader workers ignore both (`_leave_stop_signals_to_the_main_process`)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        main_pid = os.getpid()

        def request_stop(signum: int, _frame: object) -> None:
            if os.getpid() != main_pid:
                return  # a DataLoader worker (forked with this handler): keep serving the main process
            if self.signal_received:
                raise KeyboardInterrupt
            self.signal_received = signum
            print(f"\nsignal {signum}: stopping after this iteration (again to abort)", file=sys.stderr)

        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, request_stop)
        return previous

    def _log(self, message: str) -> None:
        if self.runtime.is_main:
            logger.info(message)


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """DataLoader worker_init_fn: ignore SIGINT and SIGTERM, which a terminal, Slurm or systemd also send to the
    workers; the main process stops at an iteration boundary and shuts the workers down. A worker whose main
    process died exits by itself (torch's watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _validation_function(config: TrainConfig) -> Callable[[nn.Module, torch.device], dict[str, float]]:
    """COCO keypoint AP of a network on --val-labels through lightpose.training.evaluate (imported here)."""
    try:
        from lightpose.estimator import PoseEstimator
        from lightpose.training.evaluate import evaluate_coco
    except ImportError as error:
        raise UsageError(f"validation needs lightpose.estimator and lightpose.training.evaluate ({error})") from error
    labels, images = str(config.val_labels), str(config.val_images_folder)
    for path in (labels, images):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: check --val-labels / --val-images-folder")

    def evaluate(network: nn.Module, device: torch.device) -> dict[str, float]:
        estimator = PoseEstimator(network, device=device)
        return evaluate_coco(estimator, labels, images, subset=config.val_subset, progress=config.progress)

    return evaluate


def _append_metrics(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line (an append-only log: a kill leaves at most a cut last line, which resume drops)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def _keep_metrics_up_to(path: Path, iteration: int) -> None:
    """Drop metrics records after `iteration` (work a killed run lost) by an atomic rewrite of metrics.jsonl."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and record.get("iter", 0) <= iteration:
            kept.append(line)
    with atomic_write(path) as file:
        file.write("".join(line + "\n" for line in kept))
