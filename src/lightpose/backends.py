"""Network runners behind one interface: (N, 3, H, W) float32 input -> last-stage heatmaps and PAFs.

`make_backend(model, backend="auto"|"torch"|"onnxruntime"|"openvino", precision="fp32"|"bf16"|"fp16")` builds one
for a torch model, `open_exported(path)` for an exported .onnx/.xml file. Every runner returns float32 numpy
arrays whatever precision it computes in, and has a `description` such as "openvino fp32 (CPU)".
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

from lightpose._signal_stack import widen as widen_signal_stack
from lightpose.errors import DeviceError
from lightpose.model import fold_batchnorm
from lightpose.model_metadata import model_skeleton, read_onnx_skeleton, read_openvino_skeleton
from lightpose.skeleton import Skeleton

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")
EXPORTED_SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino"}


class Backend(Protocol):
    """Runs the network: batch float32 (N, 3, H, W) -> (heatmaps (N, 19, H/8, W/8), PAFs (N, 38, H/8, W/8)).

    `description` says in a few words what runs where, e.g. "openvino fp32 (CPU)", for a program's start line.
    """

    name: str
    description: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def available_devices() -> list[str]:
    """The torch devices this machine can run on: "cpu", then "cuda:N" for each GPU, "mps" where present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` -> CUDA when available, else CPU; otherwise the named device, checked to work on this machine
    (a tensor is created on it) before anything is moved there. DeviceError (a ValueError) names what this
    machine has otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    have = f"this machine has: {', '.join(available_devices())}"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"unknown device {str(device)!r}; {have}: pass one of them") from error
    if resolved.type == "meta":
        raise DeviceError(f"device 'meta' holds no data and cannot run a network; {have}: pass one of them")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"device {str(device)!r} does not exist; {have}: pass one of them")
    try:
        torch.empty(1, device=resolved)
    except (RuntimeError, AssertionError, AttributeError, ImportError) as error:
        raise DeviceError(f"device {str(device)!r} is not usable here ({error}); {have}: pass one of them") from error
    return resolved


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}: pass one of them")
    return precision


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic for oneDNN (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def openvino_installed() -> bool:
    """Whether the OpenVINO runtime can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class TorchBackend:
    """PyTorch eager runner of a LightweightOpenPose-style model (eval mode, no autograd) on a copy of the model:
    the caller's model is never moved or changed.

    precision "fp32" (default; reference-exact maps), "bf16" (autocast; CPUs with native bf16, or CUDA) or "fp16"
    (CUDA autocast). `fold_bn` folds BatchNorm into the convolutions (default: on for bf16/fp16); `channels_last`
    uses NHWC memory (default: on for bf16/fp16). `per_image` runs a batch one image at a time (default: on CPU),
    so batched maps equal single-image maps bit for bit: for N > 1 oneDNN picks other convolution algorithms
    (about 1e-6 of the output range apart), and batching gives no speed-up on CPU (benchmarks/bench.py).
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
        model = copy.deepcopy(model).eval()
        if self.fold_bn:
            model = fold_batchnorm(model)  # type: ignore[arg-type]
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        details = [precision] + ["BN folded"] * self.fold_bn + ["channels_last"] * self.channels_last
        self.description = f"torch {', '.join(details)} ({self.device})"
        self.skeleton = model_skeleton(model)

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


def _model_file(path: str | os.PathLike) -> Path:
    """An exported model file that exists (with its .bin beside an OpenVINO .xml)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}: pass a torch model or an exported .onnx/.xml file")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise FileNotFoundError(
            f"{path} has no weights file {path.with_suffix('.bin').name} beside it: copy the .bin next to the .xml"
        )
    return path


def _onnx_source(model: nn.Module | str | os.PathLike, height: int, width: int) -> bytes | str:
    """An ONNX file path, or the ONNX bytes of a torch model exported at (height, width) (dynamic shapes)."""
    if isinstance(model, nn.Module):
        from lightpose.export import onnx_model_bytes

        return onnx_model_bytes(model, height=height, width=width)
    return str(_model_file(model))


def _map_outputs(names: list[str], where: str) -> list[str]:
    """The names of the heatmap and PAF outputs: "heatmaps" and "pafs", else the last two outputs (the reference
    exporter's order: ..., last-stage heatmaps, last-stage PAFs)."""
    if "heatmaps" in names and "pafs" in names:
        return ["heatmaps", "pafs"]
    if len(names) < 2:
        raise ValueError(f"{where} has outputs {names}; expected heatmaps and PAFs: export it with `lightpose export`")
    return names[-2:]


def _check_input_size(expected: list[Any], shape: tuple[int, ...], where: str) -> None:
    """ValueError when a fixed input height/width of an exported model differs from the batch's."""
    fixed = [(axis, dim) for axis, dim in zip(("height", "width"), expected[2:]) if isinstance(dim, int)]
    wrong = [f"{axis} {dim} (got {shape[2 + i]})" for i, (axis, dim) in enumerate(fixed) if dim != shape[2 + i]]
    if wrong:
        raise ValueError(
            f"{where} takes a fixed input {', '.join(wrong)}, but the estimator prepared {shape[2]}x{shape[3]}: "
            "re-export it with `lightpose export` (dynamic height and width), or use backend='openvino', which "
            "reshapes any convolutional model"
        )


class OnnxRuntimeBackend:
    """onnxruntime runner (fp32) of a torch model (exported on the fly) or an exported .onnx file.

    device "cpu" or "cuda" (CUDAExecutionProvider, falling back to CPU with a warning). `provider` is the execution
    provider that actually runs. A file with a fixed batch of 1 runs batches one image at a time; a fixed
    height/width must match the input (ValueError otherwise). `skeleton` is the one the file stores (None: the
    published layout).
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
            raise DeviceError(f"onnxruntime device must be 'cpu' or 'cuda', got {str(device)!r}: pass one of them")
        wanted = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if device_type == "cuda" else ["CPUExecutionProvider"]
        )
        available = ort.get_available_providers()
        providers = [p for p in wanted if p in available]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.source = "a torch model" if isinstance(model, nn.Module) else str(model)
        self.session = ort.InferenceSession(_onnx_source(model, *export_size), options, providers=providers)
        self.provider: str = self.session.get_providers()[0]
        if self.provider != wanted[0]:
            warnings.warn(
                f"onnxruntime runs on {self.provider}, not {wanted[0]} (available: {available})",
                RuntimeWarning,
                stacklevel=2,
            )
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{self.source} does not take one (N, 3, H, W) input: export it with `lightpose export`")
        self.input_name: str = inputs[0].name
        self.input_shape: list[Any] = list(inputs[0].shape)
        self.outputs = _map_outputs([o.name for o in self.session.get_outputs()], self.source)
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.skeleton: Skeleton | None = read_onnx_skeleton(metadata, self.source)
        self.description = f"onnxruntime fp32 ({self.provider})"

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, np.float32)
        _check_input_size(self.input_shape, batch.shape, self.source)
        if self.input_shape[0] == 1 and len(batch) > 1:
            outputs = [self(batch[i : i + 1]) for i in range(len(batch))]
            return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])
        heatmaps, pafs = self.session.run(self.outputs, {self.input_name: batch})
        return heatmaps, pafs


class OpenVINOBackend:
    """OpenVINO runner of a torch model (through ONNX), an openvino.Model or an exported .onnx/.xml file (INT8 IRs
    from `lightpose quantize` included), on `device` (default CPU).

    precision sets INFERENCE_PRECISION_HINT for the floating-point layers: "fp32" (f32), "bf16" (needs a CPU with
    bf16) or "fp16"; the layers of an INT8 model run in int8 whatever it is. One compiled model per input shape
    is kept (static shapes run faster than dynamic ones; any convolutional model reshapes). `config` adds or
    overrides OpenVINO properties (default: PERFORMANCE_HINT LATENCY). `skeleton` is the one the model stores
    (None: the published layout).
    """

    name = "openvino"
    _HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}

    def __init__(
        self,
        model: nn.Module | str | os.PathLike | Any,
        device: str | torch.device | None = "cpu",
        precision: str = "fp32",
        *,
        export_size: tuple[int, int] = (256, 456),
        config: dict[str, Any] | None = None,
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
            raise DeviceError(
                f"OpenVINO device {self.device!r} is not available; OpenVINO has: "
                f"{', '.join(self.core.available_devices)}: pass one of them"
            )
        capabilities = self.core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")
        if precision != "fp32" and precision.upper() not in capabilities:
            raise ValueError(
                f"OpenVINO {self.device} does not support {precision} (capabilities: {capabilities}): use fp32"
            )
        if isinstance(model, ov.Model):
            self.model = model
        else:
            source = _onnx_source(model, *export_size)
            self.model = (
                self.core.read_model(source, b"") if isinstance(source, bytes) else self.core.read_model(source)
            )
        where = str(model) if isinstance(model, (str, os.PathLike)) else "the OpenVINO model"
        self.skeleton: Skeleton | None = read_openvino_skeleton(self.model, where)
        self.outputs = _map_outputs([o.get_any_name() for o in self.model.outputs], "the OpenVINO model")
        self.int8 = any(op.get_type_name() == "FakeQuantize" for op in self.model.get_ops())
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self._HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            **(config or {}),
        }
        self._compiled: dict[tuple[int, ...], Any] = {}
        kind = ("int8" + ("" if precision == "fp32" else f" + {precision}")) if self.int8 else precision
        self.description = f"openvino {kind} ({self.device})"
        widen_signal_stack()  # reading or checking the model may have compiled on this thread

    def compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for one static input shape (N, 3, H, W), cached (the last 4 shapes)."""
        compiled = self._compiled.get(shape)
        if compiled is None:
            static = self.model.clone()
            static.reshape({static.inputs[0].get_any_name(): list(shape)})
            compiled = self.core.compile_model(static, self.device, self.config)
            widen_signal_stack()  # OpenVINO left a small alternate signal stack on this thread
            if len(self._compiled) >= 4:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[shape] = compiled
        return compiled

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        compiled = self.compiled_for(batch.shape)
        result = compiled({0: batch})
        heatmaps, pafs = (np.asarray(result[compiled.output(name)]) for name in self.outputs)
        return heatmaps, pafs


def auto_choice(device: str | torch.device | None = None) -> str:
    """What backend="auto" runs: "openvino" on CPU where OpenVINO is installed, else "torch"."""
    if resolve_device(device).type == "cpu" and openvino_installed():
        return "openvino"
    return "torch"


def make_backend(
    model: nn.Module | str | os.PathLike,
    backend: str = "auto",
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Backend:
    """A runner for `model`: a torch model, or an exported .onnx/.xml file (see `open_exported`).

    backend "auto" (default): OpenVINO on CPU where it is installed (fp32 agrees with torch fp32 within float
    rounding: about 3e-6 of the output range), else torch with BatchNorm folded and channels_last (also within
    float rounding; faster than plain eager and than torch.compile on CPU, benchmarks/bench.py);
    "torch" with precision "fp32" is the bit-exact reference path. The runner's `description` says what runs.
    """
    check_precision(precision)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}: pass one of them")
    if not isinstance(model, nn.Module):
        chosen = None if backend == "auto" else backend
        if chosen == "torch":
            raise TypeError(f"backend='torch' needs a torch model, got {type(model).__name__}: use backend='auto'")
        return open_exported(model, device=device, precision=precision, backend=chosen)
    if backend == "auto":
        if auto_choice(device) == "openvino":
            return OpenVINOBackend(model, "cpu", precision)
        return TorchBackend(model, device, precision, fold_bn=True, channels_last=True)
    if backend == "torch":
        return TorchBackend(model, device, precision)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(model, "cpu" if device is None else device, precision)
    return OpenVINOBackend(model, "cpu" if device is None else device, precision)


def open_exported(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    backend: str | None = None,
) -> Backend:
    """A runner for an exported model file: `.onnx` -> onnxruntime, `.xml` (OpenVINO IR, INT8 included) ->
    OpenVINO; `backend="openvino"` also runs an .onnx file. Any input size the estimator prepares works with
    files from `lightpose export` / `lightpose quantize` (dynamic batch, height and width); OpenVINO reshapes
    fixed-size files too, onnxruntime refuses a fixed height/width that differs (ValueError). The runner's
    `skeleton` is the one the file stores (None: the published layout), which PoseEstimator decodes with."""
    file = _model_file(path)
    suffix = file.suffix.lower()
    if suffix not in EXPORTED_SUFFIXES:
        raise ValueError(
            f"{file}: an exported model must end in {' or '.join(EXPORTED_SUFFIXES)}; for a checkpoint (.pth) use "
            "lightpose.weights.load_model"
        )
    chosen = backend or EXPORTED_SUFFIXES[suffix]
    if chosen == "onnxruntime" and suffix == ".xml":
        raise ValueError(f"{file} is an OpenVINO IR: onnxruntime cannot run it; use backend='openvino'")
    if chosen == "onnxruntime":
        return OnnxRuntimeBackend(file, "cpu" if device is None else device, precision)
    if chosen == "openvino":
        return OpenVINOBackend(file, "cpu" if device is None else device, precision)
    raise ValueError(f"an exported model runs with backend 'onnxruntime' or 'openvino', got {chosen!r}")
