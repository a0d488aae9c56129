"""Export the network to ONNX or OpenVINO IR: input `data` (N, 3, H, W) float32 -> last-stage `heatmaps`, `pafs`.

Batch, height and width are dynamic (H and W multiples of 8). The network's skeleton is stored in the file as JSON
(`Skeleton.to_dict()`) under the key `lightpose.skeleton`: ONNX `metadata_props`, OpenVINO `rt_info`. Files are
written to a temporary name in the target folder and renamed into place, so an interrupted export leaves no partial
file.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightpose._signal_stack import widen as widen_signal_stack
from lightpose.io import atomic_path, atomic_write
from lightpose.model_metadata import model_skeleton, write_onnx_skeleton, write_openvino_skeleton
from lightpose.skeleton import STRIDE, Skeleton

INPUT_NAME = "data"
OUTPUT_NAMES = ("heatmaps", "pafs")
MIN_OPSET = 17
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}


class LastStage(nn.Module):
    """Wraps a LightweightOpenPose-style model: forward returns only the last (heatmaps, pafs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(data)
        return outputs[-2], outputs[-1]


def _check_size(height: int, width: int) -> None:
    if height < STRIDE or width < STRIDE or height % STRIDE or width % STRIDE:
        raise ValueError(f"height and width must be positive multiples of {STRIDE}, got {height}x{width}")


def _onnx_bytes(model: nn.Module, height: int, width: int, opset: int, dynamo: bool) -> bytes:
    """Export an eval copy of `model` to self-contained ONNX bytes (TorchScript exporter unless `dynamo`)."""
    import onnx

    wrapper = LastStage(copy.deepcopy(model).cpu().float()).eval()
    example = torch.zeros(1, 3, height, width)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not broken
        file = Path(folder) / "model.onnx"
        names: dict[str, Any] = {
            "input_names": [INPUT_NAME],
            "output_names": list(OUTPUT_NAMES),
            "opset_version": opset,
        }
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
            torch.onnx.export(
                wrapper, (example,), str(file), dynamo=True, verbose=False, dynamic_shapes={"data": dims}, **names
            )
        else:
            axes = {0: "batch", 2: "height", 3: "width"}
            out_axes = {0: "batch", 2: "map_height", 3: "map_width"}
            dynamic_axes = {INPUT_NAME: axes, **{name: out_axes for name in OUTPUT_NAMES}}
            torch.onnx.export(wrapper, (example,), str(file), dynamo=False, dynamic_axes=dynamic_axes, **names)
        proto = onnx.load(str(file))
    write_onnx_skeleton(proto, model_skeleton(model))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_model_bytes(
    model: nn.Module, *, height: int = 256, width: int = 456, opset: int = 18, dynamo: bool = False
) -> bytes:
    """The network as ONNX bytes (opset >= 17) with dynamic batch, height and width; traced at (height, width).
    The model's `skeleton` is stored in `metadata_props` under SKELETON_KEY.

    `dynamo` selects torch's newer exporter (same graph, several times slower to export).
    """
    _check_size(height, width)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx extra: pip install 'lightpose[onnx]'") from error
    return _onnx_bytes(model, height, width, opset, dynamo)


def verify_against_torch(
    model: nn.Module,
    run: Callable[[np.ndarray], Sequence[np.ndarray]],
    sizes: tuple[tuple[int, int], ...],
    atol: float,
    what: str,
) -> float:
    """Run `run` (N, 3, H, W) -> (heatmaps, pafs) against torch fp32 at each (H, W); return the max abs difference.

    Raises RuntimeError naming `what` when it exceeds `atol`.
    """
    reference = copy.deepcopy(model).cpu().float().eval()
    worst = 0.0
    rng = np.random.default_rng(0)
    for height, width in sizes:
        data = rng.uniform(-0.5, 0.5, (1, 3, height, width)).astype(np.float32)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(data))
        for out, ref in zip(run(data), expected[-2:]):
            if np.shape(out) != tuple(ref.shape):
                raise RuntimeError(f"exported {what} model gives shape {np.shape(out)}, torch {tuple(ref.shape)}")
            worst = max(worst, float(np.abs(np.asarray(out) - ref.numpy()).max()))
    if worst > atol:
        raise RuntimeError(f"exported {what} model differs from torch by {worst:.3g} (> {atol}); not written")
    return worst


def verify_onnx(
    model: nn.Module, onnx_bytes: bytes, sizes: tuple[tuple[int, int], ...] = ((64, 96),), atol: float = 1e-3
) -> float:
    """Run the ONNX model in onnxruntime (CPU) against torch fp32 at each (H, W); return the max abs difference."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return verify_against_torch(
        model, lambda data: session.run(list(OUTPUT_NAMES), {INPUT_NAME: data}), sizes, atol, "ONNX"
    )


def verify_openvino(
    model: nn.Module, ov_model: Any, sizes: tuple[tuple[int, int], ...] = ((64, 96),), atol: float = 1e-3
) -> float:
    """Run an openvino.Model on CPU in f32 against torch fp32 at each (H, W); return the max abs difference."""
    import openvino as ov

    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    widen_signal_stack()  # OpenVINO left a small alternate signal stack on this thread

    def run(data: np.ndarray) -> list[np.ndarray]:
        result = compiled({INPUT_NAME: data})
        return [result[compiled.output(name)] for name in OUTPUT_NAMES]

    return verify_against_torch(model, run, sizes, atol, "OpenVINO")


def _check_sizes(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """The export size and a second one, to check that height and width really are dynamic."""
    return ((height, width), (max(STRIDE, height // 2 // STRIDE * STRIDE), width + 2 * STRIDE))


def check_output(path: str | os.PathLike, format: str) -> Path:
    """`path` as a Path when its suffix fits `format` ("onnx": .onnx, "openvino": .xml) and its folder exists;
    ValueError / FileNotFoundError otherwise, before any work is done."""
    if format not in SUFFIXES:
        raise ValueError(f"format must be one of {tuple(SUFFIXES)}, got {format!r}")
    target = Path(path)
    if target.suffix.lower() != SUFFIXES[format]:
        raise ValueError(
            f"output {target} does not end in {SUFFIXES[format]}, the suffix of the {format} format: "
            f"name it *{SUFFIXES[format]}" + (" (the weights go beside it as .bin)" if format == "openvino" else "")
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {target.parent}: create it first")
    return target


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    height: int = 256,
    width: int = 456,
    opset: int = 18,
    verify: bool = True,
) -> float | None:
    """Write the network as an ONNX file (`path` ends in .onnx; atomically) with dynamic batch/height/width.

    With `verify`, the file is first run in onnxruntime at two input sizes against torch fp32; returns that max
    abs difference of the maps (None without verify).
    """
    target = check_output(path, "onnx")
    data = onnx_model_bytes(model, height=height, width=width, opset=opset)
    worst = verify_onnx(model, data, _check_sizes(height, width)) if verify else None
    with atomic_write(target, "wb") as file:
        file.write(data)
    return worst


def save_openvino(
    ov_model: Any, path: str | os.PathLike, *, skeleton: Skeleton | None = None, compress_to_fp16: bool = False
) -> None:
    """Write an openvino.Model as IR: `path` (.xml) and its weights beside it (.bin), each atomically (.bin first,
    so a new .xml never meets an old .bin). A `skeleton` is stored in the model's rt_info under SKELETON_KEY
    (set on `ov_model` too)."""
    import openvino as ov

    target = check_output(path, "openvino")
    write_openvino_skeleton(ov_model, skeleton)
    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "model.xml"
        ov.save_model(ov_model, str(xml), compress_to_fp16=compress_to_fp16)
        for written, final in ((xml.with_suffix(".bin"), target.with_suffix(".bin")), (xml, target)):
            with atomic_path(final) as temp:
                shutil.copyfile(written, temp)


def to_openvino(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    height: int = 256,
    width: int = 456,
    opset: int = 18,
    compress_to_fp16: bool = False,
    verify: bool = True,
) -> float | None:
    """Write the network as OpenVINO IR: `path` (.xml) and the weights beside it (.bin), dynamic batch/H/W.

    Converted from the ONNX export; weights stay fp32 unless `compress_to_fp16`; the model's `skeleton` is stored in
    rt_info under SKELETON_KEY. With `verify`, the model is first
    run by OpenVINO (CPU, f32) at two input sizes against torch fp32; returns that max abs difference.
    """
    try:
        import openvino as ov
    except ImportError as error:
        raise ImportError("OpenVINO export needs the openvino extra: pip install 'lightpose[openvino]'") from error
    check_output(path, "openvino")
    ov_model = ov.Core().read_model(onnx_model_bytes(model, height=height, width=width, opset=opset), b"")
    worst = verify_openvino(model, ov_model, _check_sizes(height, width)) if verify else None
    save_openvino(ov_model, path, skeleton=model_skeleton(model), compress_to_fp16=compress_to_fp16)
    return worst
