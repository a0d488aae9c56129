"""`lightpose train`: train Lightweight OpenPose on prepared COCO labels (one GPU, or many under torchrun).

The options are generated from `TrainConfig`'s fields (help from their metadata, defaults from the fields), plus
the data options below. Exit codes (`lightpose.cli.main.run_command`): 0 done, 1 runtime failure (anything that
fails once training started), 2 bad usage or input, 130 / 143 stopped by SIGINT / SIGTERM (after writing a
checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import typing
from pathlib import Path

from lightpose.cli.options import add_verbosity, configure_logging, say
from lightpose.errors import TrainingError
from lightpose.io import check_output_path
from lightpose.training.trainer import TrainConfig

PROG = "lightpose train"

DESCRIPTION = """\
Train Lightweight OpenPose as the reference train.py: Adam, 13 parameter groups, MultiStepLR. Checkpoints go to
<experiment-name>_checkpoints/checkpoint_iter_<N>.pth, losses to metrics.jsonl beside them. The skeleton (the
network's heads, stored in every checkpoint) is the one `lightpose prepare-coco --skeleton` stored with the labels;
--weights-only from a checkpoint of another skeleton (e.g. the published model) takes its backbone and Cpm.

Several GPUs (DDP; --batch-size is split over the processes):
  torchrun --nproc_per_node=N -m lightpose train ...
  torchrun --nproc_per_node=N "$(command -v lightpose)" train ...     (the same)

SIGINT (Ctrl-C) or SIGTERM stops after the current iteration with a checkpoint (exit 130 / 143); a second one
aborts at once. Resume with --checkpoint <experiment-name>_checkpoints/checkpoint_iter_<N>.pth.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the network (the reference recipe; torchrun for several GPUs)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--prepared-train-labels", required=True, metavar="FILE", help="labels from `lightpose prepare-coco`"
    )
    parser.add_argument("--train-images-folder", required=True, metavar="FOLDER", help="the training images")
    parser.add_argument(
        "--input-size", type=int, default=368, metavar="N", help="training crop side in pixels (default: 368)"
    )
    add_config_options(parser, TrainConfig)
    add_verbosity(parser)
    parser.set_defaults(func=run)


def add_config_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    """One option per dataclass field of `config_type`: --field-name (or metadata `flags`), the field's default,
    metadata `help` (and `choices`, `metavar`); a bool field is a switch that flips its default."""
    hints = typing.get_type_hints(config_type)
    for item in dataclasses.fields(config_type):
        options = dict(item.metadata)
        help_text = options.pop("help")
        flags = options.pop("flags", (f"--{item.name.replace('_', '-')}",))
        kind = hints[item.name]
        if kind is bool:
            action = "store_false" if item.default else "store_true"
            parser.add_argument(*flags, dest=item.name, action=action, default=item.default, help=help_text)
            continue
        value_type = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if "choices" not in options:
            options.setdefault("metavar", "N" if value_type is int else item.name.rsplit("_", 1)[-1].upper())
        if item.default is not None:
            help_text += " (default: %(default)s)"
        parser.add_argument(*flags, dest=item.name, type=value_type, default=item.default, help=help_text, **options)


def _one_line(error: BaseException) -> str:
    """The error's message on one line; for an error re-raised from a DataLoader worker, the worker's message."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if lines[0].startswith("Caught ") and "Original Traceback" in str(error):
        return lines[-1].split(": ", 1)[-1]
    return lines[0]


def run(args: argparse.Namespace) -> int:
    from lightpose.training.dataset import CocoKeypointsDataset
    from lightpose.training.trainer import Trainer

    configure_logging(PROG, quiet=args.quiet, verbose=args.verbose)
    config = TrainConfig(**{item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)})
    config.check()
    labels, images = Path(args.prepared_train_labels), Path(args.train_images_folder)
    if not labels.is_file():
        raise FileNotFoundError(f"--prepared-train-labels {labels} does not exist: run `lightpose prepare-coco`")
    if not images.is_dir():
        raise FileNotFoundError(f"--train-images-folder {images} is not a folder: check the path")
    if config.checkpoint_path and not Path(config.checkpoint_path).is_file():
        what = "MobileNet weights" if config.from_mobilenet else "checkpoint"
        raise FileNotFoundError(f"--checkpoint {config.checkpoint_path} ({what}) does not exist: check the path")
    inputs = (labels, images, config.checkpoint_path, config.val_labels, config.val_images_folder)
    check_output_path(config.checkpoints_dir, folder=True, inputs=inputs, option="--experiment-name folder")
    dataset = CocoKeypointsDataset(labels, images, seed=config.seed, input_size=args.input_size)
    trainer = Trainer(config, dataset)
    try:
        path = trainer.run()
    except KeyboardInterrupt:  # a second SIGINT/SIGTERM, or Ctrl-C before the handlers were installed
        print(f"{PROG}: aborted (no checkpoint of the current iteration)", file=sys.stderr)
        return 128 + (trainer.signal_received or signal.SIGINT)
    except Exception as error:  # once training started, any failure is a runtime failure (exit 1), in one line
        raise TrainingError(_one_line(error)) from error
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    stopped_by = trainer.interrupted_by
    if stopped_by is not None:
        saved = f"; last checkpoint: {path}" if path is not None else ""
        print(f"{PROG}: stopped by {signal.Signals(stopped_by).name}{saved}", file=sys.stderr)
        return 128 + stopped_by
    if path is not None:
        say(args, f"last checkpoint: {path}")
    return 0
