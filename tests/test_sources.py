"""Frame sources: video files, stream URLs, cameras, image files and folders; est.stream over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import media
from lightpose.errors import SourceError
from lightpose.io import list_images
from lightpose.sources import ImageSource, VideoSource, open_source
from static_server import serve_folder


def write_video(path: Path, frames: int = 6, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
    def frame(i: int) -> np.ndarray:
        image = np.full((size[1], size[0], 3), 30, np.uint8)
        cv2.circle(image, (8 + 8 * i, size[1] // 2), 5, (255, 255, 255), -1)
        return image

    return media.write_video(path, (frame(i) for i in range(frames)), fps, codec="MJPG")


def write_image(path: Path, value: int, size: tuple[int, int] = (32, 24)) -> Path:
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for name, value in [("b.png", 20), ("a.jpg", 10), ("c.bmp", 30)]:
        write_image(root / name, value)
    (root / "notes.txt").write_text("not an image")
    (root / "sub").mkdir()
    write_image(root / "sub" / "d.png", 40)  # subfolders are not searched
    return root


def test_video_file_frames_length_fps_and_timestamps(video: Path) -> None:
    with open_source(video) as source:
        assert isinstance(source, VideoSource)
        assert source.length == 6 and source.fps == pytest.approx(10.0) and not source.live
        frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10.0 for i in range(6)])
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 and f.source == str(video) for f in frames)
    # the moving dot is where it was drawn
    assert frames[3].image[24, 32].min() > 200 and frames[0].image[24, 32].max() < 80


def test_folder_gives_its_images_sorted(folder: Path) -> None:
    source = open_source(folder)
    assert isinstance(source, ImageSource) and source.length == 3 and source.fps is None
    frames = list(source)
    assert [Path(f.source).name for f in frames] == ["a.jpg", "b.png", "c.bmp"]
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert all(f.timestamp is None for f in frames)


def test_lists_mix_files_and_folders(folder: Path) -> None:
    files = list_images([folder / "c.bmp", folder / "sub", folder])
    assert [p.name for p in files] == ["c.bmp", "d.png", "a.jpg", "b.png", "c.bmp"]
    assert open_source([str(folder / "b.png")]).length == 1
    single = open_source(folder / "b.png")
    assert isinstance(single, ImageSource) and single.length == 1


def test_missing_and_wrong_inputs_are_named(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_source(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        open_source([folder / "a.jpg", folder / "nope.png"])
    with pytest.raises(ValueError, match="notes.txt is not an image"):
        open_source([folder / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files.*empty"):
        open_source(empty)
    with pytest.raises(TypeError):
        open_source(True)


def test_unopenable_video_file_camera_and_url_raise_source_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(SourceError, match="junk.mp4"):
        open_source(junk)
    with pytest.raises(SourceError, match="camera 97"):
        open_source("97")
    with pytest.raises(SourceError, match="http://127.0.0.1:9/"):
        open_source("http://127.0.0.1:9/missing.mjpg")


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[str]:
    with serve_folder(tmp_path) as base:
        yield base


def test_stream_url_is_read_as_a_live_source(video: Path, http_folder: str) -> None:
    with open_source(f"{http_folder}/{video.name}") as source:
        assert source.live and source.length is None
        frames = list(source)
    assert len(frames) == 6 and frames[0].image.shape == (48, 64, 3)
    timestamps = [f.timestamp for f in frames]
    assert timestamps == sorted(timestamps) and timestamps[0] is not None and timestamps[0] >= 0


def test_estimator_stream_yields_tracked_results_per_frame(rendered_estimator, folder: Path, video: Path) -> None:
    results = list(rendered_estimator.stream(video, smooth=False))
    assert len(results) == 6 and all(len(r) == 2 for r in results)
    assert [r.frame for r in results] == list(range(6)) and all(r.source == str(video) for r in results)
    assert [r.timestamp for r in results] == pytest.approx([i / 10.0 for i in range(6)])
    assert all((r.width, r.height) == (64, 48) and r.image.shape == (48, 64, 3) for r in results)
    first_ids = sorted(results[0].ids.tolist())
    assert len(set(first_ids)) == 2 and all(sorted(r.ids.tolist()) == first_ids for r in results)  # ids are kept
    images = list(rendered_estimator.stream(folder))  # images: no tracking by default
    assert [r.source for r in images] == [str(folder / n) for n in ("a.jpg", "b.png", "c.bmp")]
    assert all(r.frame is None and (r.ids == -1).all() and len(r) == 2 for r in images)
    with pytest.raises(FileNotFoundError, match="nope"):
        rendered_estimator.stream(folder / "nope")
    with pytest.raises(ValueError, match="track=True"):
        rendered_estimator.stream(folder, track=False, smooth=True)


def test_truncated_video_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_video(tmp_path / "long.avi", frames=20).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 7 // 10])
    with open_source(cut) as source:
        frames = list(source)
    assert 0 < len(frames) < 20 and "cut.avi" in caplog.text and f"read {len(frames)} of the 20 frames" in caplog.text


def test_glob_patterns_and_recursive_folders(folder: Path) -> None:
    assert [p.name for p in list_images([str(folder / "*.png")])] == ["b.png"]
    assert [p.name for p in list_images([folder], recursive=True)] == ["a.jpg", "b.png", "c.bmp", "d.png"]
    with pytest.raises(FileNotFoundError, match="no image files match"):
        list_images([str(folder / "*.gif")])


def test_streaming_stops_cleanly_when_the_consumer_stops(rendered_estimator, video: Path) -> None:
    stream = rendered_estimator.stream(video)
    first = next(stream)
    stream.close()
    assert first.frame == 0 and rendered_estimator._runtime.calls <= 4  # the pipeline stopped reading ahead
