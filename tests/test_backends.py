"""Backends agree with torch fp32 within stated tolerances (relative to the largest |output|, about 50 here); the
"auto" choice, descriptions, exported files as models, and device checks.

fp32 backends (onnxruntime, OpenVINO f32, torch with BN folded or channels_last): max abs difference <= 2e-5 of
the output range (float32 rounding of different convolution algorithms). bf16 (torch autocast, OpenVINO bf16):
bf16 keeps 8 mantissa bits, so max abs difference <= 5% of the range and mean abs difference <= 0.5%.
"""

import sys

import numpy as np
import pytest
import torch

import lightpose.backends as backends_module
from exported import random_onnx_bytes, write_random_onnx
from lightpose.backends import (
    OnnxRuntimeBackend,
    OpenVINOBackend,
    TorchBackend,
    cpu_supports_bf16,
    make_backend,
    open_exported,
    resolve_device,
)
from lightpose.errors import DeviceError
from lightpose.estimator import PoseEstimator
from random_model import random_input, random_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
ov = pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'lightpose[openvino]'")

FP32_TOL = 2e-5
BF16_MAX_TOL, BF16_MEAN_TOL = 0.05, 0.005
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    return write_random_onnx(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def data():
    return random_input(batch=2, height=64, width=96)


@pytest.fixture(scope="module")
def expected(model, data):
    return TorchBackend(model, "cpu")(data)


def differences(outputs, expected):
    scale = max(float(np.abs(e).max()) for e in expected)
    assert scale > 1.0  # the random model's maps are not trivially small
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape and out.dtype == np.float32
    worst = max(float(np.abs(o - e).max()) for o, e in zip(outputs, expected)) / scale
    mean = max(float(np.abs(o - e).mean()) for o, e in zip(outputs, expected)) / scale
    return worst, mean


def test_onnxruntime_fp32_matches_torch(onnx_file, data, expected):
    backend = OnnxRuntimeBackend(onnx_file)
    assert backend.provider == "CPUExecutionProvider"
    assert backend.description == "onnxruntime fp32 (CPUExecutionProvider)"
    assert differences(backend(data), expected)[0] <= FP32_TOL


def test_onnxruntime_warns_when_cuda_falls_back_to_cpu(onnx_file):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has CUDA here: no fallback to observe")
    with pytest.warns(RuntimeWarning, match="runs on CPUExecutionProvider, not CUDAExecutionProvider"):
        backend = OnnxRuntimeBackend(onnx_file, device="cuda")
    assert backend.provider == "CPUExecutionProvider"


def test_openvino_fp32_matches_torch(onnx_file, data, expected):
    backend = OpenVINOBackend(onnx_file, precision="fp32")
    assert backend.description == "openvino fp32 (CPU)" and not backend.int8
    assert differences(backend(data), expected)[0] <= FP32_TOL
    assert differences(backend(data[:1]), [e[:1] for e in expected])[0] <= FP32_TOL  # a second shape, compiled


@needs_bf16
def test_openvino_bf16_is_close(onnx_file, data, expected):
    worst, mean = differences(OpenVINOBackend(onnx_file, precision="bf16")(data), expected)
    assert worst <= BF16_MAX_TOL and mean <= BF16_MEAN_TOL
    assert worst > FP32_TOL  # it really computed in bf16


def test_torch_folded_batchnorm_and_channels_last_match(model, data, expected):
    folded = TorchBackend(model, "cpu", fold_bn=True, channels_last=True)
    assert folded.description == "torch fp32, BN folded, channels_last (cpu)"
    assert differences(folded(data), expected)[0] <= FP32_TOL
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.model.modules())


@needs_bf16
def test_torch_bf16_is_close(model, data, expected):
    backend = make_backend(model, "torch", device="cpu", precision="bf16")
    assert backend.fold_bn and backend.channels_last
    worst, mean = differences(backend(data), expected)
    assert worst <= BF16_MAX_TOL and mean <= BF16_MEAN_TOL
    assert worst > FP32_TOL


def test_auto_is_openvino_on_cpu_else_folded_torch(model, data, expected, monkeypatch):
    auto = make_backend(model, device="cpu")
    assert auto.name == "openvino" and auto.description == "openvino fp32 (CPU)"
    assert differences(auto(data), expected)[0] <= FP32_TOL
    monkeypatch.setattr(backends_module, "openvino_installed", lambda: False)
    fallback = make_backend(model, "auto", device="cpu")
    assert fallback.name == "torch" and fallback.description == "torch fp32, BN folded, channels_last (cpu)"
    assert differences(fallback(data), expected)[0] <= FP32_TOL
    exact = make_backend(model, "torch", device="cpu")  # bit-exact reference path: one argument away
    assert exact.description == "torch fp32 (cpu)"
    np.testing.assert_array_equal(exact(data)[0], expected[0])


def test_exported_files_open_by_suffix(model, onnx_file, data, expected, tmp_path):
    from lightpose.export import save_openvino

    onnx_backend = open_exported(onnx_file)
    assert onnx_backend.name == "onnxruntime"
    assert make_backend(str(onnx_file)).name == "onnxruntime"  # auto: the suffix decides
    assert open_exported(onnx_file, backend="openvino").name == "openvino"
    xml = tmp_path / "model.xml"
    save_openvino(ov.Core().read_model(random_onnx_bytes(), b""), xml)
    xml_backend = open_exported(xml)
    assert xml_backend.description == "openvino fp32 (CPU)"
    for backend in (onnx_backend, xml_backend):  # any input size the estimator prepares, any batch
        assert differences(backend(data), expected)[0] <= FP32_TOL
        small = random_input(batch=1, height=48, width=136, seed=4)
        assert differences(backend(small), TorchBackend(model, "cpu")(small))[0] <= FP32_TOL


def test_exported_file_errors_say_what_to_do(onnx_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        open_exported(tmp_path / "missing.onnx")
    lone_xml = tmp_path / "lone.xml"
    lone_xml.write_text("<net/>")
    with pytest.raises(FileNotFoundError, match=r"no weights file lone\.bin beside it"):
        open_exported(lone_xml)
    checkpoint = tmp_path / "weights.pth"
    checkpoint.write_bytes(b"x")
    with pytest.raises(ValueError, match="must end in .onnx or .xml"):
        open_exported(checkpoint)
    lone_xml.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ValueError, match="onnxruntime cannot run it; use backend='openvino'"):
        open_exported(lone_xml, backend="onnxruntime")


def test_fixed_size_onnx_runs_only_its_size(tmp_path, data):
    import onnx

    proto = onnx.load_from_string(random_onnx_bytes())
    for axis, value in zip(proto.graph.input[0].type.tensor_type.shape.dim, (1, 3, 64, 96)):
        axis.dim_value = value
    path = tmp_path / "fixed.onnx"
    onnx.save(proto, str(path))
    backend = open_exported(path)
    heatmaps, _ = backend(data)  # a fixed batch of 1 runs a batch one image at a time
    assert heatmaps.shape == (2, 19, 8, 12)
    with pytest.raises(ValueError, match=r"fixed input height 64 \(got 48\).*re-export it with `lightpose export`"):
        backend(random_input(batch=1, height=48, width=96))
    assert open_exported(path, backend="openvino")(random_input(1, 48, 96))[0].shape == (1, 19, 6, 12)


@pytest.mark.parametrize("device", ["mps", "xla", "meta", "cuda:7", "nonsense", "npu"])
def test_unusable_devices_are_refused_before_the_model_changes(model, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    if device == "mps" and "mps" in backends_module.available_devices():
        pytest.skip("this machine has MPS")
    caller = random_model(seed=1).train()
    before = {k: v.clone() for k, v in caller.state_dict().items()}
    with pytest.raises(DeviceError, match=r"this machine has: cpu.*pass one of them") as error:
        PoseEstimator(caller, device=device, backend="torch")
    assert isinstance(error.value, ValueError)
    assert caller.training and all(p.device.type == "cpu" for p in caller.parameters())
    assert all(torch.equal(before[k], v) for k, v in caller.state_dict().items())


def test_torch_backend_works_on_a_copy(model):
    caller = random_model(seed=1).train()
    backend = TorchBackend(caller, "cpu")
    assert caller.training and backend.model is not caller and not backend.model.training
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_choices_are_refused(model, onnx_file, tmp_path):
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
        TorchBackend(model, "cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        make_backend(model, "torch", precision="int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        make_backend(model, "tensorrt")
    with pytest.raises(ValueError, match="onnxruntime backend runs fp32 only"):
        OnnxRuntimeBackend(onnx_file, precision="bf16")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        OpenVINOBackend(tmp_path / "missing.xml")
    with pytest.raises(DeviceError, match="OpenVINO device 'NPU' is not available; OpenVINO has: CPU"):
        OpenVINOBackend(onnx_file, device="npu")
    with pytest.raises(DeviceError, match="onnxruntime device must be 'cpu' or 'cuda'"):
        OnnxRuntimeBackend(onnx_file, device="mps")
    with pytest.raises(TypeError, match="needs a torch model"):
        make_backend(str(onnx_file), "torch")


@pytest.mark.parametrize(
    ("module", "backend", "extra"), [("onnxruntime", "onnxruntime", "onnx"), ("openvino", "openvino", "openvino")]
)
def test_missing_extra_names_it(monkeypatch, onnx_file, module, backend, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"pip install 'lightpose\[{extra}\]'"):
        make_backend(str(onnx_file), backend)


def test_estimator_runs_torch_and_exported_models(model, onnx_file):
    from lightpose.preprocess import prepare_input

    image = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    batch = prepare_input(image, 64)[0][None]
    torch_est = PoseEstimator(model, device="cpu", height=64, backend="torch")
    ort_est = PoseEstimator(open_exported(onnx_file), height=64)
    assert ort_est.description == "onnxruntime fp32 (CPUExecutionProvider)"
    assert differences(ort_est.run_network(batch), torch_est.run_network(batch))[0] <= FP32_TOL


def test_openvino_leaves_a_large_alternate_signal_stack() -> None:
    """OpenVINO installs an 11.5 KB alternate signal stack; torch's SIGCHLD handler for DataLoader workers runs on
    it and overflowed it (exit 139). After an OpenVINO backend compiles and runs, the stack is >= 64 KiB."""
    import ctypes

    pytest.importorskip("openvino")
    if not sys.platform.startswith("linux"):
        pytest.skip("sigaltstack is checked on Linux")

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    backend = OpenVINOBackend(random_model())
    backend(random_input(1, 64, 64))
    current = StackT()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(current)) == 0
    assert current.ss_flags & 2 or current.ss_size >= 64 * 1024  # disabled, or large enough
