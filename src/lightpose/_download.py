"""HTTP transfer of one file from mirrors: streaming, timeouts, retries with backoff, Range resume, tqdm progress.

Only moves bytes into a `.part` file; verification, locking and the final rename live in `lightpose.weights`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3
from tqdm import tqdm

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
DEFAULT_TIMEOUT = (10.0, 60.0)  # seconds: (connect, read between two bytes)


class DownloadError(ConnectionError):
    """No URL gave a usable file (HTTP error, DNS/connection failure, timeout, verification, disk full).

    `attempts` holds (url, what it answered) for every try, in order. Also an OSError, via ConnectionError.
    """

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class _RetryableError(Exception):
    """A transient failure (5xx, connection dropped, timeout): try the same URL again after a pause."""


class _FatalURLError(Exception):
    """A failure of this URL that retrying will not fix (404, 403, ...): go to the next mirror."""


def download(
    urls: Sequence[str],
    part_path: Path,
    *,
    check: Callable[[Path], None] | None = None,
    progress: bool = True,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 3,
    backoff: float = 1.0,
    hint: str = "",
) -> str:
    """Download the first URL that works into `part_path` and return that URL.

    Each URL gets `retries` extra tries on transient failures, pausing backoff * 2**k seconds; an existing
    `part_path` is resumed with HTTP Range when the server honours it. `check(part_path)` runs after each
    complete transfer; if it raises, the part file is removed and the next URL is tried. Raises DownloadError
    (ending with `hint`) when every URL failed, or at once when the disk refuses the write.
    """
    if not urls:
        raise ValueError("download() needs at least one URL")
    if retries < 0 or backoff < 0:
        raise ValueError(f"retries and backoff must be >= 0, got retries={retries}, backoff={backoff}")
    attempts: list[tuple[str, str]] = []
    with requests.Session() as session:
        for url in urls:
            logger.info("downloading %s to %s", url, part_path)
            for attempt in range(retries + 1):
                try:
                    _transfer(session, url, part_path, progress=progress, timeout=timeout)
                except _RetryableError as exc:
                    attempts.append((url, f"{exc} (try {attempt + 1}/{retries + 1})"))
                    if attempt < retries:
                        time.sleep(backoff * 2**attempt)
                    continue
                except _FatalURLError as exc:
                    attempts.append((url, str(exc)))
                    break
                except OSError as exc:  # local write failed: another mirror will not help
                    attempts.append((url, f"could not write {part_path}: {exc}"))
                    raise DownloadError(_message(part_path.name, attempts, hint), attempts) from exc
                try:
                    if check is not None:
                        check(part_path)
                except Exception as exc:
                    part_path.unlink(missing_ok=True)
                    attempts.append((url, f"downloaded, but the file was rejected and removed: {exc}"))
                    break
                return url
    raise DownloadError(_message(part_path.name, attempts, hint), attempts)


def _message(part_name: str, attempts: Sequence[tuple[str, str]], hint: str) -> str:
    name = part_name.removesuffix(".part")
    tried = "\n".join(f"  {url} -> {answer}" for url, answer in attempts)
    return f"could not download {name}; tried:\n{tried}" + (f"\n{hint}" if hint else "")


def _transfer(
    session: requests.Session, url: str, part_path: Path, *, progress: bool, timeout: tuple[float, float]
) -> None:
    """One GET of `url`, appending to `part_path` when the server answers a Range request with 206."""
    offset = part_path.stat().st_size if part_path.exists() else 0
    # identity encoding: Range offsets then count the file's own bytes, not gzip's
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and offset:
                part_path.unlink()
                raise _RetryableError("HTTP 416: the partial file does not fit the server's; starting again")
            if response.status_code >= 500:
                raise _RetryableError(f"HTTP {response.status_code} {response.reason}")
            if response.status_code not in (200, 206):
                raise _FatalURLError(f"HTTP {response.status_code} {response.reason}")
            if response.status_code == 206 and _range_start(response) != offset:
                part_path.unlink(missing_ok=True)
                raise _RetryableError(f"HTTP 206 for another byte range than {offset}-; starting again")
            if response.status_code == 200:
                offset = 0  # the server ignored Range (or there was none): the body is the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None and length.isdigit() else None
            _write_body(response, part_path, offset, total, progress=progress)
    except requests.Timeout as exc:
        raise _RetryableError(f"timed out ({type(exc).__name__}: {exc})") from exc
    except requests.ConnectionError as exc:
        reason = getattr(exc.args[0], "reason", None) if exc.args else None  # urllib3's own, shorter message
        name_error = getattr(urllib3.exceptions, "NameResolutionError", ())  # urllib3 >= 2
        if isinstance(reason, name_error):  # offline or a wrong host: waiting will not help, try the next mirror
            raise _FatalURLError(f"could not resolve host {urlparse(url).hostname} (offline?)") from exc
        raise _RetryableError(f"connection failed ({reason or exc})") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _RetryableError(f"connection broken ({exc})") from exc
    except requests.RequestException as exc:
        raise _FatalURLError(f"request failed ({type(exc).__name__}: {exc})") from exc


def _range_start(response: requests.Response) -> int | None:
    """First byte of a `Content-Range: bytes START-END/SIZE` header, or None."""
    value = response.headers.get("Content-Range", "")
    if not value.startswith("bytes ") or "-" not in value:
        return None
    start = value[len("bytes ") :].split("-", 1)[0].strip()
    return int(start) if start.isdigit() else None


def _write_body(
    response: requests.Response, part_path: Path, offset: int, total: int | None, *, progress: bool
) -> None:
    stream = sys.stderr
    show = progress and stream is not None and stream.isatty()
    if offset:
        logger.info("resuming %s at byte %d", response.url, offset)
    with (
        open(part_path, "ab" if offset else "wb") as file,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part_path.name.removesuffix(".part"),
            disable=not show,
            file=stream,
        ) as bar,
    ):
        written = offset
        for chunk in response.iter_content(CHUNK_BYTES):
            file.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    if total is not None and written != total:
        raise _RetryableError(f"connection closed after {written} of {total} bytes")
