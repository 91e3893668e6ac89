"""Carry a pre-pre-trained transformer into a model with another vocabulary.

The input embedding and output head belong to the token space, so they are
left at their fresh initialisation; every other tensor (attention, MLP,
norms) is copied bit for bit. Part specs select further tensors to
re-initialise or freeze, for the paper's ablations:

    attn | mlp | norm | block     all layers   (norm = the two per-layer norms)
    attn:0-5, mlp:3, block:10-23  a layer or an inclusive range
    final_norm | embed | head     the non-layer tensors
"""
from __future__ import annotations

import re

import torch

from ncalm.lm.checkpoint import load_state_strict
from ncalm.lm.model import LlamaLM
from ncalm.lm.config import GLOBAL_PARTS, LAYER_PARTS, TransferConfig, part_spec
from ncalm.settings import SettingError

TOKEN_SPACE = ("embed.weight", "head.weight")


def select(names: list[str], spec: str, n_layer: int) -> set[str]:
    """Parameter names matching one part spec; raises ValueError naming a bad spec."""
    if spec in GLOBAL_PARTS:
        return {GLOBAL_PARTS[spec]} & set(names)
    part, lo, hi = part_spec(spec)  # the spec's form is the setting's check (TransferConfig)
    lo, hi = (0, n_layer - 1) if lo is None else (lo, hi)
    if hi >= n_layer:
        raise ValueError(f"{spec!r}: the model has layers 0-{n_layer - 1} only")
    pattern = re.compile(r"layers\.(\d+)\." + LAYER_PARTS[part])
    return {name for name in names if (m := pattern.match(name)) and lo <= int(m[1]) <= hi}


def select_all(names: list[str], specs: list[str], n_layer: int, key: str = "reinit") -> set[str]:
    """Parameter names matching any of the part specs, those of TransferConfig's setting ``key``
    (a SettingError names it)."""
    try:
        return set().union(*(select(names, s, n_layer) for s in specs))
    except ValueError as exc:
        raise SettingError(key, str(exc)) from None


def transfer(model: LlamaLM, source: dict[str, torch.Tensor], cfg: TransferConfig | None = None,
             origin: str = "checkpoint") -> dict[str, list[str]]:
    """Copy ``source`` tensors into ``model`` (freshly initialised) per ``cfg``; returns what was done.

    Refuses (CheckpointError naming the tensor) any missing, extra or
    mis-shaped tensor among those it copies. With ``keep_embeddings`` equal
    shapes do not mean equal tokens: the caller must give both models one
    tokenizer (the trainer reads the new text with the source's).
    """
    cfg = cfg or TransferConfig()
    params = dict(model.named_parameters())
    reinit = select_all(list(params), cfg.reinit, model.cfg.n_layer, "reinit")
    if not cfg.keep_embeddings:
        reinit |= set(TOKEN_SPACE)
    # The re-initialised tensors keep their fresh values; load_state_strict names a missing, extra or
    # mis-shaped tensor among the rest.
    tensors = {name: p.detach() for name, p in params.items() if name in reinit}
    tensors.update((name, t) for name, t in source.items() if name not in reinit)
    load_state_strict(model, tensors, origin)
    copied = [name for name in params if name not in reinit]
    if not cfg.keep_embeddings and cfg.token_init == "torch":
        model.embed.reset_parameters()  # N(0, 1)
        model.head.reset_parameters()   # Kaiming-uniform
    frozen = freeze(model, cfg.freeze)
    return {"copied": copied, "reinitialized": sorted(reinit), "frozen": sorted(frozen)}


def freeze(model: LlamaLM, specs: list[str]) -> set[str]:
    """Stop gradients for the parameters the part specs select; returns their names."""
    params = dict(model.named_parameters())
    names = select_all(list(params), specs, model.cfg.n_layer, "freeze")
    for name in names:
        params[name].requires_grad_(False)
    return names
