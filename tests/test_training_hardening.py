"""Training survives what real runs meet: unreadable images (skipped, counted, a documented limit), SIGTERM/SIGINT to
the whole process group with DataLoader workers (a checkpoint, exit 143/130), a full disk while writing a
checkpoint, a killed write's temporary file, and output folders that cannot be written (checked before any work)."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lightpose.cli.main import main
from lightpose.training.dataset import CocoKeypointsDataset
from lightpose.training.trainer import TrainConfig, Trainer
from stick_people import make_prepared_stick_dataset

SIZE = 64


@pytest.fixture()
def stick(tmp_path: Path) -> tuple[Path, Path]:
    """(prepared labels, images folder): 6 images of 2 people, 12 samples; image k holds samples 2k-2 and 2k-1."""
    return make_prepared_stick_dataset(tmp_path / "data", num_images=6, size=(SIZE, SIZE))


def damage(images: Path) -> None:
    """0002.png missing (samples 2, 3) and 0005.png empty (samples 8, 9)."""
    (images / "0002.png").unlink()
    (images / "0005.png").write_bytes(b"")


def train_args(stick: tuple[Path, Path], **options: Any) -> list[str]:
    settings = {"batch-size": 2, "num-workers": 0, "log-after": 1, "checkpoint-after": 2, "max-iterations": 6}
    settings.update({k.replace("_", "-"): v for k, v in options.items()})
    args = ["train", "--prepared-train-labels", str(stick[0]), "--train-images-folder", str(stick[1])]
    args += ["--input-size", str(SIZE), "--device", "cpu", "--no-progress"]
    return args + [str(x) for key, value in settings.items() for x in (f"--{key}", value)]


def metrics(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def iterations_saved(folder: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("checkpoint_iter_*.pth"))


# -- unreadable images -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_missing_and_empty_images_are_skipped_and_counted(
    stick: tuple[Path, Path], workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.chdir(tmp_path)
    damage(stick[1])
    config = TrainConfig(batch_size=2, num_workers=workers, log_after=1, max_iterations=6, progress=False, device="cpu")
    with caplog.at_level(logging.WARNING):
        path = Trainer(config, CocoKeypointsDataset(*stick, input_size=SIZE)).run()  # one epoch: 12 samples
    assert path is not None and torch.load(path, weights_only=True)["iter"] == 6
    records = metrics(tmp_path / "default_checkpoints")
    assert [r["iter"] for r in records] == [1, 2, 3, 4, 5, 6]
    # failed reads: sample 2 tries 2, 3 then 4; sample 3 tries 3; likewise 8, 9 and 9: 6 reads, 4 samples
    assert sum(r["skipped_samples"] for r in records) == 6
    assert records[-1]["unreadable_samples"] == 4
    if workers == 0:  # workers log in their own processes
        skipped = [r.getMessage() for r in caplog.records if "skipping unreadable training sample" in r.getMessage()]
        assert len(skipped) == 6
        assert any("0002.png" in m for m in skipped) and any("0005.png" in m for m in skipped)


def test_past_the_unreadable_limit_training_stops_with_a_checkpoint(
    stick: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    damage(stick[1])
    code = main(train_args(stick, max_unreadable_samples=1, max_iterations=100, checkpoint_after=100))
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("error:") == 1 and "more than --max-unreadable-samples 1" in err
    folder = tmp_path / "default_checkpoints"
    records = metrics(folder)
    stopped = records[-1]["iter"]
    assert records[-1]["unreadable_samples"] >= 2
    assert iterations_saved(folder) == [stopped] and stopped < 6  # within the first epoch


def test_every_image_unreadable_is_one_line_without_traceback(
    stick: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    for image in stick[1].iterdir():
        image.unlink()
    assert main(train_args(stick, num_workers=2)) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "could not be read" in err and str(stick[1]) in err
    assert main([*train_args(stick, num_workers=2), "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


# -- signals ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_the_process_group_stops_with_a_checkpoint(
    stick: tuple[Path, Path], tmp_path: Path, signum: int, code: int
) -> None:
    """What Slurm, systemd and Ctrl-C do: the signal reaches the main process and its 2 DataLoader workers."""
    command = [sys.executable, "-m", "lightpose.cli.main", *train_args(stick, num_workers=2, max_iterations=10_000)]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    folder = tmp_path / "default_checkpoints"
    deadline = time.monotonic() + 120
    while not (folder / "checkpoint_iter_2.pth").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err
    assert f"stopped by {signal.Signals(signum).name}" in err
    last = iterations_saved(folder)[-1]
    assert 2 <= last < 10_000 and torch.load(folder / f"checkpoint_iter_{last}.pth", weights_only=True)["iter"] == last
    assert metrics(folder)[-1]["iter"] == last
    for _ in range(100):  # the workers are gone with the main process
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("DataLoader workers outlived the training process")


# -- checkpoint writes -----------------------------------------------------------------------------------------
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(
    stick: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    real_save = torch.save
    calls = []

    def save_until_the_disk_fills(obj: object, file: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(file)
        if len(calls) == 2:
            file.write(b"\0" * 1000) if hasattr(file, "write") else Path(file).write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    code = main(train_args(stick))
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no space left" in err.lower(), err
    folder = tmp_path / "default_checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint_iter_2.pth", "metrics.jsonl"]  # no temp file
    assert torch.load(folder / "checkpoint_iter_2.pth", weights_only=True)["iter"] == 2


def test_a_killed_writes_temporary_file_is_removed_on_the_next_start(
    stick: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "default_checkpoints"
    folder.mkdir()
    killed_write = (
        "import os, signal\n"
        "from lightpose.io import atomic_path\n"
        "with atomic_path('default_checkpoints/checkpoint_iter_4.pth') as temp:\n"
        "    temp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed_write], cwd=tmp_path, check=False, timeout=60)
    assert [p.name.endswith(".tmp") for p in folder.iterdir()] == [True]
    config = TrainConfig(batch_size=2, num_workers=0, max_iterations=1, progress=False, device="cpu")
    Trainer(config, CocoKeypointsDataset(*stick, input_size=SIZE))
    assert list(folder.iterdir()) == []


# -- output location checked before any work -------------------------------------------------------------------
def test_unwritable_experiment_folder_is_exit_2_before_any_work(
    stick: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import lightpose.training.dataset as dataset_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dataset_module.CocoKeypointsDataset, "__init__", lambda *a, **k: pytest.fail("work done"))
    (tmp_path / "taken_checkpoints").write_text("a file")
    (tmp_path / "afile").write_text("a file")
    images_named_like_output = tmp_path / "run_checkpoints"
    stick[1].rename(images_named_like_output)
    data = (stick[0], images_named_like_output)
    cases = {
        "taken": "exists and is not a folder",
        "afile/run": "is a file, not a folder",
        "run": "is also an input",
    }
    for name, message in cases.items():
        assert main(train_args(data, experiment_name=name)) == 2
        err = capsys.readouterr().err
        assert message in err and f"{name}_checkpoints" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "data", "run_checkpoints", "taken_checkpoints"]


# -- the options -------------------------------------------------------------------------------------------------
def test_train_options_are_generated_from_train_config(capsys: pytest.CaptureFixture) -> None:
    from lightpose.cli.main import build_parser

    required = ["train", "--prepared-train-labels", "l.json", "--train-images-folder", "images"]
    args = build_parser().parse_args(required)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        assert getattr(args, field.name) == getattr(defaults, field.name), field.name
    for flag in ("--checkpoint", "--checkpoint-path"):
        assert build_parser().parse_args([*required, flag, "x.pth"]).checkpoint_path == "x.pth"
    changed = build_parser().parse_args([*required, "--no-progress", "--weights-only", "--max-iterations", "7"])
    assert (changed.progress, changed.weights_only, changed.max_iterations) == (False, True, 7)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also inside --val-labels
    for field in dataclasses.fields(TrainConfig):
        assert "".join(field.metadata["help"].split()) in help_text, field.name
