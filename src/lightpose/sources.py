"""Frames from a webcam, a video file or stream URL, image files and folders of images."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from lightpose.estimator import read_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})

SourceSpec = Union[int, str, os.PathLike, Sequence[Union[str, os.PathLike]], "FrameSource"]  # noqa: UP007


class SourceError(OSError):
    """A frame source that exists (or was named) but could not be opened or read."""


@dataclass(frozen=True)
class Frame:
    """One input frame.

    image: BGR uint8 (H, W, 3). index: 0-based frame number. timestamp: seconds from the start of the source
    (position in a video file, wall-clock time for cameras and streams, None for image files).
    path: the image file the frame came from (None for video).
    """

    index: int
    image: np.ndarray
    timestamp: float | None
    path: Path | None = None


class FrameSource:
    """Iterable of `Frame`s (single pass) with a display `name`, `length` (None when unknown) and `fps`
    (None when unknown); use as a context manager or call `close()`."""

    name: str = ""
    length: int | None = None
    fps: float | None = None
    live: bool = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class VideoSource(FrameSource):
    """Frames read by OpenCV from a camera index, a video file or a stream URL (rtsp://, http://, ...)."""

    def __init__(self, target: int | str | os.PathLike) -> None:
        self.live = isinstance(target, int) or "://" in str(target)
        if isinstance(target, int):
            self.name = f"camera {target}"
            hint = "is a camera connected, free and readable by this user (e.g. /dev/video*)?"
        elif self.live:
            self.name = str(target)
            hint = "check the URL and that the stream is up"
        else:
            self.name = str(target)
            hint = "is it a video file OpenCV's FFMPEG backend can read?"
        self._capture = cv2.VideoCapture(target if isinstance(target, int) else str(target))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"could not open video source {self.name}: {hint}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps > 0 else None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 and not self.live else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        start = time.monotonic()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            timestamp = time.monotonic() - start if self.live or self.fps is None else index / self.fps
            yield Frame(index, image, timestamp)
            index += 1

    def close(self) -> None:
        self._capture.release()


class ImageSource(FrameSource):
    """Frames from a list of image files, read one at a time."""

    def __init__(self, paths: Sequence[Path], name: str | None = None) -> None:
        if not paths:
            raise ValueError("no image files to read")
        self.paths = list(paths)
        self.length = len(self.paths)
        self.name = name or (str(self.paths[0]) if len(self.paths) == 1 else f"{len(self.paths)} images")

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            yield Frame(index, read_image(path), None, path)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the file name has an image suffix (.jpg, .png, ...)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files named by `paths`: files as given, folders expanded to their images sorted by name.

    Raises FileNotFoundError for a missing path and ValueError for a non-image file or a folder without images.
    """
    files: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {item}")
            files.extend(found)
        elif not item.exists():
            raise FileNotFoundError(f"image file or folder not found: {item}")
        elif not is_image_file(item):
            raise ValueError(f"{item} is not an image file (known suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            files.append(item)
    return files


def open_source(source: SourceSpec) -> FrameSource:
    """A FrameSource for a camera index (0 or "0"), a stream URL, a video file, an image file, a folder of
    images, or a list of image files and folders. A FrameSource is returned as is.

    Raises FileNotFoundError for a missing path, SourceError for a video or camera OpenCV cannot open.
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, bool):
        raise TypeError("source must be a camera index, a path, a URL or a list of image paths, not a bool")
    if isinstance(source, int):
        return VideoSource(source)
    if isinstance(source, str) and source.strip().isdigit():
        return VideoSource(int(source))
    if isinstance(source, str) and "://" in source:
        return VideoSource(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return ImageSource(image_files([path]), name=str(path))
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path} (give a video file, image, folder or camera index)")
        return ImageSource([path]) if is_image_file(path) else VideoSource(path)
    if isinstance(source, Sequence):
        return ImageSource(image_files(source))
    raise TypeError(f"unsupported source type {type(source).__name__}: give a camera index, a path or a URL")
