"""The files `lightpose predict` and `lightpose-demo` write, all through `lightpose.io`'s atomic writes: a kill never
leaves a half file under a final name; an interrupted video keeps what was written so far (a playable video and
valid JSON Lines, one `PoseResult.to_dict()` per line)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

from lightpose.errors import UsageError
from lightpose.io import atomic_path, atomic_write, clean_stale_temps, write_image, write_json
from lightpose.pose import PoseResult

VIDEO_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
DEFAULT_FPS = 15.0


class Sink(Protocol):
    """Where results go: `write(result, annotated)` per frame (annotated: the drawn BGR image, or None when no
    drawn output is wanted), `close()` finalises."""

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InputOutputs:
    """The files of one input: `annotated` (image or video; None with --no-save) and `data` (.json for an image,
    .jsonl for a video)."""

    annotated: Path | None
    data: Path

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.annotated, self.data) if p is not None]

    def exists(self) -> bool:
        return any(p.exists() for p in self.paths)

    def complete(self, announced_frames: int | None = None) -> bool:
        """Every file is there, and a video's JSON Lines hold at least the frames its container announced."""
        if not all(p.exists() for p in self.paths):
            return False
        return announced_frames is None or count_lines(self.data) >= announced_frames


def count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def check_not_inputs(outputs: Sequence[Path], inputs: Sequence[Path], option: str) -> None:
    """UsageError when an output would replace an input (nothing has been written yet)."""
    resolved = {p.resolve() for p in inputs}
    for path in outputs:
        if path.resolve() in resolved:
            raise UsageError(f"{option}: writing {path} would replace the input {path}: choose another {option}")


def clean_stale(folder: Path) -> int:
    """Remove files killed writers left in `folder` (see `lightpose.io.clean_stale_temps`); returns how many."""
    return len(clean_stale_temps(folder))


def write_image_file(path: Path, image: np.ndarray) -> None:
    """Encode by the suffix (.jpg when it is not an image format OpenCV writes) and write atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image, suffix=path.suffix if cv2.haveImageWriter(f"x{path.suffix}") else ".jpg")


class ImageOutputs:
    """An image's annotated copy, then its `<name>.json` (`PoseResult.to_dict()`), each written atomically; the JSON
    last, so its presence means the input is done."""

    def __init__(self, paths: InputOutputs) -> None:
        self.paths = paths

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        if self.paths.annotated is not None and annotated is not None:
            write_image_file(self.paths.annotated, annotated)
        write_json(self.paths.data, result.to_dict(), allow_nan=False)

    def close(self) -> None:
        """Nothing to finalise: each image is written when it is done."""


class StreamOutputs:
    """An annotated video (frames of another size are resized to the first frame's) and JSON Lines (one
    `PoseResult.to_dict()` per frame, flushed per frame), under temporary names until `close`."""

    def __init__(self, video: Path | None, jsonl: Path | None, fps: float | None) -> None:
        if video is not None and video.suffix.lower() not in VIDEO_FOURCC:
            raise UsageError(f"{video}: a video file needs one of the suffixes {', '.join(VIDEO_FOURCC)}")
        self.video, self.jsonl, self.fps = video, jsonl, fps or DEFAULT_FPS
        self._stack = contextlib.ExitStack()
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)
        self._lines: IO[str] | None = None
        self.frames = 0

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        if self.jsonl is not None:
            if self._lines is None:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                self._lines = self._stack.enter_context(atomic_write(self.jsonl))
            self._lines.write(result.to_json() + "\n")
            self._lines.flush()
        if self.video is not None and annotated is not None:
            self._write_frame(self.video, annotated)
        self.frames += 1

    def _write_frame(self, path: Path, image: np.ndarray) -> None:
        if self._writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = self._stack.enter_context(atomic_path(path, suffix=path.suffix))
            height, width = image.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC[path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(temp), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV could not open a video writer for {path}: is its FFMPEG backend installed?")
            self._stack.callback(self._writer.release)  # runs before the rename
            self._size = (width, height)
        if image.shape[1::-1] != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)

    def close(self) -> None:
        """Finish the files and move them into place (also after an interruption: nothing written is lost)."""
        self._stack.close()


class FolderOutputs:
    """lightpose-demo's --output FOLDER: annotated images under their names relative to the inputs' common
    folder (`names` maps a source to it), video frames as frame_NNNNNN.jpg."""

    def __init__(self, folder: Path, names: dict[str, str]) -> None:
        self.folder, self.names = folder, names

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        if annotated is None:
            return
        if result.frame is None and isinstance(result.source, str) and result.source in self.names:
            name = self.names[result.source]
        else:
            name = f"frame_{result.frame or 0:06d}.jpg"
        write_image_file(self.folder / name, annotated)

    def close(self) -> None:
        """Nothing to finalise: each image is written when it is done."""


class Tee:
    """Several sinks as one."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def write(self, result: PoseResult, annotated: np.ndarray | None) -> None:
        for sink in self.sinks:
            sink.write(result, annotated)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
