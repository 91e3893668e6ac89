"""Dyck-language sequences: the standard synthetic baseline for pre-pre-training.

A stream of ``k`` bracket types (token ``j`` opens type ``j``, token ``k + j``
closes it) nested at most ``max_depth`` deep. At depth 0 the stream opens, at
``max_depth`` it closes, otherwise it opens with probability ``p_open``. The
opening types are random; each closing token is forced by the stack, which is
what a model has to learn. Item ``i`` is a pure function of ``(seed, i)``.
"""
from __future__ import annotations

import numpy as np
import torch

from ncalm.data.config import DataConfig, DyckConfig
from ncalm.data.sharding import chunks, shifted_pairs

VAL_OFFSET = 1 << 40


def dyck_sequence(rng: np.random.Generator, length: int, k: int, max_depth: int, p_open: float) -> np.ndarray:
    """One Dyck token stream of ``length`` tokens: a prefix of a balanced string, so brackets may
    still be open at the end (the model learns to close them from the stack, not from the length)."""
    coin = rng.random(length)
    kinds = rng.integers(0, k, size=length)
    out = np.empty(length, dtype=np.int64)
    stack: list[int] = []
    for t in range(length):
        depth = len(stack)
        if depth == 0 or (depth < max_depth and coin[t] < p_open):
            stack.append(int(kinds[t]))
            out[t] = kinds[t]
        else:
            out[t] = k + stack.pop()
    return out


class DyckSource:
    """Dyck sequences as a :class:`~ncalm.data.sharding.Source`; vocabulary is ``2 * k``."""

    def __init__(self, k: int = DyckConfig.k, max_depth: int = DyckConfig.depth, seq_len: int = DataConfig.seq_len,
                 seed: int = DataConfig.seed, p_open: float = 0.5):
        if k < 1:
            raise ValueError(f"dyck k (bracket types) must be >= 1, got {k}")
        if max_depth < 1:
            raise ValueError(f"dyck max_depth must be >= 1, got {max_depth}")
        if not 0.0 < p_open < 1.0:
            raise ValueError(f"dyck p_open must be in (0, 1), got {p_open}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.k, self.max_depth, self.p_open = k, max_depth, p_open
        self.seq_len, self.seed = seq_len, seed
        self.vocab_size = 2 * k

    def items(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [dyck_sequence(np.random.default_rng([self.seed, int(i)]), self.seq_len + 1,
                              self.k, self.max_depth, self.p_open) for i in indices]
        return shifted_pairs(rows)

    def val_batches(self, batch_size: int, sequences: int):
        return [self.items(ids) for ids in chunks(VAL_OFFSET + np.arange(sequences), batch_size)]

    def describe(self) -> dict:
        return {"kind": "dyck", "k": self.k, "max_depth": self.max_depth, "p_open": self.p_open,
                "seq_len": self.seq_len, "seed": self.seed}
