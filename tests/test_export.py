"""Exported ONNX / OpenVINO models: names, opset, dynamic shapes, agreement with torch, atomic writes, CLI."""

import numpy as np
import pytest
import torch

import lightpose.export as export_module
from lightpose.backends import TorchBackend
from lightpose.cli.main import main
from lightpose.export import to_onnx, to_openvino
from random_model import random_input, random_model

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
ov = pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'lightpose[openvino]'")

TOL = 2e-5  # of the output range (about 50 here); float32 rounding only
SIZES = ((1, 64, 96), (2, 80, 128))  # (batch, height, width): one exported file runs both


@pytest.fixture(scope="module")
def model():
    return random_model(seed=3)


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "pose.onnx"
    difference = to_onnx(model, path, height=64, width=96)
    assert difference is not None and difference < 1e-2
    return path


def check_against_torch(model, run):
    torch_backend = TorchBackend(model, "cpu")
    for batch, height, width in SIZES:
        data = random_input(batch, height, width, seed=height)
        expected = torch_backend(data)
        got = run(data)
        scale = max(float(np.abs(e).max()) for e in expected)
        for out, ref in zip(got, expected):
            assert out.shape == ref.shape == (batch, ref.shape[1], height // 8, width // 8)
            assert float(np.abs(out - ref).max()) <= TOL * scale


def test_onnx_file_names_opset_and_dynamic_axes(onnx_path):
    proto = onnx.load(str(onnx_path))
    assert [i.name for i in proto.graph.input] == ["data"]
    assert [o.name for o in proto.graph.output] == ["heatmaps", "pafs"]
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3


def test_onnx_round_trip_at_two_sizes(model, onnx_path):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    check_against_torch(model, lambda data: session.run(["heatmaps", "pafs"], {"data": data}))


def test_openvino_round_trip_at_two_sizes(model, tmp_path):
    path = tmp_path / "pose.xml"
    difference = to_openvino(model, path, height=64, width=96)
    assert difference is not None and difference < 1e-2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.bin", "pose.xml"]
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(data):
        result = compiled({"data": data})
        return result[compiled.output("heatmaps")], result[compiled.output("pafs")]

    check_against_torch(model, run)


def test_failed_verification_writes_nothing(model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("exported model differs from torch")

    monkeypatch.setattr(export_module, "verify_onnx", broken)
    monkeypatch.setattr(export_module, "verify_openvino", broken)
    with pytest.raises(RuntimeError, match="differs from torch"):
        to_onnx(model, tmp_path / "pose.onnx", height=64, width=96)
    with pytest.raises(RuntimeError, match="differs from torch"):
        to_openvino(model, tmp_path / "pose.xml", height=64, width=96)
    assert list(tmp_path.iterdir()) == []


def test_verification_catches_a_wrong_model(model):
    def wrong(data):
        return [np.zeros((1, c, data.shape[2] // 8, data.shape[3] // 8), np.float32) for c in (19, 38)]

    with pytest.raises(RuntimeError, match="exported test model differs from torch"):
        export_module.verify_against_torch(model, wrong, ((64, 96),), 1e-3, "test")


def test_bad_arguments_are_refused(model, tmp_path):
    with pytest.raises(ValueError, match="multiples of 8"):
        to_onnx(model, tmp_path / "a.onnx", height=60, width=96)
    with pytest.raises(ValueError, match="opset must be >= 17"):
        to_onnx(model, tmp_path / "a.onnx", height=64, width=96, opset=13)
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        to_onnx(model, tmp_path / "missing" / "a.onnx", height=64, width=96)
    with pytest.raises(ValueError, match="must end in .xml"):
        to_openvino(model, tmp_path / "a.onnx", height=64, width=96)


def test_cli_exports_a_checkpoint(model, tmp_path, capsys):
    checkpoint = tmp_path / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    output = tmp_path / "cli.onnx"
    args = ["export", "--format", "onnx", "--checkpoint", str(checkpoint), "--output", str(output)]
    assert main([*args, "--height", "64", "--width", "96"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    check_against_torch(model, lambda data: session.run(["heatmaps", "pafs"], {"data": data}))
    assert main([*args, "--height", "60"]) == 2
    assert "multiples of 8" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--checkpoint", str(tmp_path / "nope.pth"), "--output", "x"]) == 2
    xml = tmp_path / "cli.xml"
    assert main(["export", "--format", "openvino", "--checkpoint", str(checkpoint), "--output", str(xml)]) == 0
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
