"""lightpose-demo's files: an annotated video or image folder and JSON Lines, written under temporary names and
moved into place on close (also after Ctrl-C), so nothing already processed is lost."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from lightpose.pose import Pose
from lightpose.sources import Frame

VIDEO_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


class DemoOutputs:
    """Writes each frame to the outputs that were asked for; a context manager that finalises them on exit.

    video: annotated video file (its suffix picks the codec, see VIDEO_FOURCC); frames of another size than the
    first are resized to it. folder: annotated images (an image keeps its file name, a video frame becomes
    frame_NNNNNN.jpg). json_path: JSON Lines, one `frame_record` per frame, flushed per frame.
    """

    def __init__(
        self, *, video: Path | None = None, folder: Path | None = None, json_path: Path | None = None, fps: float
    ) -> None:
        if video is not None and video.suffix.lower() not in VIDEO_FOURCC:
            raise ValueError(f"{video}: a video file needs one of the suffixes {', '.join(VIDEO_FOURCC)}")
        self.video, self.folder, self.json_path, self.fps = video, folder, json_path, fps
        self._writer: cv2.VideoWriter | None = None
        self._video_size: tuple[int, int] = (0, 0)
        self._json: IO[str] | None = None
        self._closed = False

    @property
    def paths(self) -> list[Path]:
        """The outputs, in the order video, folder, JSON."""
        return [p for p in (self.video, self.folder, self.json_path) if p is not None]

    def __enter__(self) -> DemoOutputs:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        if self.json_path is not None:
            self._json = open(partial_name(self.json_path), "w", encoding="utf-8")  # noqa: SIM115 (see close)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, frame: Frame, poses: Sequence[Pose], annotated: np.ndarray) -> None:
        """Write one frame: its annotated BGR uint8 (H, W, 3) image and its poses."""
        if self.video is not None:
            self._write_video(self.video, annotated)
        if self.folder is not None:
            name = frame.path.name if frame.path is not None else f"frame_{frame.index:06d}.jpg"
            write_image(self.folder / name, annotated)
        if self._json is not None:
            self._json.write(json.dumps(frame_record(frame, poses), allow_nan=False) + "\n")
            self._json.flush()

    def _write_video(self, path: Path, image: np.ndarray) -> None:
        if self._writer is None:
            height, width = image.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC[path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(partial_name(path)), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV could not open a video writer for {path}")
            self._video_size = (width, height)
        if image.shape[1::-1] != self._video_size:
            image = cv2.resize(image, self._video_size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)

    def close(self) -> None:
        """Finish the files and move them into place."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self.video is not None:
            self._writer.release()
            os.replace(partial_name(self.video), self.video)
        if self._json is not None and self.json_path is not None:
            self._json.close()
            os.replace(partial_name(self.json_path), self.json_path)


def frame_record(frame: Frame, poses: Sequence[Pose]) -> dict[str, Any]:
    """The JSON Lines record of one frame: index, timestamp (s or null), image path (or null), image size and
    poses (id, score, bbox [x, y, w, h], 18 keypoints [x, y, score] in image pixels, null where missing)."""
    height, width = frame.image.shape[:2]
    return {
        "index": frame.index,
        "timestamp": frame.timestamp,
        "path": str(frame.path) if frame.path is not None else None,
        "width": width,
        "height": height,
        "poses": [
            {
                "id": pose.id,
                "score": pose.score,
                "bbox": list(pose.bbox) if pose.bbox is not None else None,
                "keypoints": [[float(v) for v in row] if ok else None for row, ok in zip(pose.keypoints, pose.found)],
            }
            for pose in poses
        ],
    }


def partial_name(path: Path) -> Path:
    """The temporary name beside `path` that it is written under (keeps the suffix: OpenCV picks the container
    from it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the file's suffix and write atomically."""
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise OSError(f"could not encode an image as {path.suffix or '.jpg'} for {path}")
    tmp = partial_name(path)
    tmp.write_bytes(encoded.tobytes())
    os.replace(tmp, path)
