"""Deterministic, exactly-once batching over DataLoader workers and distributed ranks.

Every source maps a global item index to one ``(inputs, targets)`` sequence as
a pure function. Micro-batch ``m`` of rank ``r`` (``world`` ranks, ``b``
sequences each) holds items ``(m * world + r) * b + j`` for ``j < b``; worker
``k`` of ``K`` produces micro-batches ``m`` with ``m % K == k``, and the
DataLoader interleaves workers round-robin, so the stream seen by each rank
does not depend on the number of workers. Resuming at micro-batch ``m`` is
starting the stream at ``m``: no state beyond one integer. On CUDA the trainer reads them
through a :class:`Prefetcher`, which makes them ahead on a side stream.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ncalm.data.config import DataConfig


class Source(Protocol):
    """A function from item indices to training sequences."""

    vocab_size: int
    seq_len: int

    def items(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """int64 (n, seq_len) inputs and targets (-100 = not scored) for global item ``indices``."""

    def val_batches(self, batch_size: int, sequences: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out set: its first ``sequences`` sequences (fewer where the data has fewer), in batches
        of ``batch_size`` (the last may be smaller). The sequences do not depend on ``batch_size``, calls or ranks."""

    def describe(self) -> dict:
        """A JSON-able description stored in checkpoints and metrics."""


def shifted_pairs(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for next-token prediction from rows of seq_len + 1 tokens."""
    t = torch.from_numpy(np.stack(rows))
    return t[:, :-1].contiguous(), t[:, 1:].contiguous()


def chunks(ids: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``ids`` in consecutive batches of ``batch_size`` (the last may be smaller)."""
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def micro_batch_items(m: int, rank: int, world: int, batch_size: int) -> np.ndarray:
    """Global item indices of micro-batch ``m`` on ``rank``."""
    base = (m * world + rank) * batch_size
    return np.arange(base, base + batch_size, dtype=np.int64)


class ShardedBatches(IterableDataset):
    """Endless micro-batches of ``source`` for one rank, starting at micro-batch ``start``."""

    def __init__(self, source: Source, batch_size: int, rank: int = 0, world: int = 1, start: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.source, self.batch_size = source, batch_size
        self.rank, self.world, self.start = rank, world, start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        m = self.start + worker
        while True:
            yield self.source.items(micro_batch_items(m, self.rank, self.world, self.batch_size))
            m += workers


def _worker_init(_: int) -> None:
    # Workers share the machine's cores with the trainer; one thread each avoids oversubscription.
    torch.set_num_threads(1)


def make_loader(source: Source, batch_size: int, rank: int = 0, world: int = 1, start: int = 0,
                workers: int = DataConfig.workers,
                pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An iterator over micro-batches (see :class:`ShardedBatches`), with ``workers`` processes
    (whose batches arrive in pinned memory with ``pin_memory``; see :func:`pins_memory`)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    dataset = ShardedBatches(source, batch_size, rank, world, start)
    if workers == 0:
        return iter(dataset)
    return iter(DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_worker_init,
                           prefetch_factor=2, persistent_workers=False, pin_memory=pin_memory))


def pins_memory(device: torch.device | str) -> bool:
    """Whether batches made on the CPU for training on ``device`` go through pinned memory: only for CUDA,
    where a copy from pinned memory runs asynchronously (one from pageable memory waits for the GPU)."""
    return torch.device(device).type == "cuda"


_END = object()  # the batch iterator is exhausted


class Prefetcher:
    """The micro-batches of ``batches``, made ``depth`` ahead by a background thread, ready on ``device``.

    On CUDA the thread works on a side stream: NCA data generated on the GPU (the CUDA generator
    enqueues on the current stream) and CPU-made batches (pinned, then copied without blocking) are
    made there while the training step runs on the compute stream. The compute stream waits on an
    event before it reads a batch, never the host; ``record_stream`` keeps the allocator from reusing a
    batch's memory before the step is done with it. On the CPU there is no stream: the same thread and
    queue, nothing more. One thread reads ``batches``, in order: the data and its order are unchanged.
    Errors of the thread are raised by ``next``; :meth:`close` stops it.
    """

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device | str,
                 depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"
        self._batches = batches
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="ncalm-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            side = torch.cuda.Stream(self.device) if self._cuda else None
            on_side = torch.cuda.stream(side) if side is not None else contextlib.nullcontext()
            with torch.cuda.device(self.device) if self._cuda else contextlib.nullcontext(), on_side:
                for x, y in self._batches:
                    ready = None
                    if side is not None:
                        x, y = (t.pin_memory().to(self.device, non_blocking=True) if t.device.type == "cpu" else t
                                for t in (x, y))
                        ready = torch.cuda.Event()
                        ready.record(side)
                    if not self._put((x, y, ready)):
                        return
            self._put(_END)
        except BaseException as exc:  # raised in the training thread by __next__
            self._put(exc)

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        item = self._queue.get()
        if item is _END or isinstance(item, BaseException):
            self._stop.set()
            if item is _END:
                raise StopIteration
            raise item
        x, y, ready = item
        if ready is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(ready)  # the GPU waits, the host goes on
            for t in (x, y):
                t.record_stream(compute)
        return x, y

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread (it finishes the batch it is making) and drop what it made."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout)


def device_batches(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device | str,
                   depth: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` as the trainer reads them on ``device``: through a :class:`Prefetcher` on CUDA, where
    making them overlaps the step; unchanged on the CPU, where the step and the data share the cores."""
    return Prefetcher(batches, device, depth) if torch.device(device).type == "cuda" else batches
