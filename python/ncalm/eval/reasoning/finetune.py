"""Supervised fine-tuning on (prompt, target) text pairs: a plain loop.

The loss covers the target tokens (and the closing EOS) only, so the model
learns to answer, not to reproduce questions.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from ncalm.eval.reasoning.config import ReasoningConfig


def finetune(model, tokenizer, pairs: Sequence[tuple[str, str]], epochs: int = ReasoningConfig.finetune_epochs,
             lr: float = ReasoningConfig.finetune_lr, batch_size: int = ReasoningConfig.finetune_batch_size,
             seed: int = ReasoningConfig.seed,
             on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train `model` in place with AdamW at a constant `lr`; returns the loss
    of every step. `on_step(step, loss)` is called after each step."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: must be >= 1")
    if not lr > 0:
        raise ValueError(f"lr={lr}: must be > 0")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    max_len = model.cfg.max_seq_len
    rows = []
    for prompt, target in pairs:
        p, t = tokenizer.encode(prompt), tokenizer.encode(target) + [tokenizer.eos_id]
        ids = (p + t)[:max_len + 1]  # the right end goes first: the question must stay
        labels = ([-100] * len(p) + t)[:max_len + 1]
        if any(x != -100 for x in labels[1:]):
            rows.append((ids, labels))
    if not rows:
        raise ValueError("pairs: no example has a target token inside the model's context")
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order_rng = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows), generator=order_rng).tolist()
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start:start + batch_size]]
            # Right padding is invisible to a causal model; its labels are ignored.
            idx = pad_sequence([torch.tensor(ids[:-1]) for ids, _ in batch], batch_first=True,
                               padding_value=tokenizer.eos_id)
            tgt = pad_sequence([torch.tensor(labels[1:]) for _, labels in batch], batch_first=True, padding_value=-100)
            _, loss = model(idx.to(device), targets=tgt.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(len(losses), losses[-1])
    model.eval()
    return losses
