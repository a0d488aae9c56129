"""The checkpoint cache: where it lives, and filling it with verified files only.

A download goes to `<file>.part` (resumable, never loaded), is verified, and is renamed to `<file>` atomically,
all under the cross-process lock `<file>.lock`. Without a published hash, the first verified download's sha256
is pinned in `<file>.sha256` and checked on every later use. A cache that cannot take the pin (read-only) still
serves a file that validates; it is validated again on each use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from filelock import FileLock

from lightpose._download import DownloadOptions, download
from lightpose.errors import IntegrityError
from lightpose.io import atomic_write

logger = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def settings(cache_dir: str | os.PathLike[str] | None, local_files_only: bool | None) -> tuple[Path, bool]:
    """(cache root, offline): the one place reading the environment, at call time; explicit arguments win.

    Root: `cache_dir` > $LIGHTPOSE_HOME > $XDG_CACHE_HOME/lightpose > ~/.cache/lightpose.
    Offline: `local_files_only` > $LIGHTPOSE_OFFLINE (1/true/yes/on or 0/false/no/off).
    """
    if cache_dir is not None:
        root = Path(cache_dir).expanduser()
    elif os.environ.get("LIGHTPOSE_HOME"):
        root = Path(os.environ["LIGHTPOSE_HOME"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lightpose"
    else:
        root = Path.home() / ".cache" / "lightpose"
    if local_files_only is not None:
        return root, bool(local_files_only)
    flag = os.environ.get("LIGHTPOSE_OFFLINE", "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"LIGHTPOSE_OFFLINE={flag!r} is not understood; use 1 (offline) or 0 (downloads allowed)")
    return root, flag in _TRUE


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fill(
    dest: Path,
    urls: Sequence[str],
    *,
    sha256: str | None,
    size: int | None,
    validate: Callable[[Path], None],
    options: DownloadOptions,
    hint: str,
) -> None:
    """Make `dest` a verified copy of the file at `urls` (first that works), downloading it at most once.

    `validate(path)` raises for a file that is not what we want; it runs on downloads without a `sha256`.
    Raises DownloadError (ending with `hint`) when no URL gives a verified file.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(
            exc.errno,
            f"cannot create the cache folder {dest.parent} ({exc.strerror}); pass cache_dir= or set "
            "LIGHTPOSE_HOME to a writable folder",
        ) from exc
    with FileLock(os.fspath(dest) + ".lock"):
        if dest.is_file():  # another process finished it while we waited
            verify(dest, sha256=sha256, validate=validate)
            return
        expected = sha256 or read_pin(dest)
        digests: list[str] = []

        def check(part: Path) -> None:
            actual = sha256_file(part)
            if expected is not None and actual != expected:
                raise IntegrityError(f"sha256 mismatch: expected {expected}, got {actual}")
            if sha256 is None:
                validate(part)
            digests.append(actual)

        part = dest.with_name(dest.name + ".part")
        download(urls, part, options=options, size=size, check=check, hint=hint)
        if sha256 is None:
            with atomic_write(pin_path(dest)) as file:
                file.write(f"{digests[-1]}  {dest.name}\n")
        os.replace(part, dest)


def verify(dest: Path, *, sha256: str | None, validate: Callable[[Path], None]) -> None:
    """Refuse a cached file whose sha256 differs from `sha256` or its pin; validate and pin one with neither."""
    expected, origin = (sha256, "the published sha256") if sha256 else (read_pin(dest), str(pin_path(dest)))
    actual = sha256_file(dest)
    if expected is None:  # e.g. put into the cache by hand, or the pin could not be written
        validate(dest)
        _pin_best_effort(dest, actual)
    elif actual != expected:
        raise IntegrityError(
            f"cached checkpoint {dest} has sha256 {actual}, but {origin} expects {expected}: it changed after it "
            f"was downloaded. Delete {dest} to download it again (and {pin_path(dest)} if the publisher changed "
            "the file on purpose)."
        )


def pin_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def read_pin(dest: Path) -> str | None:
    """The sha256 pinned for `dest`, or None when there is no pin file."""
    pin = pin_path(dest)
    if not pin.exists():
        return None
    digest = (pin.read_text().split() or [""])[0]
    if not SHA256_PATTERN.fullmatch(digest):
        raise IntegrityError(f"pin file {pin} does not hold a sha256; delete it and {dest} to download again")
    return digest


def _pin_best_effort(dest: Path, digest: str) -> None:
    """Write the pin of a validated file; a read-only cache keeps working without it (validated on each load)."""
    try:
        with atomic_write(pin_path(dest)) as file:
            file.write(f"{digest}  {dest.name}\n")
    except OSError as exc:
        logger.info("could not pin %s (%s): it is validated again on every load", dest, exc)
