"""The one frame pipeline: read and prepare -> network -> decode and track, as overlapping stages.

Stages run in their own threads joined by small queues, so reading and preparing the next frame, and decoding the
previous one, overlap the network (which releases the GIL in torch, onnxruntime and OpenVINO). Order is kept; an
exception in any stage is raised in the consumer; closing the generator stops every stage.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from lightpose.preprocess import InputTransform, prepare_input
from lightpose.sources import Frame

T = TypeVar("T")
_DONE = object()


@dataclass(frozen=True)
class Prepared:
    """A frame made ready for the network: input (3, H, W) float32, its transform, preparation time (ms)."""

    frame: Frame
    inputs: np.ndarray
    transform: InputTransform
    preprocess_ms: float


def prepare_frame(frame: Frame, height: int, started: float | None = None) -> Prepared:
    """Resize, normalise and pad one frame for the network; `preprocess_ms` counts from `started` (e.g. before the
    frame was read) or from now."""
    start = time.perf_counter() if started is None else started
    inputs, transform = prepare_input(frame.image, height)
    return Prepared(frame, inputs, transform, (time.perf_counter() - start) * 1e3)


@dataclass(frozen=True)
class Inferred:
    """A prepared frame with its network maps (heatmaps (C, h, w), PAFs (2L, h, w)) and network time (ms)."""

    prepared: Prepared
    heatmaps: np.ndarray
    pafs: np.ndarray
    network_ms: float


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stage(Generic[T]):
    """A thread feeding a bounded queue from an iterator; `stop` ends it at the next put."""

    def __init__(self, produce: Iterable[T], maxsize: int, name: str, stop: threading.Event) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = stop
        self._produce = produce
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._produce:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failure(error))

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def ready(self) -> T | None:
        """The next item if one is ready now, else None; the end of the stream and a failure stay queued for the
        iterator (nothing is queued after them, so putting one back keeps the order)."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _DONE or isinstance(item, _Failure):
            self._queue.put(item)
            return None
        return item

    def join(self) -> None:
        self._thread.join(timeout=5.0)


def batches(
    items: Iterator[Prepared], ready: Callable[[], Prepared | None], batch_size: int
) -> Iterator[list[Prepared]]:
    """Group each item with up to batch_size - 1 already-ready items of the same input size (never waits)."""
    pending: Prepared | None = None
    for first in items:
        batch = [pending] if pending is not None else []
        pending = None
        if batch and batch[0].transform.input_size != first.transform.input_size:
            yield batch
            batch = []
        batch.append(first)
        while len(batch) < batch_size:
            extra = ready()
            if extra is None:
                break
            if extra.transform.input_size != batch[0].transform.input_size:
                pending = extra
                break
            batch.append(extra)
        yield batch
    if pending is not None:
        yield [pending]


def run(
    prepared: Iterable[Prepared],
    network: Callable[[list[Prepared]], list[Inferred]],
    finish: Callable[[Inferred], T],
    *,
    batch_size: int = 1,
) -> Iterator[T]:
    """Prepared frames -> network (batched) -> `finish` (decode, track) -> results, in input order."""
    stop = threading.Event()
    reader: _Stage[Prepared] = _Stage(prepared, 2, "lightpose-read", stop)

    def infer() -> Iterator[list[Inferred]]:
        for batch in batches(iter(reader), reader.ready, batch_size):
            yield network(batch)

    inferrer: _Stage[list[Inferred]] = _Stage(infer(), 1, "lightpose-network", stop)
    try:
        for results in inferrer:
            for inferred in results:
                yield finish(inferred)
    finally:
        stop.set()
        inferrer.join()
        reader.join()
