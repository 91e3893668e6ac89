"""Batched autoregressive decoding with the model's KV cache.

Rows of one batch must share a prompt length: the model's cache has one
position counter for the whole batch and no padding mask, so prompts are
grouped by token length instead of padded (correct without masks, and the
common case -- n samples of one prompt -- is a single group anyway).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import torch

from ncalm.lm.config import SamplingConfig


def sample_next(logits: torch.Tensor, temperature: float, top_p: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V): greedy, or
    temperature sampling restricted to the top-p nucleus."""
    if temperature == 0:
        return logits.argmax(-1)
    # Shifted before dividing: a tiny temperature would turn the largest logits
    # into inf, and inf - inf into NaN inside the softmax.
    logits = logits.float()
    probs = torch.softmax((logits - logits.amax(-1, keepdim=True)) / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p: the smallest
        # set reaching top_p, and never empty.
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        choice = torch.multinomial(sorted_probs * keep, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def _decode_group(model, prompts: torch.Tensor, max_new_tokens: int, temperature: float,
                  top_p: float, generator, eos_id: int | None,
                  should_stop: Callable[[list[int]], bool] | None, check_every: int) -> list[list[int]]:
    batch, length = prompts.shape
    cache = model.new_cache(batch, length + max_new_tokens)
    logits, _ = model(prompts, cache=cache)
    generated: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    pending: list[torch.Tensor] = []  # sampled on the device, not yet read by the host
    for step in range(max_new_tokens):
        token = sample_next(logits[:, -1], temperature, top_p, generator)
        pending.append(token)
        last = step == max_new_tokens - 1
        if len(pending) == check_every or last:
            # Reading tokens waits for the device: done every check_every steps, so that it can
            # run ahead. Rows are judged token by token all the same; the steps decoded past a
            # row's end are discarded, as are those of finished rows (dropping rows would
            # mean re-slicing the cache for a small saving).
            for row, new in enumerate(torch.stack(pending, 1).tolist()):
                for t in new:
                    if done[row]:
                        break
                    if t == eos_id:
                        done[row] = True
                        break
                    generated[row].append(t)
                    done[row] = should_stop is not None and should_stop(generated[row])
            pending = []
            if all(done) or last:
                break
        logits, _ = model(token[:, None], cache=cache)
    return generated


def generate_ids(model, prompts: Sequence[Sequence[int]], max_new_tokens: int = SamplingConfig.max_new_tokens,
                 temperature: float = SamplingConfig.temperature, top_p: float = SamplingConfig.top_p,
                 batch_size: int = SamplingConfig.batch_size,
                 generator: torch.Generator | None = None, eos_id: int | None = None,
                 should_stop: Callable[[list[int]], bool] | None = None,
                 check_every: int | None = None) -> list[list[int]]:
    """Continuations (new token ids, without EOS) of each prompt, in order.

    Prompts longer than the model's context minus max_new_tokens keep their
    last tokens. `should_stop(generated_ids)` ends a row early. The result is
    a deterministic function of the inputs and the generator's state.
    `check_every` steps are decoded between looks at the tokens (default: 1 on
    the CPU, where looking is free, 16 on a GPU, where it waits for the device);
    the continuations do not depend on it, the generator's state afterwards does.
    """
    SamplingConfig(temperature, top_p, max_new_tokens, (), batch_size)  # validates
    context = model.cfg.max_seq_len
    if max_new_tokens >= context:
        raise ValueError(f"max_new_tokens={max_new_tokens}: must be < the model's context "
                         f"length {context}")
    keep = context - max_new_tokens
    if any(len(p) == 0 for p in prompts):
        raise ValueError("prompts: every prompt needs at least one token")
    device = next(model.parameters()).device
    check_every = check_every or (1 if device.type == "cpu" else 16)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[min(len(p), keep)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for length in sorted(groups):
            rows = groups[length]
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                ids = torch.tensor([list(prompts[i])[-length:] for i in chunk], device=device)
                for i, gen in zip(chunk, _decode_group(model, ids, max_new_tokens, temperature, top_p,
                                                       generator, eos_id, should_stop, check_every)):
                    out[i] = gen
    finally:
        model.train(was_training)
    return out


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    return text[:min((text.find(s) for s in stop if s in text), default=len(text))]


def stop_check(tokenizer, stop: Sequence[str]) -> Callable[[list[int]], bool]:
    """``should_stop(ids)`` for :func:`generate_ids`: whether the text of ``ids`` holds a stop string,
    asked after each new token. Only the tail that a stop string just completed can lie in is
    decoded (a token is at least one byte, a character at most four), not the whole row each time."""
    window = 4 * max(map(len, stop)) + 4

    def should_stop(ids: list[int]) -> bool:
        text = tokenizer.decode(ids[-window:])
        return any(s in text for s in stop)

    return should_stop


def generate(model, tokenizer, prompts: Sequence[str], config: SamplingConfig = SamplingConfig(),
             n: int = 1, generator: torch.Generator | None = None) -> list[list[str]]:
    """`n` text completions per prompt, each cut at the first stop string.

    A completion also ends at the tokenizer's EOS. For a fixed seed of
    `generator` the output is reproducible.
    """
    if n < 1:
        raise ValueError(f"n={n}: the number of samples per prompt must be >= 1")
    stop = config.stop
    encoded = [tokenizer.encode(p) for p in prompts for _ in range(n)]
    ids = generate_ids(model, encoded, config.max_new_tokens, config.temperature, config.top_p,
                       config.batch_size, generator, tokenizer.eos_id, stop_check(tokenizer, stop) if stop else None)
    texts = [truncate_at_stop(tokenizer.decode(g), stop) for g in ids]
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
