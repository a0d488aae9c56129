"""Reading images, listing image inputs, and the one atomic writer every output goes through.

`atomic_path` / `atomic_write` write to a hidden temporary file beside the target
(`.<name>.<host>.<pid>.<rand>.tmp`, plus the target's suffix where a writer needs it, e.g. `.tmp.mp4`)
and rename it into place on success: a crash or kill never leaves a half-written target, the previous target is
kept on failure, and the file gets the usual permissions (0666 minus the umask). Temporary files of processes that
no longer run are removed by `clean_stale_temps` on the next write to the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from lightpose.errors import DiskFullError, SourceError, UsageError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})
URL_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://", "udp://", "tcp://")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP_PATTERN = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(\.[A-Za-z0-9]+)?$"
)


def is_url(value: object) -> bool:
    """Whether `value` is a string naming a URL lightpose reads (http, https, rtsp, ...)."""
    return isinstance(value, str) and value.strip().lower().startswith(URL_SCHEMES)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the name has an image suffix (.jpg, .png, ...)."""
    return Path(urlpath(path)).suffix.lower() in IMAGE_SUFFIXES


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether the name has a video suffix (.mp4, .avi, ...)."""
    return Path(urlpath(path)).suffix.lower() in VIDEO_SUFFIXES


def urlpath(path: str | os.PathLike) -> str:
    """The path part of a URL without query or fragment (a plain path is returned as is)."""
    text = os.fspath(path)
    if is_url(text):
        from urllib.parse import urlsplit

        return urlsplit(text).path
    return text


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file or an http(s) image URL as BGR uint8 (H, W, 3).

    Raises FileNotFoundError (missing file, or a directory), ValueError (not an image) or SourceError (a URL that
    could not be fetched), each naming the input. A truncated JPEG still decodes (as OpenCV does) with a warning.
    """
    if is_url(path):
        return _read_image_url(str(path))
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory, not an image file: pass a file, or the folder as a source")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}: check the path")
    data = np.fromfile(path, dtype=np.uint8)
    return _decode_image(data, str(path))


def _read_image_url(url: str) -> np.ndarray:
    import requests

    try:
        response = requests.get(url, timeout=(10, 30))
        response.raise_for_status()
    except requests.RequestException as exc:
        raise SourceError(f"could not fetch image {url}: {exc}: check the URL and the network") from exc
    return _decode_image(np.frombuffer(response.content, dtype=np.uint8), url)


def _decode_image(data: np.ndarray, name: str) -> np.ndarray:
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    truncated = data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8 and b"\xff\xd9" not in data[-64:].tobytes()
    if image is None:
        what = "a truncated JPEG (no end marker)" if truncated else "not an image OpenCV can decode"
        raise ValueError(f"could not decode {name}: {what}; check the file (is it a complete JPEG/PNG/BMP/... file?)")
    if truncated:
        logger.warning("%s: the JPEG data is truncated (no end marker); the missing part decodes as grey", name)
    return image


def expand_folder_or_pattern(
    spec: str | os.PathLike, *, recursive: bool, accept: Callable[[Path], bool], what: str, known: str = ""
) -> list[Path] | None:
    """The files a folder or glob pattern (`*`, `?`, `[`) names that `accept` takes, sorted (`recursive`:
    sub-folders too, `**` in patterns); None when `spec` is neither (a plain path, checked by the caller).

    Raises FileNotFoundError for a pattern that matches nothing, ValueError for a folder without such files; `what`
    names them in the messages (e.g. "image"), `known` lists their suffixes in the folder message."""
    text = os.fspath(spec)
    path = Path(text)
    if glob.has_magic(text) and not path.exists():
        matches = sorted(Path(p) for p in glob.glob(text, recursive=recursive) if os.path.isfile(p) and accept(Path(p)))
        if not matches:
            raise FileNotFoundError(f"no {what} files match the pattern {text!r}: check the pattern")
        return matches
    if not path.is_dir():
        return None
    found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file() and accept(p))
    if not found:
        hint = "" if recursive else " (add --recursive for sub-folders)"
        raise ValueError(f"no {what} files{f' ({known})' if known else ''} in folder {path}{hint}: check the folder")
    return found


def list_images(paths: Sequence[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """Image files named by `paths`: files as given, folders and glob patterns expanded (sorted; with `recursive`,
    sub-folders too; see `expand_folder_or_pattern`).

    Raises FileNotFoundError for a missing path or a pattern that matches nothing, ValueError for a non-image
    file or a folder without images.
    """
    files: list[Path] = []
    known = ", ".join(sorted(IMAGE_SUFFIXES))
    for item in paths:
        expanded = expand_folder_or_pattern(item, recursive=recursive, accept=is_image_file, what="image", known=known)
        if expanded is not None:
            files.extend(expanded)
            continue
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"image file or folder not found: {path}: check the path")
        if not is_image_file(path):
            raise ValueError(f"{path} is not an image file (known suffixes: {known})")
        files.append(path)
    return files


def write_json(path: str | os.PathLike, payload: Any, *, allow_nan: bool = True) -> None:
    """`payload` as a JSON file (one line, a trailing newline), written atomically, creating its folder;
    `allow_nan=False` refuses NaN and inf (strict JSON)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        json.dump(payload, file, allow_nan=allow_nan)
        file.write("\n")


def write_image(path: str | os.PathLike, image: np.ndarray, *, suffix: str | None = None) -> None:
    """Encode a BGR image in the format of `suffix` (default: the path's, else .jpg) and write it atomically;
    ValueError for a format OpenCV cannot write."""
    suffix = suffix or Path(path).suffix or ".jpg"
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"cannot write an image with suffix {suffix!r}: use .jpg, .png or .bmp")
    with atomic_write(path, "wb") as file:
        file.write(encoded.tobytes())


def _temp_name(target: Path) -> str:
    return f".{target.name}.{_HOST}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files that `atomic_path` left in `folder` for processes of this host that no longer run
    (killed with SIGKILL, or the machine lost power). Live writers' files and other hosts' files are kept.
    Returns the removed paths."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(os.fspath(folder)):
            match = _TEMP_PATTERN.match(entry.name)
            if match is None or match["host"] != _HOST or _pid_alive(int(match["pid"])):
                continue
            with contextlib.suppress(OSError):
                os.remove(entry.path)
                removed.append(Path(entry.path))
                logger.info("removed %s, left by an interrupted write", entry.path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` (ending in `suffix`, for writers that choose a format from it); on
    success it is renamed to `path` with mode 0666 minus the umask, on any exception it is removed and `path` is
    left as it was. A full disk raises DiskFullError naming `path`."""
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {target.parent}: create it first")
    clean_stale_temps(target.parent)
    fd, name = tempfile.mkstemp(prefix=_temp_name(target), suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        temp.chmod(0o666 & ~_umask())
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if _is_disk_full(exc, target.parent):
            raise DiskFullError(
                errno.ENOSPC,
                f"no space left on the device writing {target} (the previous file, if any, is kept): "
                "free some space and retry",
            ) from exc
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """`open(path, mode)` that writes atomically (see `atomic_path`); mode "w" (text, utf-8) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as temp, open(temp, mode, **open_kwargs) as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, RuntimeError) and "write" in str(exc).lower():  # torch.save's "file write failed"
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < (1 << 20)
    return False


def check_output_path(
    path: str | os.PathLike, *, folder: bool = False, inputs: Sequence[str | os.PathLike | None] = (), option: str = ""
) -> Path:
    """Check, before any work, that `path` can be written: a file (or with `folder`, a folder) that is not one of
    `inputs`, whose nearest existing ancestor is a writable folder. Creates nothing. Raises UsageError naming
    `option` (e.g. "--output") and the path; returns the path."""
    target = Path(path)
    label = f"{option} {target}" if option else str(target)
    resolved = target.resolve()
    for item in inputs:
        if item is not None and Path(item).resolve() == resolved:
            raise UsageError(f"{label} is also an input: choose another output location")
    if target.exists():
        if folder and not target.is_dir():
            raise UsageError(f"{label} exists and is not a folder: remove it or choose another location")
        if not folder and target.is_dir():
            raise UsageError(f"{label} is a folder: give a file name")
        if not os.access(target, os.W_OK | (os.X_OK if folder else 0)):
            raise UsageError(f"{label} is not writable: fix its permissions or choose another location")
        return target
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{label}: {ancestor} is a file, not a folder: choose another location")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: folder {ancestor} is not writable: fix its permissions or choose another location")
    return target
