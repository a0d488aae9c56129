"""Published checkpoints: a registry, and loading by name, path or URL with a verified download cache.

    model, entry = lightpose.weights.load_model()                  # the COCO model, downloaded once
    model, _ = lightpose.weights.load_model("ckpt.pth")            # a local train.py checkpoint or state dict

Cache folder: `cache_dir` argument > $LIGHTPOSE_HOME > $XDG_CACHE_HOME/lightpose > ~/.cache/lightpose; files
live in its `checkpoints/` subfolder. `local_files_only=True` or LIGHTPOSE_OFFLINE=1 keeps off the network.
Every exception comes from `lightpose.errors`; the old names stay importable from here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

from lightpose import _cache
from lightpose._cache import SHA256_PATTERN, sha256_file
from lightpose._checkpoint import load_reference_state, read_checkpoint, stored_skeleton
from lightpose._download import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, DownloadOptions
from lightpose.errors import CheckpointError, DownloadError, IntegrityError, NotCachedError, UnsafeCheckpointError
from lightpose.model import LightweightOpenPose

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_WEIGHTS",
    "CheckpointError",
    "DownloadError",
    "IntegrityError",
    "NotCachedError",
    "UnsafeCheckpointError",
    "WeightsEntry",
    "get_cache_dir",
    "get_weights",
    "list_weights",
    "load_checkpoint_file",
    "load_model",
    "register_weights",
    "resolve_checkpoint",
    "sha256_file",
    "unregister_weights",
]

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "lightweight-openpose-coco"
_RESERVED_SUFFIXES = (".part", ".lock", ".sha256")  # files beside a checkpoint that are never loaded

load_checkpoint_file = read_checkpoint  # the one safe reader, under the name the README documents


@dataclass(frozen=True)
class WeightsEntry:
    """One published checkpoint: mirrors tried in order, its sha256 and size in bytes when known (the size caps
    the download), and read-only metadata.

    meta of registered entries (a test enforces it): num_refinement_stages (built), stored_refinement_stages,
    num_params, gflops (2 x conv multiply-accumulates at gflops_input_hw), input_height, coco_val2017_ap,
    evaluation, dataset, license, paper, source. Only num_refinement_stages is read by the loader (default 1).
    """

    name: str
    urls: tuple[str, ...]
    file_name: str
    sha256: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("WeightsEntry.name must not be empty")
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.urls or not all(_is_url(u) for u in self.urls):
            raise ValueError(f"WeightsEntry {self.name!r}: urls must be one or more http(s) URLs, got {self.urls!r}")
        if Path(self.file_name).name != self.file_name or self.file_name in ("", ".", ".."):
            raise ValueError(f"WeightsEntry {self.name!r}: file_name must be a bare file name, got {self.file_name!r}")
        if self.file_name.endswith(_RESERVED_SUFFIXES):
            raise ValueError(f"WeightsEntry {self.name!r}: file_name must not end with {_RESERVED_SUFFIXES}")
        if self.sha256 is not None and not SHA256_PATTERN.fullmatch(self.sha256):
            raise ValueError(f"WeightsEntry {self.name!r}: sha256 must be 64 lowercase hex digits or None")
        if self.size is not None and (not isinstance(self.size, int) or self.size <= 0):
            raise ValueError(f"WeightsEntry {self.name!r}: size must be a number of bytes > 0 or None")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))


_REGISTRY: dict[str, WeightsEntry] = {}


def register_weights(entry: WeightsEntry) -> WeightsEntry:
    """Add `entry` to the registry; a name that is already registered raises ValueError."""
    if entry.name in _REGISTRY:
        raise ValueError(f"weights {entry.name!r} are already registered; unregister_weights() them first")
    _REGISTRY[entry.name] = entry
    return entry


def unregister_weights(name: str) -> WeightsEntry:
    """Remove and return the entry called `name` (KeyError when there is none)."""
    return _REGISTRY.pop(get_weights(name).name)


def get_weights(name: str) -> WeightsEntry:
    """The registered entry called `name`; KeyError listing the registered names otherwise."""
    if name not in _REGISTRY:
        raise KeyError(f"no weights called {name!r}; registered: {', '.join(list_weights())}")
    return _REGISTRY[name]


def list_weights() -> list[str]:
    """Names of the registered weights, sorted."""
    return sorted(_REGISTRY)


def get_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: `cache_dir` > $LIGHTPOSE_HOME > $XDG_CACHE_HOME/lightpose > ~/.cache/lightpose."""
    return _cache.settings(cache_dir, False)[0]


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _source(name_or_path_or_url: str | os.PathLike[str] | WeightsEntry | None) -> WeightsEntry | Path:
    """A registry entry (a name, an entry, or an ad-hoc entry for a URL) or a local path."""
    if name_or_path_or_url is None:
        return get_weights(DEFAULT_WEIGHTS)
    if isinstance(name_or_path_or_url, WeightsEntry):
        return name_or_path_or_url
    if isinstance(name_or_path_or_url, str) and name_or_path_or_url in _REGISTRY:
        return _REGISTRY[name_or_path_or_url]
    if isinstance(name_or_path_or_url, str) and _is_url(name_or_path_or_url):
        url = name_or_path_or_url
        base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(urlparse(url).path).name) or "checkpoint.pth"
        return WeightsEntry(name=url, urls=(url,), file_name=base.lstrip(".") or "checkpoint.pth")
    path = Path(name_or_path_or_url).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a checkpoint file: pass the .pth file inside it")
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {os.fspath(name_or_path_or_url)!r} is not an existing file, an http(s) URL, or "
            f"a registered weights name ({', '.join(list_weights())})"
        )
    return path


def _cache_path(entry: WeightsEntry, root: Path) -> Path:
    if entry.name in _REGISTRY and _REGISTRY[entry.name] == entry:
        return root / "checkpoints" / entry.file_name
    # unregistered (e.g. a bare URL): a folder per URL list, so two "model.pth" from different places never mix
    key = hashlib.sha256("\n".join(entry.urls).encode()).hexdigest()[:16]
    return root / "checkpoints" / f"url-{key}" / entry.file_name


def resolve_checkpoint(
    name_or_path_or_url: str | os.PathLike[str] | WeightsEntry | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    progress: bool = True,
    num_refinement_stages: int | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 3,
    backoff: float = 1.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stall_window: float | None = None,
) -> Path:
    """Path of a verified local checkpoint: a local path as is, a name or URL from the cache or downloaded.

    A download is checked (the registry sha256, else loadable weights-only with every key of a
    LightweightOpenPose(num_refinement_stages), the right shapes and finite values) before it is renamed into the
    cache; without a registry hash its sha256 is pinned beside it and checked on every later load. `timeout` is
    (connect, read) seconds; transient failures are retried `retries` times per URL after backoff * 2**k seconds.
    A transfer that delivers less than 64 KiB in `stall_window` seconds (default: the read timeout) is retried and
    resumed; a body larger than the entry's `size`, else `max_bytes` (default 512 MiB), or a web page is refused.
    """
    source = _source(name_or_path_or_url)
    if isinstance(source, Path):
        return source
    options = DownloadOptions(
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        max_bytes=max_bytes,
        stall_window=stall_window,
        progress=progress,
    )
    root, offline = _cache.settings(cache_dir, local_files_only)
    dest = _cache_path(source, root)
    stages = num_refinement_stages if num_refinement_stages is not None else _entry_stages(source)

    def validate(path: Path) -> None:
        checkpoint = read_checkpoint(path, downloaded=True)
        skeleton = stored_skeleton(checkpoint, source.file_name)
        model = LightweightOpenPose(num_refinement_stages=stages, skeleton=skeleton)
        load_reference_state(model, checkpoint, source=source.file_name)

    if dest.is_file():
        _cache.verify(dest, sha256=source.sha256, validate=validate)
        return dest
    if offline:
        why = "local_files_only=True" if local_files_only else "LIGHTPOSE_OFFLINE is set"
        raise NotCachedError(
            f"{source.file_name} ({source.name}) is not in the cache folder {dest.parent} and downloads are off "
            f"({why}). Download {source.urls[0]} by hand, e.g. `curl -L -o {dest} {source.urls[0]}`, or pass "
            "the path of a copy you have, or allow downloads with local_files_only=False."
        )
    hint = (
        f"The cache folder is {dest.parent}. Download the file by hand into it, e.g. "
        f"`curl -L -o {dest} {source.urls[0]}`, or anywhere and pass the path: "
        f"lightpose.PoseEstimator.from_pretrained('/path/to/{source.file_name}')."
    )
    logger.info("downloading %s (%s) into the cache: %s", source.file_name, source.name, dest)
    _cache.fill(
        dest, source.urls, sha256=source.sha256, size=source.size, validate=validate, options=options, hint=hint
    )
    logger.info("%s is cached at %s", source.name, dest)
    return dest


def _entry_stages(entry: WeightsEntry) -> int:
    return int(entry.meta.get("num_refinement_stages", 1))


def load_model(
    name_or_path_or_url: str | os.PathLike[str] | WeightsEntry | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    progress: bool = True,
    num_refinement_stages: int | None = None,
    **download_options: Any,
) -> tuple[LightweightOpenPose, WeightsEntry | None]:
    """A LightweightOpenPose on CPU in eval mode with the checkpoint's weights, and its entry when one was named.

    Refinement stages: `num_refinement_stages`, else the entry's meta, else 1; extra checkpoint stages are
    ignored, missing or mis-shaped keys raise CheckpointError. The network's heads and `model.skeleton` come from
    the checkpoint's stored `skeleton` (written by `lightpose train`), else the published layout.
    `download_options` go to resolve_checkpoint.
    """
    source = _source(name_or_path_or_url)
    entry = source if isinstance(source, WeightsEntry) and not _is_url(source.name) else None
    if num_refinement_stages is None:
        num_refinement_stages = _entry_stages(entry) if entry is not None else 1
    path = resolve_checkpoint(
        source,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        progress=progress,
        num_refinement_stages=num_refinement_stages,
        **download_options,
    )
    checkpoint = read_checkpoint(path, downloaded=isinstance(source, WeightsEntry))
    skeleton = stored_skeleton(checkpoint, os.fspath(path))
    model = LightweightOpenPose(num_refinement_stages=num_refinement_stages, skeleton=skeleton)
    ignored = load_reference_state(model, checkpoint, source=os.fspath(path))
    if ignored:
        logger.debug("%s: ignored %d checkpoint keys the model does not use", path, len(ignored))
    return model.eval(), entry


register_weights(
    WeightsEntry(
        name=DEFAULT_WEIGHTS,
        urls=(
            "https://download.01.org/opencv/openvino_training_extensions/models/human_pose_estimation/"
            "checkpoint_iter_370000.pth",
            "https://storage.openvinotoolkit.org/repositories/openvino_training_extensions/models/"
            "human_pose_estimation/checkpoint_iter_370000.pth",
        ),
        file_name="checkpoint_iter_370000.pth",
        sha256=None,  # none is published: pinned on first download
        meta={
            "num_refinement_stages": 1,
            "stored_refinement_stages": 3,
            "num_params": 4_091_698,
            "gflops": 15.31,
            "gflops_input_hw": (256, 456),
            "input_height": 256,
            "coco_val2017_ap": 40.0,
            "evaluation": "COCO val2017 keypoints, single scale, no flip, 1 refinement stage",
            "dataset": "COCO 2017 keypoints (18-keypoint OpenPose layout)",
            "license": "Apache-2.0",
            "paper": "https://arxiv.org/abs/1811.12004",
            "source": "https://github.com/Daniil-Osokin/lightweight-human-pose-estimation.pytorch",
        },
    )
)
