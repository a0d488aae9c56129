"""Backends agree with torch fp32 within stated tolerances (relative to the largest |output|, about 50 here).

fp32 backends (onnxruntime, OpenVINO f32, torch with BN folded or channels_last): max abs difference <= 2e-5 of
the output range (float32 rounding of different convolution algorithms). bf16 (torch autocast, OpenVINO bf16):
bf16 keeps 8 mantissa bits, so max abs difference <= 5% of the range and mean abs difference <= 0.5%.
"""

import sys

import numpy as np
import pytest
import torch

from lightpose.backends import OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, cpu_supports_bf16, make_backend
from lightpose.estimator import PoseEstimator
from lightpose.export import onnx_model_bytes
from random_model import random_input, random_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'lightpose[onnx]'")
pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'lightpose[openvino]'")

FP32_TOL = 2e-5
BF16_MAX_TOL, BF16_MEAN_TOL = 0.05, 0.005
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(onnx_model_bytes(model, height=64, width=96))
    return path


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
    assert differences(backend(data), expected)[0] <= FP32_TOL
    assert differences(backend(data[:1]), [e[:1] for e in expected])[0] <= FP32_TOL  # a second shape, compiled


@needs_bf16
def test_openvino_bf16_is_close(onnx_file, data, expected):
    worst, mean = differences(OpenVINOBackend(onnx_file, precision="bf16")(data), expected)
    assert worst <= BF16_MAX_TOL and mean <= BF16_MEAN_TOL
    assert worst > FP32_TOL  # it really computed in bf16


def test_torch_folded_batchnorm_and_channels_last_match(model, data, expected):
    folded = TorchBackend(model, "cpu", fold_bn=True, channels_last=True)
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
    with pytest.raises(ValueError, match="OpenVINO device 'NPU' is not available"):
        OpenVINOBackend(onnx_file, device="npu")
    with pytest.raises(TypeError, match="needs a torch model"):
        make_backend(str(onnx_file), "torch")


@pytest.mark.parametrize(
    ("module", "backend", "extra"), [("onnxruntime", "onnxruntime", "onnx"), ("openvino", "openvino", "openvino")]
)
def test_missing_extra_names_it(monkeypatch, onnx_file, module, backend, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"pip install 'lightpose\[{extra}\]'"):
        make_backend(str(onnx_file), backend)


def test_estimator_takes_backend_and_precision(model):
    image = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    torch_est = PoseEstimator(model, device="cpu", height=64)
    ort_est = PoseEstimator(model, device="cpu", height=64, backend="onnxruntime")
    assert ort_est.backend.name == "onnxruntime"
    hm_t, paf_t, _ = torch_est.infer_maps(image)
    hm_o, paf_o, _ = ort_est.infer_maps(image)
    assert differences((hm_o, paf_o), (hm_t, paf_t))[0] <= FP32_TOL
    with pytest.raises(ValueError, match="backend/precision apply to a torch model"):
        PoseEstimator(ort_est.backend, backend="openvino")
