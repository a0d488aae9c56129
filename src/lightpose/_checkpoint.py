"""The one checkpoint reader and the one state-dict fitter.

`read_checkpoint` never runs pickled code: it is `torch.load(weights_only=True)` plus the few types a train.py
checkpoint needs. Before and after torch it tells apart a file that is no checkpoint at all (says what it looks
like: a web page, text, an ONNX model, random bytes) from a checkpoint whose pickle names objects that could run
code (names them; never advises another way of loading a downloaded file). `fit_state_dict` copies a checkpoint's
tensors into a network, naming every missing, mis-shaped or non-finite tensor.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from lightpose.errors import CheckpointError, UnsafeCheckpointError
from lightpose.skeleton import OPENPOSE_COCO, Skeleton

__all__ = [
    "TRAINING_STATE_GLOBALS",
    "Fit",
    "extract_state_dict",
    "fit_state_dict",
    "identify_bytes",
    "load_reference_state",
    "looks_like_html",
    "looks_like_mobilenet",
    "read_checkpoint",
    "stored_skeleton",
]

# What genuine train.py checkpoints hold beyond torch's weights_only allow-list: MultiStepLR keeps its
# milestones in a Counter. Exactly these are let through; anything else is refused.
TRAINING_STATE_GLOBALS: tuple[Any, ...] = (collections.Counter,)
# Modules whose functions run commands, touch files or import code: a pickle naming them is built to do harm.
_CODE_MODULE_NAMES = (
    "builtins __builtin__ os posix nt sys subprocess shutil socket importlib runpy pty code codeop webbrowser "
    "ctypes pickle marshal types io pathlib tempfile multiprocessing threading signal operator functools "
    "requests urllib http"
)
_CODE_MODULES = frozenset(_CODE_MODULE_NAMES.split())
_HEAD_BYTES = 4096
_MOBILENET_HINT = (
    "it holds ImageNet MobileNet v1 weights (module.model.N... keys), a backbone to start training from: "
    "pass it to `lightpose train --checkpoint FILE --from-mobilenet`"
)


# -- reading ----------------------------------------------------------------------------------------------------


def read_checkpoint(path: str | os.PathLike[str], *, downloaded: bool = False) -> dict[str, Any]:
    """What a checkpoint file holds (a state dict or a train.py-style dict), read on CPU with weights_only=True.

    `downloaded` marks a file that came from the network: its refusal never suggests loading it another way.
    Raises FileNotFoundError (missing), IsADirectoryError (a folder), PermissionError, CheckpointError (not a
    checkpoint: says what the file looks like; corrupt or truncated; not a dict) and UnsafeCheckpointError (its
    pickle names objects outside the weights-only allow-list, named in the message; nothing was executed).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a checkpoint file: pass the .pth file inside it")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}: check the path")
    with open(path, "rb") as file:
        head = file.read(_HEAD_BYTES)
    _refuse_non_checkpoint(path, head)
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    allow = safe_globals(list(TRAINING_STATE_GLOBALS)) if safe_globals is not None else contextlib.nullcontext()
    try:
        with allow, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a plain pickle: explained below
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc, downloaded) from None
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise
    except (RuntimeError, EOFError, ValueError, KeyError, OSError, zipfile.BadZipFile, struct.error) as exc:
        raise CheckpointError(
            f"{path} is a corrupt or truncated checkpoint ({_first_line(exc)}): download or copy it again"
        ) from exc
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint (a state dict or a dict with "
            "'state_dict'): save model.state_dict() instead"
        )
    return dict(checkpoint)


def _refuse_non_checkpoint(path: Path, head: bytes) -> None:
    """CheckpointError unless `head` starts like a torch file (zip with data.pkl, pickle, legacy tar)."""
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(
                f"{path} is a truncated or corrupt zip checkpoint ({exc}; an interrupted download or copy?): "
                "download or copy it again"
            ) from exc
        if any(n.endswith("constants.pkl") for n in names):
            raise CheckpointError(
                f"{path} is a TorchScript model (torch.jit.save), not a checkpoint: save model.state_dict() "
                "with torch.save and pass that file"
            )
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise CheckpointError(
                f"{path} is not a checkpoint: it is a zip archive without data.pkl ({shown or 'empty'}), e.g. a "
                "NumPy .npz: pass a file written by torch.save"
            )
        return
    if _is_pickle(head) or head[257:262] == b"ustar":  # torch.save's legacy format, a plain pickle, a 0.1 tar
        return
    what, action = identify_bytes(head, path.stat().st_size)
    raise CheckpointError(f"{path} is not a PyTorch checkpoint: it looks like {what}: {action}")


def _is_pickle(head: bytes) -> bool:
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def looks_like_html(head: bytes) -> bool:
    """Whether bytes start like a web page (`<!doctype html`, `<html`, `<head`, ... after whitespace)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<title", b"<script")) or (
        start.startswith(b"<") and b"<html" in start[:1024]
    )


_DEFAULT_ACTION = "pass a .pth file written by torch.save"


def identify_bytes(head: bytes, size: int) -> tuple[str, str]:
    """(what a file starting with `head`, of `size` bytes, looks like; what to do), for error messages."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if size == 0:
        return "an empty file (0 bytes)", _DEFAULT_ACTION
    if looks_like_html(head):
        return (
            "an HTML web page (a share link or an error page saved instead of the file?)",
            "download the file itself (a direct link)",
        )
    if stripped.startswith(b"<?xml"):
        if b"<net " in head:
            return "an OpenVINO IR model (.xml)", "pass the .xml path to PoseEstimator.from_pretrained"
        return "an XML document", _DEFAULT_ACTION
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data", "decompress it first (gunzip)"
    if len(head) > 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        return "a safetensors file", "convert it with safetensors.torch.load_file and torch.save"
    if len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 32 and 2 <= head[2] >> 3 <= 20:
        return "an ONNX model", "load .onnx files with PoseEstimator.from_pretrained('model.onnx') (lightpose[onnx])"
    text = _as_text(head)
    if text is not None and stripped[:1] in (b"{", b"["):
        return "JSON text", _DEFAULT_ACTION
    if text is not None:
        return f"a text file (starting {text.strip()[:40]!r})", _DEFAULT_ACTION
    return f"binary data of no known format (random bytes?) starting {head[:8].hex(' ')}", _DEFAULT_ACTION


def _as_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the head
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if text and printable >= 0.95 * len(text) else None


def _refusal(path: Path, exc: pickle.UnpicklingError, downloaded: bool) -> CheckpointError:
    """The error for a file weights-only unpickling refused: unsafe globals named, or not a torch pickle."""
    message = str(exc)
    # torch names the first global it refuses (builtins without their module); else read them from the pickle
    named = [n if "." in n else f"builtins.{n}" for n in re.findall(r"GLOBAL ([\w.]+)", message)]
    names = named or [g for g in _pickle_globals(path) if not g.startswith(("torch.", "collections.", "_codecs."))]
    if not names:
        reason = next((line.strip() for line in message.splitlines() if "Unsupported operand" in line), "")
        return CheckpointError(
            f"{path} is not a torch checkpoint lightpose can read: its pickle data is corrupt or was not written by "
            f"torch.save ({reason or _first_line(exc)}): pass a .pth file written by torch.save"
        )
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    text = f"refused to load {path}: its pickle names {shown} (objects that could run code when loaded; nothing ran)"
    if any(name.split(".")[0] in _CODE_MODULES for name in names):
        action = "it is built to run code: delete it and do not load it any other way"
    elif downloaded:
        action = "do not load it any other way: use the publisher's checkpoint or one you trained yourself"
    else:
        action = (
            "lightpose loads weights only. If you wrote this file yourself, re-save only its tensors where you "
            "made it (torch.save(checkpoint['state_dict'], 'weights.pth')) and pass that file"
        )
    return UnsafeCheckpointError(f"{text}: {action}")


def _pickle_globals(path: Path) -> list[str]:
    """module.name of every global the file's object pickle imports, read without unpickling (best effort)."""
    found: list[str] = []
    with contextlib.suppress(Exception), _pickle_stream(path) as stream:
        for _ in range(5):  # legacy torch files: magic number, protocol, sys info, the object, storage keys
            found.extend(_globals_in_one_pickle(stream))
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def _pickle_stream(path: Path) -> Iterator[IO[bytes]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            yield io.BytesIO(archive.read(name))
    else:
        with open(path, "rb") as file:
            yield file


def _globals_in_one_pickle(stream: IO[bytes]) -> list[str]:
    found: list[str] = []
    strings: list[Any] = []
    memo: dict[Any, Any] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif "UNICODE" in opcode.name or "STRING" in opcode.name:
            strings.append(arg)
        elif opcode.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
            memo[arg] = strings[-1]
        elif opcode.name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif opcode.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
            strings.append(memo[arg])
    return found


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# -- fitting ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """What `fit_state_dict` did: model keys copied, model keys left at their initialisation, checkpoint keys
    the model does not have."""

    loaded: list[str]
    kept: list[str]
    ignored: list[str]


def extract_state_dict(checkpoint: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor state dict of a bare state dict or of a train.py-style dict holding `state_dict`.

    Strips a `module.` prefix (DataParallel/DDP checkpoints). CheckpointError for anything else.
    """
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        if isinstance(checkpoint, Mapping):
            keys = ", ".join(repr(k) for k in list(checkpoint)[:5]) + (", ..." if len(checkpoint) > 5 else "")
            got = f"a dict with keys {keys or 'none'} that are not all tensors"
        else:
            got = f"a {type(checkpoint).__name__}"
        raise CheckpointError(
            f"{source} is not a state dict: expected a mapping of tensors or a dict with 'state_dict', got {got}"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def looks_like_mobilenet(state: Mapping[str, Any]) -> bool:
    """Whether a state dict (`module.` stripped) holds only an ImageNet MobileNet v1 (`model.N...`, `fc.*`)."""
    return any(k.startswith("model.") for k in state) and all(k.startswith(("model.", "fc.")) for k in state)


def fit_state_dict(
    model: nn.Module,
    checkpoint: Any,
    source: str = "checkpoint",
    *,
    include: Callable[[str], bool] = lambda key: True,
    optional: Callable[[str], bool] = lambda key: False,
) -> Fit:
    """Copy the checkpoint's tensors into the `include`d keys of `model`; every other model key keeps its value.

    `num_batches_tracked` buffers and `optional` keys may be missing (they keep their initialisation); checkpoint
    keys the model lacks are ignored. Raises CheckpointError naming every required key that is missing, has the
    wrong shape or holds NaN/inf, before anything is copied.
    """
    state = extract_state_dict(checkpoint, source)
    target = model.state_dict()
    wanted = [k for k in target if include(k)]
    missing = [k for k in wanted if k not in state and not k.endswith("num_batches_tracked") and not optional(k)]
    wrong_shape = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(target[k].shape)})"
        for k in wanted
        if k in state and state[k].shape != target[k].shape
    ]
    if missing or wrong_shape:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} missing key(s): {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
            )
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} key(s) of the wrong shape: {', '.join(wrong_shape[:10])}")
        beyond_backbone = any(not k.startswith("model.") for k in missing)
        hint = f"; {_MOBILENET_HINT}" if beyond_backbone and looks_like_mobilenet(state) else ""
        raise CheckpointError(f"{source} does not fit {_describe(model)}: " + "; ".join(parts) + hint)
    loaded = [k for k in wanted if k in state]
    broken = [
        f"{k} ({int((~torch.isfinite(state[k])).sum())} of {state[k].numel()} values)"
        for k in loaded
        if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())
    ]
    if broken:
        raise CheckpointError(
            f"{source} holds NaN or inf weights in {len(broken)} tensor(s): {', '.join(broken[:5])}"
            + (" ..." if len(broken) > 5 else "")
            + ": the weights are broken (a training run that diverged?); use an earlier checkpoint"
        )
    model.load_state_dict({**target, **{k: state[k] for k in loaded}}, strict=True)
    return Fit(
        loaded=loaded,
        kept=[k for k in wanted if k not in state and not k.endswith("num_batches_tracked")],
        ignored=[k for k in state if k not in target],
    )


def stored_skeleton(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> Skeleton:
    """The skeleton a checkpoint stores as plain data under `skeleton` (`Skeleton.to_dict()`, written by
    `lightpose train`); the published layout when it stores none (the published checkpoint, the reference's
    train.py, a bare state dict). CheckpointError when the stored data is not a valid skeleton."""
    data = checkpoint.get("skeleton")
    if data is None:
        return OPENPOSE_COCO
    try:
        return Skeleton.from_dict(data)
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"{source} stores a skeleton lightpose cannot rebuild ({error}): the file is damaged or was edited; "
            "use the checkpoint as training wrote it"
        ) from error


def _describe(model: nn.Module) -> str:
    stages = getattr(model, "num_refinement_stages", None)
    name = type(model).__name__
    return name if stages is None else f"{name}({stages} refinement stage{'s' if stages != 1 else ''})"


def load_reference_state(model: nn.Module, checkpoint: Any, source: str = "checkpoint") -> list[str]:
    """Load a reference-format checkpoint into `model`, strictly: every model key present with its shape.

    Accepts a bare state dict or a dict with `state_dict`, `module.` prefixes, present or absent
    `num_batches_tracked` buffers, and extra keys (e.g. the published checkpoint's refinement stages 2-3), which
    are returned. Raises CheckpointError (see `fit_state_dict`): never a silent random init.
    """
    return fit_state_dict(model, checkpoint, source).ignored
