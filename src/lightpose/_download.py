"""HTTP transfer of one file from mirrors: streaming, timeouts, a stall rule, a size cap, retries with backoff,
Range resume, tqdm progress.

Only moves bytes into a `.part` file; verification, locking and the final rename live in `lightpose._cache`.
Rules: a transfer that delivers less than STALL_MIN_BYTES in a stall window (default: the read timeout) fails and is
retried (resumed with Range); a body larger than the cap (the file's known size, else `max_bytes`) is stopped and
removed, as is a web page (Content-Type text/html or HTML bytes); a compressed body (Content-Encoding: gzip, sent
although identity was asked for) is decoded and counted in the server's compressed bytes.
"""

from __future__ import annotations

import http.client
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3
from tqdm import tqdm

from lightpose._checkpoint import looks_like_html
from lightpose.errors import DownloadError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
DEFAULT_TIMEOUT = (10.0, 60.0)  # seconds: (connect, read between two bytes)
DEFAULT_MAX_BYTES = 512 << 20  # bytes: the cap when the file's size is not known (published checkpoints: < 100 MB)
STALL_MIN_BYTES = 64 << 10  # bytes: less than this in one stall window is a stalled transfer
WEB_PAGE = "the server sent a web page, not a checkpoint (a share link rather than a direct download?)"


@dataclass(frozen=True)
class DownloadOptions:
    """How to download: `timeout` (connect, read) seconds; `retries` extra tries per URL on transient failures,
    pausing backoff * 2**k seconds; `max_bytes` the size cap when the file's size is not known; `stall_window` the
    seconds over which a transfer must deliver STALL_MIN_BYTES (None: the read timeout); `progress` a tqdm bar on
    a terminal."""

    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    retries: int = 3
    backoff: float = 1.0
    max_bytes: int = DEFAULT_MAX_BYTES
    stall_window: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError(f"retries and backoff must be >= 0, got retries={self.retries}, backoff={self.backoff}")
        if len(self.timeout) != 2 or min(self.timeout) <= 0:
            raise ValueError(f"timeout must be (connect, read) seconds > 0, got {self.timeout!r}")
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {self.max_bytes}")
        if self.stall_window is not None and self.stall_window <= 0:
            raise ValueError(f"stall_window must be > 0 seconds or None, got {self.stall_window}")

    @property
    def window(self) -> float:
        """Seconds over which a transfer must deliver STALL_MIN_BYTES."""
        return self.stall_window if self.stall_window is not None else self.timeout[1]


class _RetryableError(Exception):
    """A transient failure (5xx, connection dropped, timeout, stall): try the same URL again after a pause."""


class _FatalURLError(Exception):
    """A failure of this URL that retrying will not fix (404, 403, a web page, too large): go to the next mirror."""


def download(
    urls: Sequence[str],
    part_path: Path,
    *,
    options: DownloadOptions,
    size: int | None = None,
    check: Callable[[Path], None] | None = None,
    hint: str = "",
) -> str:
    """Download the first URL that works into `part_path` and return that URL.

    `size` is the file's size in bytes when known (the cap; else `options.max_bytes`). An existing `part_path` is
    resumed with HTTP Range when the server honours it. `check(part_path)` runs after each complete transfer; if
    it raises, the part file is removed and the next URL is tried. Raises DownloadError (ending with `hint`) when
    every URL failed, or at once when the disk refuses the write.
    """
    if not urls:
        raise ValueError("download() needs at least one URL")
    cap = (size, f"the file's size ({size} bytes)") if size is not None else (options.max_bytes, "max_bytes")
    attempts: list[tuple[str, str]] = []
    with requests.Session() as session:
        for url in urls:
            logger.info("downloading %s to %s", url, part_path)
            for attempt in range(options.retries + 1):
                try:
                    _transfer(session, url, part_path, options, cap)
                except _RetryableError as exc:
                    attempts.append((url, f"{exc} (try {attempt + 1}/{options.retries + 1})"))
                    if attempt < options.retries:
                        time.sleep(options.backoff * 2**attempt)
                    continue
                except _FatalURLError as exc:
                    attempts.append((url, str(exc)))
                    break
                except OSError as exc:  # local write failed: another mirror will not help
                    attempts.append((url, f"could not write {part_path}: {exc}"))
                    raise DownloadError(_message(part_path.name, attempts, hint), attempts) from exc
                try:
                    if _starts_like_html(part_path):
                        raise ValueError(WEB_PAGE)
                    if check is not None:
                        check(part_path)
                except Exception as exc:
                    part_path.unlink(missing_ok=True)
                    attempts.append((url, f"downloaded, but the file was rejected and removed: {exc}"))
                    break
                return url
    raise DownloadError(_message(part_path.name, attempts, hint), attempts)


def _starts_like_html(path: Path) -> bool:
    with open(path, "rb") as file:
        return looks_like_html(file.read(4096))


def _message(part_name: str, attempts: Sequence[tuple[str, str]], hint: str) -> str:
    name = part_name.removesuffix(".part")
    tried = "\n".join(f"  {url} -> {answer}" for url, answer in attempts)
    return f"could not download {name}; tried:\n{tried}" + (f"\n{hint}" if hint else "")


def _transfer(
    session: requests.Session, url: str, part_path: Path, options: DownloadOptions, cap: tuple[int, str]
) -> None:
    """One GET of `url`, appending to `part_path` when the server answers a Range request with 206."""
    offset = part_path.stat().st_size if part_path.exists() else 0
    if offset > cap[0]:  # a leftover larger than the file can be: not a prefix of it
        part_path.unlink()
        offset = 0
    # identity encoding: Range offsets then count the file's own bytes, not gzip's
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=options.timeout) as response:
            if response.status_code == 416 and offset:
                part_path.unlink()
                raise _RetryableError("HTTP 416: the partial file does not fit the server's; starting again")
            if response.status_code >= 500:
                raise _RetryableError(f"HTTP {response.status_code} {response.reason}")
            if response.status_code not in (200, 206):
                raise _FatalURLError(f"HTTP {response.status_code} {response.reason}")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type in ("text/html", "application/xhtml+xml"):
                raise _FatalURLError(WEB_PAGE)
            encoded = response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
            if response.status_code == 206 and (encoded or _range_start(response) != offset):
                part_path.unlink(missing_ok=True)
                raise _RetryableError(f"HTTP 206 for another byte range or encoding than {offset}-; starting again")
            if response.status_code == 200:
                offset = 0  # the server ignored Range (or there was none): the body is the whole file
            length = response.headers.get("Content-Length")
            wire_length = int(length) if length is not None and length.isdigit() else None
            if wire_length is not None and not encoded and offset + wire_length > cap[0]:
                raise _FatalURLError(f"the server announces {offset + wire_length} bytes, more than {cap[1]}")
            _write_body(response, part_path, offset, wire_length, encoded, options, cap)
    except requests.Timeout as exc:
        raise _RetryableError(f"timed out ({type(exc).__name__}: {exc})") from exc
    except requests.ConnectionError as exc:
        reason = getattr(exc.args[0], "reason", None) if exc.args else None  # urllib3's own, shorter message
        name_error = getattr(urllib3.exceptions, "NameResolutionError", ())  # urllib3 >= 2
        if isinstance(reason, name_error):  # offline or a wrong host: waiting will not help, try the next mirror
            raise _FatalURLError(f"could not resolve host {urlparse(url).hostname} (offline?)") from exc
        raise _RetryableError(f"connection failed ({reason or exc})") from exc
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
    response: requests.Response,
    part_path: Path,
    offset: int,
    wire_length: int | None,
    encoded: bool,
    options: DownloadOptions,
    cap: tuple[int, str],
) -> None:
    """Stream the body into `part_path` from `offset`, enforcing the cap and the stall rule.

    A decoded (compressed) body cannot be resumed by byte offset: on any failure its part file is removed.
    """
    stream = sys.stderr
    show = options.progress and stream is not None and stream.isatty()
    if offset:
        logger.info("resuming %s at byte %d", response.url, offset)
    total = offset + wire_length if wire_length is not None and not encoded else None
    raw = response.raw
    try:
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
            window_start, window_bytes = time.monotonic(), 0
            while chunk := _read(raw):
                written += len(chunk)
                if written > cap[0]:
                    part_path.unlink()
                    raise _FatalURLError(f"the server sent more than {cap[1]} ({cap[0]} bytes); stopped")
                file.write(chunk)
                bar.update(len(chunk))
                window_bytes += len(chunk)
                elapsed = time.monotonic() - window_start
                if elapsed >= options.window:
                    if window_bytes < STALL_MIN_BYTES:
                        raise _RetryableError(f"stalled: {window_bytes} bytes in {elapsed:.1f} s")
                    window_start, window_bytes = time.monotonic(), 0
        received = raw.tell()  # bytes on the wire: the compressed ones for an encoded body
        if wire_length is not None and received != wire_length:
            raise _RetryableError(f"connection closed after {received} of {wire_length} bytes")
    except (_RetryableError, _FatalURLError):
        if encoded:
            part_path.unlink(missing_ok=True)
        raise


def _read(raw: urllib3.HTTPResponse) -> bytes:
    """The next bytes that arrived (at most CHUNK_BYTES, decoded): returns as soon as any came, so a trickle is
    seen; network failures become _RetryableError (a local write failure stays an OSError)."""
    try:
        return raw.read1(CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise _RetryableError(f"timed out ({exc})") from exc
    except urllib3.exceptions.DecodeError as exc:
        raise _RetryableError(f"could not decode the compressed body ({exc})") from exc
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise _RetryableError(f"connection broken ({exc})") from exc
