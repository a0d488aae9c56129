"""PoseEstimator: image -> preprocess -> backend -> decode -> poses in image pixels."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union, overload

import cv2
import numpy as np
import torch
from torch import nn

from lightpose.backends import Backend, make_backend
from lightpose.decode import decode_maps, entries_to_poses
from lightpose.skeleton import STRIDE
from lightpose.pose import Pose
from lightpose.preprocess import InputTransform, check_image, prepare_input

ImageInput = Union[np.ndarray, str, os.PathLike]  # noqa: UP007 (a runtime alias on Python 3.10)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3); FileNotFoundError/ValueError naming the file otherwise."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory, not a file: pass an image file")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"could not decode {path} as an image (is it a JPEG/PNG/BMP/... file?)")
    return image


class PoseEstimator:
    """Multi-person 2D pose estimation with Lightweight OpenPose.

    `est(image)` takes a BGR uint8 (H, W, 3) image or an image path and returns a list of `Pose` with keypoints in
    pixels of that image; `est([img1, img2])` returns one list per image. Network input height is `height`
    (the demo's 256); maps are upsampled by `upsample` (4) before decoding, as the reference demo does.
    """

    def __init__(
        self,
        model: nn.Module | Backend,
        *,
        device: str | torch.device | None = None,
        height: int = 256,
        upsample: int = 4,
        backend: str = "torch",
        precision: str = "fp32",
    ) -> None:
        if height < STRIDE or height % STRIDE:
            raise ValueError(f"height must be a positive multiple of {STRIDE}, got {height}")
        if upsample < 1:
            raise ValueError(f"upsample must be >= 1, got {upsample}")
        if isinstance(model, nn.Module):
            self.backend: Backend = make_backend(model, backend, device=device, precision=precision)
        elif (backend, precision) != ("torch", "fp32"):
            raise ValueError("backend/precision apply to a torch model; a ready Backend object is used as given")
        else:
            self.backend = model
        self.height = height
        self.upsample = upsample

    @classmethod
    def from_pretrained(
        cls,
        name_or_path_or_url: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        height: int = 256,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        progress: bool = True,
        backend: str = "torch",
        precision: str = "fp32",
    ) -> PoseEstimator:
        """Build an estimator from a registered weights name (default: the published COCO model), a local
        checkpoint path or an http(s) URL; downloads are cached and verified (see `lightpose.weights`).

        backend: "torch", "onnxruntime" or "openvino" (extras `lightpose[onnx]`, `lightpose[openvino]`);
        precision: "fp32", "bf16" or "fp16" where the backend and hardware support it (see `lightpose.backends`)."""
        from lightpose.weights import load_model

        model, _ = load_model(
            name_or_path_or_url, cache_dir=cache_dir, local_files_only=local_files_only, progress=progress
        )
        return cls(model, device=device, height=height, backend=backend, precision=precision)

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Last-stage maps of a prepared (N, 3, H, W) float32 batch: heatmaps (N, 19, H/8, W/8), PAFs (N, 38, ...)."""
        return self.backend(batch)

    def infer_maps(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray, InputTransform]:
        """Last-stage network outputs for one image: heatmaps (19, h, w), PAFs (38, h, w) float32 at stride 8
        of the network input, and the InputTransform back to image pixels."""
        inputs, transform = prepare_input(self._load(image), self.height)
        heatmaps, pafs = self.backend(inputs[None])
        return heatmaps[0], pafs[0], transform

    def decode(self, heatmaps: np.ndarray, pafs: np.ndarray, transform: InputTransform) -> list[Pose]:
        """Poses in image pixels from one image's stride-8 heatmaps (19, h, w) and PAFs (38, h, w)."""
        entries, keypoints = decode_maps(heatmaps, pafs, self.upsample)
        keypoints = keypoints.copy()
        keypoints[:, :2] = transform.to_image(keypoints[:, :2] * STRIDE / self.upsample)
        return entries_to_poses(entries, keypoints)

    @overload
    def __call__(self, images: ImageInput, *, batch_size: int = ...) -> list[Pose]: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, images: Sequence[ImageInput], *, batch_size: int = ...) -> list[list[Pose]]: ...

    def __call__(
        self, images: ImageInput | Sequence[ImageInput], *, batch_size: int = 8
    ) -> list[Pose] | list[list[Pose]]:
        """Poses of one image (a list of Pose) or of a sequence of images (a list of lists).

        Images of the same network-input size share a forward pass, `batch_size` at a time; results are the
        same as one image at a time.
        """
        if isinstance(images, (np.ndarray, str, os.PathLike)):
            return self.decode(*self.infer_maps(images))
        if not isinstance(images, Sequence):
            raise TypeError(
                "expected a BGR uint8 image (numpy array), an image path, or a list of them; "
                f"got {type(images).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prepared = [prepare_input(self._load(image), self.height) for image in images]
        results: list[list[Pose]] = [[] for _ in prepared]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, (_, transform) in enumerate(prepared):
            by_size.setdefault(transform.input_size, []).append(index)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                heatmaps, pafs = self.backend(np.stack([prepared[i][0] for i in chunk]))
                for row, index in enumerate(chunk):
                    results[index] = self.decode(heatmaps[row], pafs[row], prepared[index][1])
        return results

    def stream(
        self,
        source: int | str | os.PathLike | Sequence[str | os.PathLike],
        *,
        track: bool = True,
        smooth: bool | None = None,
    ) -> Iterator[tuple[np.ndarray, list[Pose]]]:
        """(BGR frame, poses) for each frame of a webcam index, video file, stream URL, image, folder or list of
        images, with tracked ids and One-Euro smoothing (see `lightpose.streaming.stream`)."""
        from lightpose.streaming import stream

        return stream(self, source, track=track, smooth=smooth)

    @staticmethod
    def _load(image: ImageInput) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        return check_image(image)
