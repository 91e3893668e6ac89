"""Statistics of a token stream, as baselines for a model's loss."""
from __future__ import annotations

import torch


def unigram_entropy(batches) -> float:
    """Entropy (nats) of the scored targets' token frequencies: the loss of the best context-free model."""
    counts = None
    for _, y in batches:
        y = y[y != -100]
        c = torch.bincount(y.reshape(-1))
        if counts is None:
            counts = c
        else:
            n = max(len(counts), len(c))
            counts = torch.nn.functional.pad(counts, (0, n - len(counts))) + torch.nn.functional.pad(c, (0, n - len(c)))
    if counts is None or counts.sum() == 0:
        raise ValueError("no scored targets to measure")
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())
