"""Every exception lightpose raises on purpose.

Each is also the built-in type a caller would catch without knowing lightpose (a missing file is a
FileNotFoundError, a bad value a ValueError, a failed download a ConnectionError), and each message ends with what
to do. `LightposeError` is the common base.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class LightposeError(Exception):
    """Base of every lightpose exception."""


class CheckpointError(LightposeError, ValueError):
    """A file is not a usable checkpoint: not a checkpoint at all, corrupt, or does not fit the network."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled objects outside the weights-only allow-list (they could run code): refused."""


class IntegrityError(LightposeError, ValueError):
    """A file's sha256 differs from the published one or from the one pinned at its first download."""


class DownloadError(LightposeError, ConnectionError):
    """No URL gave a usable file. `attempts` holds (url, what it answered) for every try, in order."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class NotCachedError(LightposeError, FileNotFoundError):
    """Downloads are off (local_files_only / LIGHTPOSE_OFFLINE) and the file is not in the cache."""


class SourceError(LightposeError, OSError):
    """A frame source (camera, video, stream, URL) that was named but could not be opened or read."""


class DeviceError(LightposeError, ValueError):
    """A device that is unknown or not usable on this machine."""


class DiskFullError(LightposeError, OSError):
    """A write failed because the disk is full; the previous file, if any, is unchanged."""


class NonFiniteLossError(LightposeError, FloatingPointError):
    """The training loss became NaN or inf."""


class UsageError(LightposeError, ValueError):
    """Bad command-line usage or input (the CLI exits with code 2)."""


class AnnotationError(LightposeError, ValueError):
    """A COCO annotation with a missing or malformed field; the message names the annotation id and the field."""


class UnreadableSamplesError(LightposeError, RuntimeError):
    """Training stopped: more training samples could not be read (missing, empty or corrupt images) than allowed."""


class OutputWriteError(LightposeError, OSError):
    """A finished run's output could not be written where asked. `saved_to` is where it went instead (None:
    nowhere) and `result` what the run returned (e.g. evaluate_coco's AP numbers), so that the run is not lost."""

    def __init__(self, message: str, *, saved_to: Path | None = None, result: object = None) -> None:
        super().__init__(message)
        self.saved_to = saved_to
        self.result = result


class MapsError(LightposeError, ValueError):
    """Heatmaps or PAFs that cannot be decoded: wrong shape, dtype or channel count, or non-finite values."""


class TrainingError(LightposeError, RuntimeError):
    """Training failed after it started, whatever the cause (chained as __cause__); the message is the cause's."""
