"""The one checkpoint reader and the one fitter: what a bad file is told, for inference and training alike."""

from __future__ import annotations

import fractions
import gzip
import io
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lightpose import weights
from lightpose._checkpoint import fit_state_dict, read_checkpoint
from lightpose.errors import CheckpointError, UnsafeCheckpointError
from lightpose.model import LightweightOpenPose
from lightpose.training import checkpoints


class _RunsCommand:
    """Unpickling this would run `touch marker`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return LightweightOpenPose().state_dict()


def _mobilenet_layout() -> dict:
    """A file in the --from-mobilenet layout: {'state_dict': {module.model.N..., module.fc.*}}."""
    backbone = {f"module.{k}": v for k, v in _state().items() if k.startswith("model.")}
    return {"state_dict": backbone | {"module.fc.weight": torch.zeros(1000, 1024), "module.fc.bias": torch.zeros(1000)}}


def _onnx_bytes() -> bytes:
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([], "g", [], [])
    return onnx.helper.make_model(graph, producer_name="pytorch").SerializeToString()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros(3))
    return buffer.getvalue()


def _truncated_zip() -> bytes:
    buffer = io.BytesIO()
    torch.save(_state(), buffer)
    return buffer.getvalue()[:100_000]


NOT_CHECKPOINTS: dict[str, tuple[Callable[[], bytes], str]] = {
    "html": (lambda: b"  <!DOCTYPE html>\n<html><body>Sign in to download</body></html>", "an HTML web page"),
    "text": (lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "a text file"),
    "json": (lambda: b'{"error": "not found"}', "JSON text"),
    "random": (lambda: np.random.default_rng(0).bytes(5000), "binary data of no known format (random bytes?)"),
    "empty": (lambda: b"", "an empty file"),
    "onnx": (_onnx_bytes, "an ONNX model"),
    "gzip": (lambda: gzip.compress(b"x" * 100), "gzip-compressed data"),
    "openvino_xml": (lambda: b'<?xml version="1.0"?>\n<net name="m" version="11">', "an OpenVINO IR model"),
    "npz": (_npz_bytes, "a zip archive without data.pkl"),
    "truncated_zip": (_truncated_zip, "truncated or corrupt zip checkpoint"),
}


@pytest.mark.parametrize("kind", sorted(NOT_CHECKPOINTS))
def test_not_a_checkpoint_says_what_it_looks_like(tmp_path: Path, kind: str) -> None:
    make, looks_like = NOT_CHECKPOINTS[kind]
    path = tmp_path / "model.pth"
    path.write_bytes(make())
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert type(info.value) is CheckpointError, "not a checkpoint is not an unsafe checkpoint"
    assert looks_like in message and str(path) in message and "\n" not in message
    assert "weights_only" not in message and "unsafe" not in message.lower()


def test_html_page_advice_and_onnx_advice(tmp_path: Path) -> None:
    page, model = tmp_path / "page.pth", tmp_path / "model.pth"
    page.write_bytes(NOT_CHECKPOINTS["html"][0]())
    with pytest.raises(CheckpointError, match=r"share link .* download the file itself"):
        read_checkpoint(page)
    model.write_bytes(_onnx_bytes())
    with pytest.raises(CheckpointError, match=r"from_pretrained\('model\.onnx'\)"):
        read_checkpoint(model)


@pytest.mark.parametrize("writer", ["torch.save", "torch.save legacy", "pickle protocol 2", "pickle protocol 4"])
def test_pickle_that_runs_a_command_is_named_and_never_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": _RunsCommand(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "torch.save legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    for downloaded in (False, True):
        with pytest.raises(UnsafeCheckpointError) as info:
            read_checkpoint(path, downloaded=downloaded)
        message = str(info.value)
        assert re.search(rf"{re.escape(str(path))}: its pickle names (posix|nt|os)\.system \(", message), message
        assert "delete it" in message and "weights_only=False" not in message and "re-save" not in message
    assert not marker.exists()


def test_unknown_but_harmless_type_local_vs_downloaded(tmp_path: Path) -> None:
    path = tmp_path / "fraction.pth"
    torch.save({"state_dict": {}, "scheduler": {"gamma": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"names fractions\.Fraction .*If you wrote this file yourself"):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match=r"names fractions\.Fraction") as info:
        read_checkpoint(path, downloaded=True)
    assert "re-save" not in str(info.value) and "weights_only=False" not in str(info.value)


def test_directory_is_a_directory(tmp_path: Path) -> None:
    for load in (read_checkpoint, weights.load_model, checkpoints.read_checkpoint):
        with pytest.raises(IsADirectoryError, match=rf"{re.escape(str(tmp_path))} is a directory, not a checkpoint"):
            load(tmp_path)


def test_not_a_dict_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r"holds a Tensor, not a checkpoint"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_checkpoint(tmp_path / "missing.pth")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_file_is_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match=r"TorchScript model .* save model\.state_dict\(\)"):
        read_checkpoint(path)


def test_training_reader_gives_the_inference_messages(tmp_path: Path) -> None:
    """The train CLI reads through checkpoints.read_checkpoint: the same messages as lightpose.weights."""
    path = tmp_path / "page.pth"
    path.write_bytes(NOT_CHECKPOINTS["html"][0]())
    messages = []
    for read in (checkpoints.read_checkpoint, weights.load_checkpoint_file):
        with pytest.raises(CheckpointError) as info:
            read(path)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "HTML web page" in messages[0]


# -- the fitter --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path: Path, bad: float) -> None:
    state = _state()
    state["initial_stage.pafs.1.0.bias"][3] = bad
    path = tmp_path / "diverged.pth"
    torch.save({"state_dict": state}, path)
    match = r"diverged\.pth holds NaN or inf weights in 1 tensor\(s\): initial_stage\.pafs\.1\.0\.bias \(1 of 38"
    with pytest.raises(CheckpointError, match=match):
        weights.load_model(path)
    model = LightweightOpenPose()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=match):
        checkpoints.load_weights(model, read_checkpoint(path), str(path))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "nothing copied before refusing"


def test_non_finite_backbone_is_refused_for_mobilenet_init() -> None:
    checkpoint = _mobilenet_layout()
    checkpoint["state_dict"]["module.model.0.1.running_var"][0] = float("nan")
    with pytest.raises(CheckpointError, match=r"model\.0\.1\.running_var \(1 of 32 values\)"):
        checkpoints.load_from_mobilenet(LightweightOpenPose(), checkpoint, "mobilenet.pth")


def test_mobilenet_file_is_pointed_to_from_mobilenet(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet_sgd_68.848.pth.tar"
    torch.save(_mobilenet_layout(), path)
    hint = r"ImageNet MobileNet v1 weights \(module\.model\.N\.\.\. keys\).*--from-mobilenet"
    with pytest.raises(CheckpointError, match=hint):
        weights.load_model(path)  # inference
    with pytest.raises(CheckpointError, match=hint):
        checkpoints.load_weights(LightweightOpenPose(), read_checkpoint(path), str(path))  # --weights-only
    with pytest.raises(CheckpointError, match=rf"has no training state \(optimizer, iter missing\): it holds {hint}"):
        checkpoints.check_resumable(read_checkpoint(path), str(path), ("optimizer", "iter"))  # resume
    assert checkpoints.load_from_mobilenet(LightweightOpenPose(), read_checkpoint(path), str(path)) == 115


def test_resume_hint_for_a_pose_state_dict_is_weights_only(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"\(iter missing\): to start from its weights, add --weights-only$"):
        checkpoints.check_resumable({"state_dict": _state()}, "bare.pth", ("iter",))
    checkpoints.check_resumable({"state_dict": _state(), "iter": 5}, "full.pth", ("iter",))


def test_pose_checkpoint_gets_no_mobilenet_hint() -> None:
    state = _state()
    del state["cpm.align.0.weight"]
    with pytest.raises(CheckpointError) as info:
        fit_state_dict(LightweightOpenPose(), state, "ckpt.pth")
    assert "1 missing key(s): cpm.align.0.weight" in str(info.value) and "mobilenet" not in str(info.value).lower()


def test_fit_reports_loaded_kept_and_ignored() -> None:
    source = LightweightOpenPose(num_refinement_stages=1)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["extra.weight"] = torch.zeros(1)
    target = LightweightOpenPose(num_refinement_stages=2)
    fit = fit_state_dict(target, state, "ckpt.pth", optional=lambda key: key.startswith("refinement_stages.1."))
    assert fit.ignored == ["extra.weight"]
    assert fit.kept and all(k.startswith("refinement_stages.1.") for k in fit.kept)
    assert len(fit.loaded) == len(state) - 1
    assert torch.equal(target.state_dict()["cpm.align.0.weight"], source.state_dict()["cpm.align.0.weight"])


def test_legacy_zip_with_data_pkl_only_in_a_folder_is_read(tmp_path: Path) -> None:
    """torch's zip layout is <archive>/data.pkl: the sniffing must accept it, not only a bare data.pkl."""
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": _state()}, path)
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith("/data.pkl") for name in archive.namelist())
    assert set(read_checkpoint(path)) == {"state_dict"}
