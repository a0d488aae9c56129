"""Exported ONNX / OpenVINO models: names, opset, dynamic shapes, agreement with torch, the stored skeleton,
atomic writes, CLI."""

import json
import os

import numpy as np
import pytest
import torch

import lightpose.export as export_module
from exported import random_onnx_bytes, run_cli
from lightpose.backends import OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, open_exported
from lightpose.estimator import PoseEstimator
from lightpose.export import save_openvino, to_onnx, to_openvino
from lightpose.model import LightweightOpenPose
from lightpose.model_metadata import SKELETON_KEY
from lightpose.skeleton import OPENPOSE_COCO, Skeleton
from random_model import random_checkpoint, random_input, random_model

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
ov = pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'lightpose[openvino]'")

TOL = 2e-5  # of the output range (about 50 here); float32 rounding only
SIZES = ((1, 64, 96), (2, 80, 128))  # (batch, height, width): one exported file runs both


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture
def shared_export(monkeypatch):
    """Exports of random_model() reuse the process's one ONNX export (the exporter itself is tested once)."""
    monkeypatch.setattr(export_module, "onnx_model_bytes", lambda *args, **kwargs: random_onnx_bytes())


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


def openvino_runner(path):
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(data):
        result = compiled({"data": data})
        return result[compiled.output("heatmaps")], result[compiled.output("pafs")]

    return run


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.bin", "pose.xml"]  # no temporary files left
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()
    check_against_torch(model, openvino_runner(path))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_openvino_replaces_both_files(model, tmp_path):
    path = tmp_path / "pose.xml"
    path.write_text("old")
    path.with_suffix(".bin").write_bytes(b"old")
    save_openvino(ov.Core().read_model(random_onnx_bytes(), b""), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.bin", "pose.xml"]
    check_against_torch(model, openvino_runner(path))


def test_failed_verification_writes_nothing(model, tmp_path, monkeypatch, shared_export):
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
    with pytest.raises(ValueError, match=r"does not end in \.xml.*name it \*\.xml"):
        to_openvino(model, tmp_path / "a.onnx", height=64, width=96)
    with pytest.raises(ValueError, match=r"does not end in \.onnx.*name it \*\.onnx"):
        to_onnx(model, tmp_path / "a.xml", height=64, width=96)
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_a_checkpoint(model, tmp_path, capsys, shared_export):
    checkpoint = random_checkpoint(tmp_path / "random.pth")
    output = tmp_path / "cli.onnx"
    args = ["--format", "onnx", "--checkpoint", str(checkpoint), "--output", str(output)]
    assert run_cli("export", [*args, "--height", "64", "--width", "96"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    check_against_torch(model, lambda data: session.run(["heatmaps", "pafs"], {"data": data}))
    assert (
        run_cli("export", ["--format", "onnx", "--checkpoint", str(tmp_path / "nope.pth"), "--output", "x.onnx"]) == 2
    )
    xml = tmp_path / "cli.xml"
    assert run_cli("export", ["--format", "openvino", "--checkpoint", str(checkpoint), "--output", str(xml)]) == 0
    assert xml.is_file() and xml.with_suffix(".bin").is_file()


def test_cli_refuses_an_output_of_the_other_format(tmp_path, capsys):
    xml = tmp_path / "lp.xml"
    xml.write_text("an OpenVINO model the user has")
    checkpoint = tmp_path / "never-read.pth"
    assert run_cli("export", ["--format", "onnx", "--checkpoint", str(checkpoint), "--output", str(xml)]) == 2
    assert "does not end in .onnx, the suffix of the onnx format" in capsys.readouterr().err
    assert xml.read_text() == "an OpenVINO model the user has"
    assert run_cli("export", ["--format", "openvino", "--checkpoint", str(checkpoint), "--output", "lp.onnx"]) == 2
    assert "does not end in .xml" in capsys.readouterr().err
    checkpoint = random_checkpoint(tmp_path / "random.pth")
    output = tmp_path / "a.onnx"
    assert (
        run_cli(
            "export", ["--format", "onnx", "--checkpoint", str(checkpoint), "--output", str(output), "--height", "60"]
        )
        == 2
    )
    assert "multiples of 8" in capsys.readouterr().err and not output.exists()


# -- the skeleton stored in exported files -----------------------------------------------------------------------
FIVE = Skeleton(
    name="five",
    keypoints=("head", "left_hand", "right_hand", "left_foot", "right_foot"),
    limbs=((0, 1), (0, 2), (0, 3), (0, 4), (3, 4)),
    sigmas=(0.05,) * 5,
    redundant_limbs=(4,),
    flip_pairs=((1, 2), (3, 4)),
)


@pytest.fixture(scope="module")
def five_model():
    torch.manual_seed(0)
    return LightweightOpenPose(skeleton=FIVE).eval()


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_exported_custom_skeleton_decodes_with_its_skeleton(five_model, tmp_path, suffix):
    path = tmp_path / f"five{suffix}"
    export = to_onnx if suffix == ".onnx" else to_openvino
    assert export(five_model, path, height=64, width=96) < 1e-3
    runner = open_exported(path)
    assert runner.skeleton == FIVE
    estimator = PoseEstimator.from_pretrained(path, height=64)
    assert estimator.skeleton == FIVE
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    heatmaps, pafs, _ = estimator.infer_maps(image)
    assert (heatmaps.shape[0], pafs.shape[0]) == (FIVE.num_heatmaps, FIVE.num_pafs) == (6, 10)
    result = estimator(image)  # decoded with the stored skeleton: the published one would raise on 6 heatmaps
    assert all(pose.keypoints.shape == (5, 3) for pose in result)


def test_skeleton_is_in_the_file_metadata(five_model, tmp_path):
    import onnx

    path = tmp_path / "five.onnx"
    to_onnx(five_model, path, height=64, width=96, verify=False)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert Skeleton.from_dict(json.loads(props[SKELETON_KEY])) == FIVE
    # OpenVINO reading the .onnx finds it (rt_info "framework"), and so does an IR saved with a skeleton
    assert OpenVINOBackend(path).skeleton == FIVE
    xml = tmp_path / "five.xml"
    save_openvino(ov.Core().read_model(random_onnx_bytes(), b""), xml, skeleton=FIVE)
    assert ov.Core().read_model(str(xml)).has_rt_info(SKELETON_KEY)
    assert open_exported(xml).skeleton == FIVE


def test_published_layout_files_and_files_without_a_skeleton(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(random_onnx_bytes())
    assert OnnxRuntimeBackend(path).skeleton == OPENPOSE_COCO  # random_model() has the published skeleton
    proto = onnx.load_from_string(random_onnx_bytes())
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(proto.SerializeToString())
    assert OnnxRuntimeBackend(bare).skeleton is None and OpenVINOBackend(bare).skeleton is None
    assert PoseEstimator.from_pretrained(bare).skeleton == OPENPOSE_COCO
    entry = proto.metadata_props.add()
    entry.key, entry.value = SKELETON_KEY, json.dumps({"name": "broken"})
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=r"broken\.onnx.*not a valid skeleton.*re-export it"):
        OnnxRuntimeBackend(broken)
    with pytest.raises(ValueError, match=r"broken\.onnx.*not a valid skeleton"):
        OpenVINOBackend(broken)


def test_cli_exports_a_custom_skeleton_checkpoint(five_model, tmp_path, capsys):
    checkpoint = tmp_path / "five.pth"
    torch.save({"state_dict": five_model.state_dict(), "skeleton": FIVE.to_dict()}, checkpoint)
    output = tmp_path / "five.xml"
    argv = ["--format", "openvino", "--checkpoint", str(checkpoint), "--output", str(output), "-q"]
    assert run_cli("export", [*argv, "--height", "64", "--width", "96"]) == 0
    assert capsys.readouterr().out == ""  # -q: no status line
    assert PoseEstimator.from_pretrained(output, height=64).skeleton == FIVE
