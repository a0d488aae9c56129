"""Frames from a webcam, a video file or stream URL, image files, folders, glob patterns, URLs and arrays."""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from lightpose.errors import SourceError
from lightpose.io import is_image_file, is_url, list_images, read_image
from lightpose.preprocess import check_image

logger = logging.getLogger(__name__)

SourceSpec = Union[int, str, os.PathLike, Sequence[Union[str, os.PathLike, np.ndarray]], "FrameSource"]  # noqa: UP007


@dataclass(frozen=True)
class Frame:
    """One input frame.

    image: BGR uint8 (H, W, 3). index: 0-based frame number within its source. timestamp: seconds from the start
    of a video (position in a file, wall-clock time for cameras and streams), None for images.
    source: the image path or URL, the video path or URL, or the camera index; None for an array.
    """

    index: int
    image: np.ndarray
    timestamp: float | None
    source: str | int | None = None

    @property
    def is_video(self) -> bool:
        return self.timestamp is not None


class FrameSource:
    """Iterable of `Frame`s (single pass) with a display `name`, `length` (None when unknown), `fps` (None when
    unknown) and `live` (a camera or stream); use as a context manager or call `close()`."""

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
    """Frames read by OpenCV from a camera index, a video file or a stream URL (rtsp://, http://, ...).

    A file that ends before the frame count its container announced is reported with a warning (and
    `frames_read` / `length` tell by how much).
    """

    def __init__(self, target: int | str | os.PathLike) -> None:
        self.target: str | int = target if isinstance(target, int) else os.fspath(target)
        self.live = isinstance(target, int) or is_url(self.target)
        if isinstance(target, int):
            self.name = f"camera {target}"
            hint = "is a camera connected, free and readable by this user (e.g. /dev/video*)?"
        elif self.live:
            self.name = str(target)
            hint = "check the URL and that the stream is up"
        else:
            self.name = str(target)
            hint = "is it a video file OpenCV's FFMPEG backend can read?"
        self._capture = cv2.VideoCapture(self.target)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"could not open video source {self.name}: {hint}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 and not self.live else None
        self.frames_read = 0

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                break
            index = self.frames_read
            timestamp = time.monotonic() - start if self.live or self.fps is None else index / self.fps
            self.frames_read += 1
            yield Frame(index, image, timestamp, self.target)
        if self.length is not None and self.frames_read < self.length:
            logger.warning(
                "%s: read %d of the %d frames its container announces: the file is truncated or corrupt",
                self.name, self.frames_read, self.length,
            )  # fmt: skip
        elif self.frames_read == 0:
            logger.warning("%s: no frame could be read", self.name)

    def close(self) -> None:
        self._capture.release()


class ImageSource(FrameSource):
    """Frames from image files, http(s) image URLs and BGR arrays, read one at a time."""

    def __init__(self, items: Sequence[str | os.PathLike | np.ndarray], name: str | None = None) -> None:
        if not items:
            raise ValueError("no images to read: give at least one image file, folder, URL or array")
        self.items = list(items)
        self.length = len(self.items)
        first = self.items[0]
        single = "1 array" if isinstance(first, np.ndarray) else os.fspath(first)
        self.name = name or (single if len(self.items) == 1 else f"{len(self.items)} images")

    def __iter__(self) -> Iterator[Frame]:
        for index, item in enumerate(self.items):
            yield load_frame(index, item)


def load_frame(index: int, item: str | os.PathLike | np.ndarray) -> Frame:
    """Frame `index` of an image source: a path or URL read from disk or network, or a checked array."""
    if isinstance(item, np.ndarray):
        return Frame(index, check_image(item), None, None)
    source = item if is_url(item) else os.fspath(item)
    return Frame(index, read_image(source), None, str(source))


def open_source(source: SourceSpec, *, recursive: bool = False) -> FrameSource:
    """A FrameSource for a camera index (0 or "0"), a stream or image URL, a video file, an image file, a folder of
    images (sorted; `recursive` includes sub-folders), a glob pattern, or a list of image files, folders, URLs and
    BGR arrays. A FrameSource is returned as is.

    Raises FileNotFoundError for a missing path, SourceError for a video or camera OpenCV cannot open.
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, bool):
        raise TypeError("source must be a camera index, a path, a URL or a list of images, not a bool")
    if isinstance(source, int):
        return VideoSource(source)
    if isinstance(source, np.ndarray):
        return ImageSource([source])
    if isinstance(source, str) and source.strip().isdigit():
        return VideoSource(int(source))
    if is_url(source):
        return ImageSource([str(source)]) if is_image_file(str(source)) else VideoSource(str(source))
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text)
        if path.is_dir() or (glob.has_magic(text) and not path.exists()):
            return ImageSource(list_images([text], recursive=recursive), name=text)
        if not path.exists():
            raise FileNotFoundError(
                f"input not found: {path}: give a video file, image, folder, glob pattern, URL or camera index"
            )
        return ImageSource([path]) if is_image_file(path) else VideoSource(path)
    if isinstance(source, Sequence):
        items: list[str | os.PathLike | np.ndarray] = []
        for item in source:
            if isinstance(item, np.ndarray) or is_url(item):
                items.append(item)
            else:
                items.extend(list_images([item], recursive=recursive))
        return ImageSource(items)
    raise TypeError(f"unsupported source type {type(source).__name__}: give a camera index, a path or a URL")
