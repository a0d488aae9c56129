"""`lightpose train`: train Lightweight OpenPose on prepared COCO labels (one GPU, or many under torchrun)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lightpose.training.loss import NonFiniteLossError
from lightpose.training.optim import BASE_LR, EPOCHS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the network (the reference recipe; torchrun for several GPUs)",
        description="Train Lightweight OpenPose as the reference train.py: Adam, 13 parameter groups, MultiStepLR. "
        "Checkpoints go to <experiment-name>_checkpoints/checkpoint_iter_<N>.pth, losses to metrics.jsonl beside "
        "them. Launch with `torchrun --nproc_per_node=N lightpose train ...` (or `python -m torch.distributed.run`) "
        "for DDP; --batch-size is then split over the processes.",
    )
    parser.add_argument("--prepared-train-labels", required=True, help="labels from `lightpose prepare-coco`")
    parser.add_argument("--train-images-folder", required=True, help="folder of the training images")
    parser.add_argument("--checkpoint-path", help="checkpoint to resume from (or weights to start from, see below)")
    parser.add_argument("--from-mobilenet", action="store_true", help="--checkpoint-path is ImageNet MobileNet v1")
    parser.add_argument("--weights-only", action="store_true", help="take only the weights of --checkpoint-path")
    parser.add_argument("--num-refinement-stages", type=int, default=1, help="default 1")
    parser.add_argument("--batch-size", type=int, default=80, help="global batch per step (default 80)")
    parser.add_argument("--batches-per-iter", type=int, default=1, help="gradient accumulation steps (default 1)")
    parser.add_argument("--base-lr", type=float, default=BASE_LR, help=f"default {BASE_LR}")
    parser.add_argument("--num-workers", type=int, default=8, help="DataLoader workers per process (default 8)")
    parser.add_argument("--experiment-name", default="default", help="checkpoints go to <name>_checkpoints/")
    parser.add_argument("--checkpoint-after", type=int, default=5000, help="iterations (default 5000)")
    parser.add_argument("--val-after", type=int, default=5000, help="iterations (default 5000)")
    parser.add_argument("--log-after", type=int, default=100, help="iterations (default 100)")
    parser.add_argument("--val-labels", help="COCO keypoints JSON for validation AP (with --val-images-folder)")
    parser.add_argument("--val-images-folder", help="images of --val-labels")
    parser.add_argument("--val-subset", type=int, help="validate on this many images (the reference's subset: 250)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"stop after this many epochs (default {EPOCHS})")
    parser.add_argument("--max-iterations", type=int, help="stop after this many iterations")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision on CUDA (fp16 uses a GradScaler)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across DDP processes (CUDA)")
    parser.add_argument("--input-size", type=int, default=368, help="training crop side in pixels (default 368)")
    parser.add_argument("--seed", type=int, default=0, help="shuffling, augmentation and init seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _error(message: str, code: int) -> int:
    print(f"lightpose train: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from lightpose.training.dataset import CocoKeypointsDataset
    from lightpose.training.trainer import TrainConfig, Trainer

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(
        experiment_name=args.experiment_name,
        num_refinement_stages=args.num_refinement_stages,
        batch_size=args.batch_size,
        batches_per_iter=args.batches_per_iter,
        base_lr=args.base_lr,
        epochs=args.epochs,
        max_iterations=args.max_iterations,
        num_workers=args.num_workers,
        checkpoint_after=args.checkpoint_after,
        val_after=args.val_after,
        log_after=args.log_after,
        checkpoint_path=args.checkpoint_path,
        from_mobilenet=args.from_mobilenet,
        weights_only=args.weights_only,
        val_labels=args.val_labels,
        val_images_folder=args.val_images_folder,
        val_subset=args.val_subset,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        sync_bn=args.sync_bn,
        seed=args.seed,
        progress=not args.no_progress,
    )
    try:
        config.check()
        if not os.path.isfile(args.prepared_train_labels):
            raise FileNotFoundError(f"--prepared-train-labels {args.prepared_train_labels} does not exist")
        if args.checkpoint_path and not os.path.isfile(args.checkpoint_path):
            what = "MobileNet weights" if args.from_mobilenet else "checkpoint"
            raise FileNotFoundError(f"--checkpoint-path {args.checkpoint_path} ({what}) does not exist")
        dataset = CocoKeypointsDataset(
            args.prepared_train_labels, args.train_images_folder, seed=args.seed, input_size=args.input_size
        )
        trainer = Trainer(config, dataset)
    except (OSError, ValueError) as error:
        return _error(str(error).splitlines()[0], 2)
    try:
        path = trainer.run()
    except NonFiniteLossError as error:
        return _error(str(error), 1)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    if path is not None:
        print(f"last checkpoint: {path}")
    return 0
