"""Network runners behind one interface: (N, 3, H, W) float32 input -> last-stage heatmaps and PAFs.

`make_backend(model, backend="torch"|"onnxruntime"|"openvino", precision="fp32"|"bf16"|"fp16")` builds one.
Every runner returns float32 numpy arrays whatever precision it computes in.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lightpose.model import fold_batchnorm

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")


class Backend(Protocol):
    """Runs the network: batch float32 (N, 3, H, W) -> (heatmaps (N, 19, H/8, W/8), PAFs (N, 38, H/8, W/8))."""

    name: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` -> CUDA when available, else CPU; otherwise the named device (checked to exist)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {str(device)!r}: use 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available; use device='cpu'")
    return resolved


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic for oneDNN (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class TorchBackend:
    """PyTorch eager runner of a LightweightOpenPose-style model (eval mode, no autograd).

    precision "fp32" (default; the model is used as given, for reference-exact maps), "bf16" (autocast; CPUs with
    native bf16, or CUDA) or "fp16" (CUDA autocast). `fold_bn` folds BatchNorm into the convolutions of a copy
    of the model (default: on for bf16/fp16); `channels_last` uses NHWC memory (default: on for bf16/fp16).
    `per_image` runs a batch one image at a time (default: on CPU), so batched maps equal single-image maps bit for
    bit: for N > 1 oneDNN picks other convolution algorithms (about 1e-6 of the output range apart), and batching
    gives no speed-up on CPU (benchmarks/bench.py).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        *,
        fold_bn: bool | None = None,
        channels_last: bool | None = None,
        per_image: bool | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.per_image = self.device.type == "cpu" if per_image is None else per_image
        self.precision = check_precision(precision)
        reduced = precision != "fp32"
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device for torch; on CPU use precision='bf16'")
        if precision == "bf16" and self.device.type == "cpu" and not cpu_supports_bf16():
            raise ValueError(
                "this CPU has no native bf16 (AVX512-BF16/AMX); use precision='fp32' or backend='openvino'"
            )
        self.fold_bn = reduced if fold_bn is None else fold_bn
        self.channels_last = reduced if channels_last is None else channels_last
        if self.fold_bn:
            model = fold_batchnorm(copy.deepcopy(model).eval())  # type: ignore[arg-type]
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.per_image and len(batch) > 1:
            outputs = [self._run(batch[i : i + 1]) for i in range(len(batch))]
            return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])
        return self._run(batch)

    @torch.inference_mode()
    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            outputs = self.model(inputs)
        return outputs[-2].float().cpu().numpy(), outputs[-1].float().cpu().numpy()


def _onnx_source(model: nn.Module | str | os.PathLike, height: int, width: int) -> bytes | str:
    """An ONNX file path, or the ONNX bytes of a torch model exported at (height, width) (dynamic shapes)."""
    if isinstance(model, nn.Module):
        from lightpose.export import onnx_model_bytes

        return onnx_model_bytes(model, height=height, width=width)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (pass a torch model or an exported .onnx/.xml file)")
    return str(path)


class OnnxRuntimeBackend:
    """onnxruntime runner (fp32) of a torch model (exported on the fly) or an exported .onnx file.

    device "cpu" or "cuda" (CUDAExecutionProvider, falling back to CPU with a warning). `provider` is the execution
    provider that actually runs.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        device: str | torch.device | None = "cpu",
        precision: str = "fp32",
        *,
        export_size: tuple[int, int] = (256, 456),
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise ImportError("backend='onnxruntime' needs the onnx extra: pip install 'lightpose[onnx]'") from error
        if check_precision(precision) != "fp32":
            raise ValueError(
                f"the onnxruntime backend runs fp32 only, got precision={precision!r}; "
                "use backend='openvino' or backend='torch' for bf16/fp16"
            )
        self.precision = precision
        device_type = "cpu" if device is None else str(device).split(":")[0].lower()
        if device_type not in ("cpu", "cuda"):
            raise ValueError(f"onnxruntime device must be 'cpu' or 'cuda', got {str(device)!r}")
        wanted = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if device_type == "cuda" else ["CPUExecutionProvider"]
        )
        available = ort.get_available_providers()
        providers = [p for p in wanted if p in available]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(_onnx_source(model, *export_size), options, providers=providers)
        self.provider: str = self.session.get_providers()[0]
        if self.provider != wanted[0]:
            warnings.warn(
                f"onnxruntime runs on {self.provider}, not {wanted[0]} (available: {available})",
                RuntimeWarning,
                stacklevel=2,
            )

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps, pafs = self.session.run(["heatmaps", "pafs"], {"data": np.ascontiguousarray(batch, np.float32)})
        return heatmaps, pafs


class OpenVINOBackend:
    """OpenVINO runner of a torch model (through ONNX) or an exported .onnx/.xml file, on `device` (default CPU).

    precision sets INFERENCE_PRECISION_HINT: "fp32" (f32), "bf16" (needs a CPU with bf16; OpenVINO's default
    there) or "fp16". One compiled model per input shape is kept (static shapes run faster than dynamic ones).
    """

    name = "openvino"
    _HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        device: str | torch.device | None = "cpu",
        precision: str = "fp32",
        *,
        export_size: tuple[int, int] = (256, 456),
    ) -> None:
        try:
            import openvino as ov
        except ImportError as error:
            raise ImportError(
                "backend='openvino' needs the openvino extra: pip install 'lightpose[openvino]'"
            ) from error
        self.precision = check_precision(precision)
        self.device = "CPU" if device is None else str(device).upper()
        self.core = ov.Core()
        if self.device not in self.core.available_devices:
            raise ValueError(f"OpenVINO device {self.device!r} is not available (have {self.core.available_devices})")
        capabilities = self.core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")
        if precision != "fp32" and precision.upper() not in capabilities:
            raise ValueError(f"OpenVINO {self.device} does not support {precision} (capabilities: {capabilities})")
        source = _onnx_source(model, *export_size)
        self.model = self.core.read_model(source, b"") if isinstance(source, bytes) else self.core.read_model(source)
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self._HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled: dict[tuple[int, ...], Any] = {}

    def compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for one static input shape (N, 3, H, W), cached (the last 4 shapes)."""
        compiled = self._compiled.get(shape)
        if compiled is None:
            static = self.model.clone()
            static.reshape({static.inputs[0].get_any_name(): list(shape)})
            compiled = self.core.compile_model(static, self.device, self.config)
            if len(self._compiled) >= 4:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[shape] = compiled
        return compiled

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        compiled = self.compiled_for(batch.shape)
        result = compiled({0: batch})
        return np.asarray(result[compiled.output("heatmaps")]), np.asarray(result[compiled.output("pafs")])


def make_backend(
    model: nn.Module | str | os.PathLike,
    backend: str = "torch",
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Backend:
    """A runner for `model` (a torch model; an exported .onnx/.xml file for onnxruntime/openvino)."""
    check_precision(precision)
    if backend == "torch":
        if not isinstance(model, nn.Module):
            raise TypeError(f"backend='torch' needs a torch model, got {type(model).__name__}")
        return TorchBackend(model, device, precision)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(model, "cpu" if device is None else device, precision)
    if backend == "openvino":
        return OpenVINOBackend(model, "cpu" if device is None else device, precision)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
