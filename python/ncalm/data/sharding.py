"""Deterministic, exactly-once batching over DataLoader workers and distributed ranks.

Every source maps a global item index to one ``(inputs, targets)`` sequence as
a pure function. Micro-batch ``m`` of rank ``r`` (``world`` ranks, ``b``
sequences each) holds items ``(m * world + r) * b + j`` for ``j < b``; worker
``k`` of ``K`` produces micro-batches ``m`` with ``m % K == k``, and the
DataLoader interleaves workers round-robin, so the stream seen by each rank
does not depend on the number of workers. Resuming at micro-batch ``m`` is
starting the stream at ``m``: no state beyond one integer.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


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
                workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An iterator over micro-batches (see :class:`ShardedBatches`), with ``workers`` processes."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    dataset = ShardedBatches(source, batch_size, rank, world, start)
    if workers == 0:
        return iter(dataset)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_worker_init,
                        prefetch_factor=2, persistent_workers=False)
    return iter(loader)
