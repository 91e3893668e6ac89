"""Statistics of a token stream, as baselines for a model's loss."""
from __future__ import annotations

import torch


def unigram_entropy(batches) -> float:
    """Entropy (nats) of the scored targets' token frequencies: the loss of the best context-free model."""
    scored = [y[y != -100] for _, y in batches]  # all at once: the batches (validation) are in memory anyway
    counts = torch.bincount(torch.cat(scored)) if scored else torch.zeros(0)
    if counts.sum() == 0:
        raise ValueError("no scored targets to measure")
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())
