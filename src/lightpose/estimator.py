"""PoseEstimator: image -> preprocess -> backend -> decode -> PoseResult in image pixels, and the one stream."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union, overload

import numpy as np
import torch
from torch import nn

from lightpose import pipeline
from lightpose.backends import EXPORTED_SUFFIXES, Backend, make_backend, open_exported
from lightpose.decode import decode_maps, entries_to_poses
from lightpose.io import is_url
from lightpose.pipeline import Inferred, Prepared, prepare_frame
from lightpose.pose import Pose, PoseResult
from lightpose.preprocess import InputTransform, check_height
from lightpose.skeleton import OPENPOSE_COCO, STRIDE, Skeleton
from lightpose.sources import Frame, FrameSource, ImageSource, SourceSpec, load_frame, open_source
from lightpose.tracker import Tracker, make_tracker

ImageInput = Union[np.ndarray, str, os.PathLike]  # noqa: UP007 (a runtime alias on Python 3.10)


class PoseEstimator:
    """Multi-person 2D pose estimation with Lightweight OpenPose.

    `est(image)` takes a BGR uint8 (H, W, 3) image, an image path or an http(s) image URL and returns a
    `PoseResult` (a sequence of `Pose`, keypoints in pixels of that image); `est([img1, img2])` returns one
    PoseResult per image; `est.stream(source)` yields one per frame of a camera, video, stream, folder or glob.
    Network input height is `height` (the demo's 256); maps are upsampled by `upsample` (4) before decoding, as
    the reference demo does. Build one with `PoseEstimator.from_pretrained(...)`, or from a network you made.
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
        skeleton: Skeleton | None = None,
    ) -> None:
        if model is None or isinstance(model, (str, os.PathLike)):
            raise TypeError(
                f"PoseEstimator() takes a network (a torch nn.Module) or a Backend, got {model!r}: to load weights "
                "by name, path or URL use PoseEstimator.from_pretrained(...)"
            )
        self.height = check_height(height)
        if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
            raise ValueError(f"upsample must be an int >= 1, got {upsample!r}")
        self.upsample = upsample
        if isinstance(model, nn.Module):
            self._runtime: Backend = make_backend(model, backend, device=device, precision=precision)
        elif not callable(model):
            raise TypeError(f"PoseEstimator() takes a torch nn.Module or a Backend, got {type(model).__name__}")
        elif (backend, precision) != ("torch", "fp32"):
            raise ValueError("backend and precision apply to a torch model; a ready Backend object is used as given")
        else:
            self._runtime = model
        self.skeleton: Skeleton = skeleton or getattr(model, "skeleton", None) or OPENPOSE_COCO

    @property
    def backend(self) -> str:
        """The backend's name: "torch", "onnxruntime" or "openvino"."""
        return str(getattr(self._runtime, "name", type(self._runtime).__name__))

    @property
    def description(self) -> str:
        """What runs the network, in words (e.g. "openvino fp32 (CPU)"), for logs and start lines."""
        return str(getattr(self._runtime, "description", self.backend))

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
        checkpoint path, an http(s) URL, or an exported model file (`.onnx`, OpenVINO `.xml` from `lightpose
        export` / `lightpose quantize`); downloads are cached and verified.

        backend: "torch" (default: reference-exact), "onnxruntime", "openvino" or "auto" (OpenVINO where
        installed, else torch with BatchNorm folded); extras `lightpose[onnx]`, `lightpose[openvino]`. For an
        exported file the backend follows its suffix. precision: "fp32", "bf16" or "fp16" where the backend and
        hardware support it."""
        from lightpose.weights import load_model

        height = check_height(height)
        exported = isinstance(name_or_path_or_url, (str, os.PathLike)) and not is_url(name_or_path_or_url)
        if exported and Path(name_or_path_or_url).suffix.lower() in EXPORTED_SUFFIXES:  # type: ignore[arg-type]
            chosen = None if backend in ("auto", "torch") else backend
            runtime = open_exported(name_or_path_or_url, device=device, precision=precision, backend=chosen)  # type: ignore[arg-type]
            return cls(runtime, height=height)
        model, _ = load_model(
            name_or_path_or_url, cache_dir=cache_dir, local_files_only=local_files_only, progress=progress
        )
        return cls(model, device=device, height=height, backend=backend, precision=precision)

    # -- the stages ---------------------------------------------------------------------------------------------

    def prepare(self, frame: Frame) -> Prepared:
        """Resize, normalise and pad one frame for the network (stage 1)."""
        return prepare_frame(frame, self.height)

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Last-stage maps of a prepared (N, 3, H, W) float32 batch: heatmaps (N, C, H/8, W/8), PAFs (N, 2L, ...)."""
        return self._runtime(batch)

    def _infer(self, batch: list[Prepared]) -> list[Inferred]:
        start = time.perf_counter()
        heatmaps, pafs = self.run_network(np.stack([item.inputs for item in batch]))
        per_image = (time.perf_counter() - start) * 1e3 / len(batch)
        return [Inferred(item, heatmaps[i], pafs[i], per_image) for i, item in enumerate(batch)]

    def infer_maps(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray, InputTransform]:
        """One image's last-stage maps: heatmaps (K + 1, h, w) and PAFs (2 L, h, w) float32 at stride 8 of the
        network input, and the InputTransform back to image pixels (for `decode`)."""
        inferred = self._infer([self.prepare(load_frame(0, image))])[0]
        return inferred.heatmaps, inferred.pafs, inferred.prepared.transform

    def decode(self, heatmaps: np.ndarray, pafs: np.ndarray, transform: InputTransform) -> list[Pose]:
        """Poses in image pixels from one image's stride-8 heatmaps (K + 1, h, w) and PAFs (2 L, h, w)
        (`infer_maps`), decoded reference-exactly with this estimator's skeleton."""
        entries, keypoints = decode_maps(heatmaps, pafs, self.upsample, skeleton=self.skeleton)
        keypoints = keypoints.copy()
        keypoints[:, :2] = transform.to_image(keypoints[:, :2] * STRIDE / self.upsample)
        return entries_to_poses(entries, keypoints, skeleton=self.skeleton)

    def _finisher(self, tracker: Tracker | None, conf: float, min_keypoints: int) -> Any:
        def finish(inferred: Inferred) -> PoseResult:
            prepared, frame = inferred.prepared, inferred.prepared.frame
            start = time.perf_counter()
            poses = self.decode(inferred.heatmaps, inferred.pafs, prepared.transform)
            poses = [p for p in poses if p.score >= conf and p.num_keypoints >= min_keypoints]
            decoded = time.perf_counter()
            if tracker is not None:
                poses = tracker.update(poses)
            speed = {
                "preprocess": prepared.preprocess_ms,
                "network": inferred.network_ms,
                "decode": (decoded - start) * 1e3,
                "tracking": (time.perf_counter() - decoded) * 1e3,
            }
            h, w = frame.image.shape[:2]
            return PoseResult(
                tuple(poses), w, h, frame.source, frame.index if frame.is_video else None, frame.timestamp,
                speed, frame.image, self.skeleton,
            )  # fmt: skip

        return finish

    # -- the public calls ---------------------------------------------------------------------------------------

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, images: ImageInput, *, batch_size: int = ..., conf: float = ..., min_keypoints: int = ...
    ) -> PoseResult: ...

    @overload
    def __call__(
        self, images: Sequence[ImageInput], *, batch_size: int = ..., conf: float = ..., min_keypoints: int = ...
    ) -> list[PoseResult]: ...

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        batch_size: int = 8,
        conf: float = 0.0,
        min_keypoints: int = 0,
    ) -> PoseResult | list[PoseResult]:
        """The PoseResult of one image, or a list of them for a sequence of images.

        Images of the same network-input size share a forward pass, `batch_size` at a time; results are the
        same as one image at a time. Poses scoring under `conf` or with fewer than `min_keypoints` keypoints are
        dropped.
        """
        _check_filters(batch_size, conf, min_keypoints)
        finish = self._finisher(None, conf, min_keypoints)
        if isinstance(images, (np.ndarray, str, os.PathLike)):
            return finish(self._infer([self.prepare(load_frame(0, images))])[0])
        if not isinstance(images, Sequence):
            raise TypeError(
                "expected a BGR uint8 image (numpy array), an image path or URL, or a list of them; "
                f"got {type(images).__name__}"
            )
        prepared = [self.prepare(load_frame(i, image)) for i, image in enumerate(images)]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(prepared):
            by_size.setdefault(item.transform.input_size, []).append(index)
        results: list[PoseResult | None] = [None] * len(prepared)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                for index, inferred in zip(chunk, self._infer([prepared[i] for i in chunk])):
                    results[index] = finish(inferred)
        return [r for r in results if r is not None]

    def stream(
        self,
        source: SourceSpec,
        *,
        track: bool | None = None,
        smooth: bool | None = None,
        tracker: str | Tracker = "motion",
        max_age: int | None = None,
        batch_size: int = 1,
        workers: int = 0,
        conf: float = 0.0,
        min_keypoints: int = 0,
        recursive: bool = False,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> Generator[PoseResult, None, None]:
        """One PoseResult per frame of a camera index, video file, stream URL, image (file or URL), folder, glob
        pattern, list of images, or `lightpose.sources.FrameSource`: THE pipeline every consumer uses.

        Reading and preparing the next frames, the network, and decoding run as overlapping stages. `track`
        (default: on for videos and streams, off for images) gives poses stable ids; `smooth` (default: on when
        tracking) One-Euro smooths tracked keypoints. `tracker` is "motion" (`lightpose.MotionTracker`: ids kept
        through misses, occlusions and crossings; a person unseen for more than `max_age` frames, default 30, gets
        a new id), "reference" (`lightpose.PoseTracker`, the reference demo's: ids kept only between consecutive
        frames) or a tracker object (its `update(poses)` gives the ids; `smooth` and `max_age` must then be
        None). `batch_size` frames of the same size share a forward pass;
        `workers` > 0 reads and prepares images in that many DataLoader worker processes. An image that cannot be
        read (missing, corrupt, not an image) raises, or with `on_error` is skipped after `on_error(name, error)`.
        """
        _check_filters(batch_size, conf, min_keypoints)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        frames = open_source(source, recursive=recursive)
        if track is None:
            track = not isinstance(frames, ImageSource)
        if smooth and not track:
            frames.close()
            raise ValueError("smoothing follows pose ids: pass track=True, or smooth=False")
        try:
            if isinstance(tracker, str):
                tracking = make_tracker(tracker, smooth=smooth is not False, max_age=max_age) if track else None
            elif smooth is not None or max_age is not None:
                raise ValueError("a tracker object has its own smoothing and memory: leave smooth and max_age None")
            else:
                tracking = tracker if track else None
        except ValueError:
            frames.close()
            raise
        return self._stream(frames, tracking, batch_size, workers, conf, min_keypoints, on_error)

    def _stream(
        self, frames: FrameSource, tracker: Tracker | None, batch_size: int, workers: int, conf: float,
        min_keypoints: int, on_error: Callable[[str, Exception], None] | None,
    ) -> Generator[PoseResult, None, None]:  # fmt: skip
        try:
            prepared = self._prepared(frames, workers, on_error)
            yield from pipeline.run(
                prepared, self._infer, self._finisher(tracker, conf, min_keypoints), batch_size=batch_size
            )
        finally:
            frames.close()

    def _prepared(
        self, frames: FrameSource, workers: int, on_error: Callable[[str, Exception], None] | None
    ) -> Iterable[Prepared]:
        if not isinstance(frames, ImageSource):
            return (self.prepare(frame) for frame in frames)
        images = _PreparedImages(frames.items, self.height, catch=on_error is not None)
        if workers == 0:
            return _skip_unreadable((images[i] for i in range(len(images))), on_error)
        from torch.utils.data import DataLoader

        loader = DataLoader(images, batch_size=None, num_workers=workers, collate_fn=_identity)  # type: ignore[arg-type]
        return _skip_unreadable(loader, on_error)


class _Unreadable(NamedTuple):
    name: str
    error: Exception


class _PreparedImages(torch.utils.data.Dataset):
    """Image items read and prepared (in DataLoader workers when there are any); with `catch`, an unreadable
    image gives an `_Unreadable` record instead of raising."""

    def __init__(self, items: list[Any], height: int, *, catch: bool) -> None:
        self.items, self.height, self.catch = items, height, catch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prepared | _Unreadable:
        start = time.perf_counter()
        item = self.items[index]
        try:
            frame = load_frame(index, item)
        except (OSError, ValueError) as error:
            if not self.catch:
                raise
            return _Unreadable("array" if isinstance(item, np.ndarray) else str(item), error)
        return prepare_frame(frame, self.height, start)


def _skip_unreadable(
    items: Iterable[Prepared | _Unreadable], on_error: Callable[[str, Exception], None] | None
) -> Iterator[Prepared]:
    for item in items:
        if isinstance(item, _Unreadable):
            if on_error is None:
                raise item.error
            on_error(item.name, item.error)
        else:
            yield item


def _identity(item: Prepared | _Unreadable) -> Prepared | _Unreadable:
    return item


def _check_filters(batch_size: int, conf: float, min_keypoints: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not np.isfinite(conf):
        raise ValueError(f"conf must be a finite number (minimum pose score), got {conf!r}")
    if isinstance(min_keypoints, bool) or not isinstance(min_keypoints, int) or min_keypoints < 0:
        raise ValueError(f"min_keypoints must be an int >= 0, got {min_keypoints!r}")


__all__ = ["ImageInput", "PoseEstimator"]
