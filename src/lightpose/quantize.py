"""INT8 post-training quantization of the network with OpenVINO and NNCF.

`quantize(model, calibration)` returns an INT8 `openvino.Model` (save it with `lightpose.export.save_openvino`);
`PoseEstimator.from_pretrained("model_int8.xml")` runs the file. Calibration inputs are prepared network inputs
(`lightpose.preprocess.prepare_input`) of images like the ones the model will see.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from lightpose._signal_stack import widen as widen_signal_stack
from lightpose.agreement import Agreement, agreement
from lightpose.backends import Backend
from lightpose.io import list_images, read_image
from lightpose.model_metadata import model_skeleton
from lightpose.pose import Pose
from lightpose.preprocess import prepare_input
from lightpose.skeleton import Skeleton

PRESETS = ("performance", "mixed")
BIAS_CORRECTIONS = ("fast", "full")


@dataclass(frozen=True)
class QuantizeOptions:
    """What NNCF is asked to do.

    preset: "mixed" (symmetric weights, asymmetric activations: fits the ELU/residual outputs that are not
    non-negative) or "performance" (all symmetric). keep_edges_float: leave the first convolution and the last
    convolution of each output head in floating point (default; the best agreement for the same speed in
    benchmarks/bench.py). bias_correction: "fast" or "full" (slower, per-layer).
    subset_size: calibration inputs used (at most the number given).
    """

    preset: str = "mixed"
    keep_edges_float: bool = True
    bias_correction: str = "fast"
    subset_size: int = 300

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise ValueError(f"bias_correction must be one of {BIAS_CORRECTIONS}, got {self.bias_correction!r}")
        if self.subset_size < 1:
            raise ValueError(f"subset_size must be >= 1, got {self.subset_size}")


def load_nncf() -> Any:
    try:
        import nncf
        import openvino  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "INT8 quantization needs OpenVINO and NNCF: pip install 'lightpose[openvino]' (or pip install nncf)"
        ) from error
    return nncf


def calibration_inputs(images: Iterable[str | os.PathLike | np.ndarray], height: int = 256) -> list[np.ndarray]:
    """Prepared network inputs (1, 3, H, W) float32 of images (paths or BGR uint8 arrays) at network height."""
    inputs = []
    for image in images:
        array = read_image(image) if isinstance(image, (str, os.PathLike)) else image
        inputs.append(prepare_input(array, height)[0][None])
    if not inputs:
        raise ValueError("no calibration images: pass a folder or list with at least one image")
    return inputs


def split_folder(folder: str | os.PathLike, held_out: float = 0.25) -> tuple[list[Path], list[Path]]:
    """The images of `folder` as (calibration, validation): every k-th image (k = round(1 / held_out)) is held out."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be between 0 and 1, got {held_out}")
    images = list_images([folder])
    if len(images) < 2:
        raise ValueError(f"{folder} has {len(images)} image(s); calibration with held-out validation needs 2 or more")
    step = max(2, round(1.0 / held_out))
    validation = images[step - 1 :: step] or images[-1:]  # fewer than k images: hold out the last one
    return [p for p in images if p not in validation], validation


def _float_model(model: nn.Module | Any, height: int, width: int) -> Any:
    """An openvino.Model: converted from a torch model (via ONNX), or the given one."""
    if not isinstance(model, nn.Module):
        return model
    import openvino as ov

    from lightpose.export import onnx_model_bytes

    return ov.Core().read_model(onnx_model_bytes(model, height=height, width=width), b"")


def edge_convolutions(ov_model: Any) -> list[str]:
    """Names of the first convolution and of the last convolution of each output head (the nodes producing
    `heatmaps` and `pafs`)."""
    convolutions = [op for op in ov_model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    if not convolutions:
        raise ValueError("the model has no Convolution nodes: is it a Lightweight OpenPose network?")
    names = [convolutions[0].get_friendly_name()]
    for output in ov_model.outputs:
        node = output.get_node().input_value(0).get_node()
        while node.get_type_name() != "Convolution" and node.get_input_size() > 0:
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Convolution":
            names.append(node.get_friendly_name())
    return names


def quantize(
    model: nn.Module | Any,
    calibration: Sequence[np.ndarray],
    options: QuantizeOptions | None = None,
    *,
    export_size: tuple[int, int] = (256, 456),
) -> Any:
    """An INT8 openvino.Model of `model` (a torch model or an fp32 openvino.Model) calibrated on `calibration`
    ((1, 3, H, W) float32 inputs; sizes may differ). The input keeps dynamic batch, height and width."""
    nncf = load_nncf()
    options = options or QuantizeOptions()
    if not calibration:
        raise ValueError("no calibration inputs: pass at least one prepared image")
    ov_model = _float_model(model, *export_size)
    ignored = nncf.IgnoredScope(names=edge_convolutions(ov_model)) if options.keep_edges_float else None
    quantized = nncf.quantize(
        ov_model,
        nncf.Dataset(list(calibration)),
        preset=nncf.QuantizationPreset(options.preset),
        subset_size=min(options.subset_size, len(calibration)),
        fast_bias_correction=options.bias_correction == "fast",
        ignored_scope=ignored,
    )
    widen_signal_stack()  # NNCF ran OpenVINO on this thread
    return quantized


def quantize_with_accuracy_control(
    model: nn.Module | Any,
    calibration: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    metric: Callable[[Any, list[int]], float],
    *,
    max_drop: float = 0.02,
    max_iterations: int = 8,
    options: QuantizeOptions | None = None,
    export_size: tuple[int, int] = (256, 456),
) -> Any:
    """Like `quantize`, then NNCF returns the most harmful layers to float (a group per iteration, at most
    `max_iterations`) until the metric drops by at most `max_drop` from the float model's.
    `metric(compiled_model, indices)` scores a compiled model on the validation inputs `validation[i] for i in
    indices` (higher is better, e.g. mean OKS to fp32 poses)."""
    nncf = load_nncf()
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    options = options or QuantizeOptions()
    if not calibration or not validation:
        raise ValueError("quantization with accuracy control needs calibration and validation inputs")
    ov_model = _float_model(model, *export_size)
    ignored = nncf.IgnoredScope(names=edge_convolutions(ov_model)) if options.keep_edges_float else None

    def validate(compiled: Any, indices: Iterable[int]) -> float:
        return metric(compiled, list(indices))

    quantized = nncf.quantize_with_accuracy_control(
        ov_model,
        nncf.Dataset(list(calibration)),
        nncf.Dataset(list(range(len(validation))), lambda index: validation[index]),
        validation_fn=validate,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset(options.preset),
        subset_size=min(options.subset_size, len(calibration)),
        fast_bias_correction=options.bias_correction == "fast",
        ignored_scope=ignored,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=max_iterations),
    )
    widen_signal_stack()  # NNCF ran OpenVINO on this thread
    return quantized


class _Compiled:
    """A compiled openvino model as a Backend (what NNCF hands to a validation function)."""

    name = "openvino"
    description = "openvino compiled model (CPU)"

    def __init__(self, compiled: Any, skeleton: Skeleton | None) -> None:
        self.compiled = compiled
        self.skeleton = skeleton  # the quantized network's, so its maps are decoded with its own layout

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.compiled({0: np.ascontiguousarray(batch, np.float32)})
        heatmaps, pafs = (np.asarray(result[self.compiled.output(name)]) for name in ("heatmaps", "pafs"))
        return heatmaps, pafs


class ValidationSet:
    """Held-out images and their torch fp32 poses (the reference); scores other runners by pose agreement.

    images: paths or BGR uint8 arrays; height: network input height. `inputs` are the prepared (1, 3, H, W) inputs
    in the same order.
    """

    def __init__(self, model: nn.Module, images: Sequence[str | os.PathLike | np.ndarray], height: int = 256) -> None:
        from lightpose.backends import TorchBackend

        self.images = [read_image(i) if isinstance(i, (str, os.PathLike)) else i for i in images]
        if not self.images:
            raise ValueError("no validation images: pass a folder or list with at least one image")
        self.height = height
        self.skeleton = model_skeleton(model)
        self.inputs = calibration_inputs(self.images, height)
        self.reference = self.poses(TorchBackend(model, "cpu"))

    def poses(self, backend: Backend, indices: Sequence[int] | None = None) -> list[list[Pose]]:
        """Poses `backend` finds in the images (all, or those at `indices`)."""
        from lightpose.estimator import PoseEstimator

        estimator = PoseEstimator(backend, height=self.height)
        chosen = range(len(self.images)) if indices is None else indices
        return [list(estimator(self.images[i])) for i in chosen]

    def compare(self, backend: Backend, indices: Sequence[int] | None = None) -> Agreement:
        """Agreement of `backend`'s poses with the fp32 poses (all images, or those at `indices`)."""
        chosen = list(range(len(self.images)) if indices is None else indices)
        return agreement([self.reference[i] for i in chosen], self.poses(backend, chosen))

    def metric(self, compiled: Any, indices: Sequence[int]) -> float:
        """Mean OKS to the fp32 poses of a compiled openvino model on the images at `indices`."""
        return self.compare(_Compiled(compiled, self.skeleton), indices).mean_oks


class HeldOutLabels:
    """COCO keypoint labels of held-out images, checked up front; `ap(backend)` scores a runner on them.

    AP is the judge of INT8 accuracy (mean OKS to fp32 poses says little on a weak model). `labels` is a COCO
    keypoints file naming images by file name; only the held-out `images` it annotates are scored. ValueError
    when it annotates none of them, or when they lie in more than one folder.
    """

    def __init__(self, labels: str | os.PathLike, images: Sequence[str | os.PathLike]) -> None:
        from lightpose.training.evaluate import load_keypoint_annotations

        data = load_keypoint_annotations(labels)
        wanted = {Path(p).name: Path(p) for p in images}
        chosen = [image for image in data["images"] if Path(image["file_name"]).name in wanted]
        if not chosen:
            raise ValueError(f"{labels} annotates none of the {len(wanted)} held-out images (matched by file name)")
        folders = {wanted[Path(image["file_name"]).name].parent for image in chosen}
        if len(folders) != 1:
            raise ValueError(f"the held-out images lie in {len(folders)} folders; AP needs them in one")
        (self.folder,) = folders
        ids = {image["id"] for image in chosen}
        self.subset = {
            **data,
            "images": [{**image, "file_name": Path(image["file_name"]).name} for image in chosen],
            "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
        }
        self.images = len(chosen)

    def ap(self, backend: Backend, height: int = 368) -> dict[str, float]:
        """`lightpose eval`'s numbers (AP, APm, APl, ...; single scale at `height`) of `backend` on the images."""
        import json
        import tempfile

        from lightpose.estimator import PoseEstimator
        from lightpose.training.evaluate import evaluate_coco

        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "held_out.json"
            path.write_text(json.dumps(self.subset), encoding="utf-8")
            return evaluate_coco(PoseEstimator(backend), path, self.folder, progress=False, height=height)
