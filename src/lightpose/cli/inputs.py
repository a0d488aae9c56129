"""What `lightpose predict` reads: SOURCE arguments expanded into inputs (images and videos) with collision-free
output names, and each process's share of them (--shard, torchrun, Slurm)."""

from __future__ import annotations

import glob
import hashlib
import itertools
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from lightpose.errors import UsageError
from lightpose.io import expand_folder_or_pattern, is_image_file, is_url, is_video_file

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Input:
    """One input: `spec` is what is read (a path, a URL or a camera index), `kind` "image" or "video" (a video
    file, a stream or a camera), `rel` its place under the output folder (the input's name, with as much of its
    folder path as keeps equal names apart), `base` rel without the suffix unless that would collide, and `index`
    its position among all inputs of the command (the same in every shard)."""

    spec: str | int
    kind: str
    rel: PurePosixPath
    base: PurePosixPath
    index: int

    @property
    def path(self) -> Path | None:
        """The local file, or None for a URL or camera."""
        return None if isinstance(self.spec, int) or is_url(self.spec) else Path(self.spec)

    @property
    def name(self) -> str:
        return f"camera {self.spec}" if isinstance(self.spec, int) else str(self.spec)


def _kind(path: str) -> str:
    return "image" if is_image_file(path) else "video"


def _expand(spec: str, recursive: bool) -> list[tuple[str | int, str, Path | None]]:
    """(spec, kind, root) triples named by one SOURCE argument; root is the folder its output names are relative
    to (the folder given, a pattern's fixed folder, a file's own folder; None for URLs and cameras)."""
    text = spec.strip()
    if text.isdigit():
        return [(int(text), "video", None)]
    if is_url(text):
        return [(text, _kind(text), None)]
    path = Path(spec)
    files = expand_folder_or_pattern(
        spec, recursive=recursive, accept=lambda p: is_image_file(p) or is_video_file(p), what="image or video"
    )
    if files is not None:  # names relative to the folder given, or to a pattern's fixed leading folders
        root = path if path.is_dir() else Path(*itertools.takewhile(lambda q: not glob.has_magic(q), path.parts))
        return [(str(p), _kind(str(p)), root) for p in files]
    if not path.exists():
        raise FileNotFoundError(f"input not found: {spec}: give image or video files, folders, glob patterns, URLs "
                                "or camera indices")  # fmt: skip
    return [(spec, _kind(spec), path.parent)]


def _local_rels(files: Sequence[tuple[Path, Path]]) -> list[PurePosixPath]:
    """Output names of local files (file, root): the path below its root, lengthened by parent folders where two
    would be equal, until they differ."""
    full = [file.resolve().parts for file, _ in files]
    depth = [len(file.resolve().relative_to(root.resolve()).parts) for file, root in files]
    while True:
        rels = [PurePosixPath(*parts[-n:]) for parts, n in zip(full, depth)]
        counts = Counter(rels)
        clashes = [i for i, rel in enumerate(rels) if counts[rel] > 1 and depth[i] < len(full[i]) - 1]
        if not clashes:
            return rels
        for i in clashes:
            depth[i] += 1


def _url_rel(url: str) -> PurePosixPath:
    parts = urlsplit(url)
    pieces = [_UNSAFE.sub("_", parts.netloc) or "url"] + [_UNSAFE.sub("_", p) for p in parts.path.split("/") if p]
    rel = PurePosixPath(*pieces) if len(pieces) > 1 else PurePosixPath(pieces[0], "stream")
    if parts.query:  # ?id=1 and ?id=2 are different inputs
        digest = hashlib.sha1(url.encode()).hexdigest()[:8]
        rel = rel.with_name(f"{PurePosixPath(rel.name).stem}-{digest}{PurePosixPath(rel.name).suffix}")
    return rel


def expand_sources(specs: Sequence[str], *, recursive: bool = False) -> list[Input]:
    """The inputs named by SOURCE arguments: image and video files, folders (sorted; `recursive` includes
    sub-folders), glob patterns, http(s)/rtsp URLs and camera indices, each once, in the order given."""
    found: list[tuple[str | int, str, Path | None]] = []
    seen: set[str | int] = set()
    for spec in specs:
        for item, kind, root in _expand(spec, recursive):
            key = item if isinstance(item, int) or is_url(item) else str(Path(item).resolve())
            if key not in seen:
                seen.add(key)
                found.append((item, kind, root))
    local = [(Path(item), root) for item, _, root in found if isinstance(item, str) and root is not None]
    local_rels = iter(_local_rels(local))
    rels: list[PurePosixPath] = []
    for item, _, root in found:
        if isinstance(item, int):
            rels.append(PurePosixPath(f"camera{item}"))
        elif root is None:
            rels.append(_url_rel(item))
        else:
            rels.append(next(local_rels))
    stems = Counter((rel.parent, rel.stem, kind) for rel, (_, kind, _) in zip(rels, found))
    return [
        Input(item, kind, rel, rel if stems[(rel.parent, rel.stem, kind)] > 1 else rel.with_suffix(""), index)
        for index, (rel, (item, kind, _)) in enumerate(zip(rels, found))
    ]


def parse_shard(spec: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(rank, world size) from --shard I/N (0 <= I < N), else RANK/WORLD_SIZE (torchrun), else
    SLURM_PROCID/SLURM_NTASKS (Slurm), else (0, 1)."""
    if spec is not None:
        rank_text, _, world_text = spec.partition("/")
        if not (rank_text.isdigit() and world_text.isdigit()) or not 0 <= int(rank_text) < int(world_text):
            raise UsageError(f"--shard expects I/N with 0 <= I < N (e.g. 0/4), got {spec!r}")
        return int(rank_text), int(world_text)
    for rank_name, world_name in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_name in environ and world_name in environ:
            rank, world = environ[rank_name], environ[world_name]
            if not (rank.isdigit() and world.isdigit()) or not 0 <= int(rank) < int(world):
                raise UsageError(f"{rank_name}={rank} and {world_name}={world} do not name a process: unset them "
                                 "or pass --shard I/N")  # fmt: skip
            return int(rank), int(world)
    return 0, 1


def shard(inputs: Sequence[Input], rank: int, world: int) -> list[Input]:
    """This process's share: every world-th input, starting at rank (together, each input exactly once)."""
    return [item for item in inputs if item.index % world == rank]
