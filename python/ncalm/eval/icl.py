"""NCA in-context accuracy: does the model infer an unseen rule from k frames?

Each test sequence is a fresh rule's trajectory in the generator's frame
layout ``[START, t_1..t_N, END]`` repeated. For k = 1, 2, ... the predictor
sees the first k frames plus the next frame's START and must produce that
frame's N patch tokens. Patch tokens are decoded back to cells and compared
with the true frame: *cell accuracy* is the fraction of cells right,
*frame accuracy* the fraction of frames with every cell right. A predicted
token that is not a patch token (START/END) gets all its cells wrong.

The predictor is any ``predict(context, n) -> tokens`` function, so the model
(greedy decoding with the KV cache), oracles and trivial baselines are
evaluated by the same accounting.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from ncalm.eval.config import IclConfig
from ncalm.lm.sampling import generate_ids

# Sequence ids for ICL rules: the top 2**32 of the generator's 2**40 ids, far from the
# training (0, 1, ...) and validation streams, so the rules are new to the model.
ICL_OFFSET = (1 << 40) - (1 << 32)

# context (B, T) int64 -> the next n tokens (B, n)
Predictor = Callable[[np.ndarray, int], np.ndarray]


def patch_cells(tokens: np.ndarray, colors: int, patch: int) -> np.ndarray:
    """Cells of patch tokens: (..., p*p) with digit j = r*p + c; -1 for non-patch tokens."""
    tokens = np.asarray(tokens, dtype=np.int64)
    digits = (tokens[..., None] // colors ** np.arange(patch * patch)) % colors
    valid = (tokens >= 0) & (tokens < colors ** (patch * patch))
    return np.where(valid[..., None], digits, -1)


def max_context_frames(max_seq_len: int, frame_len: int) -> int:
    """The largest k whose prediction stays inside a context of ``max_seq_len`` positions.

    The model reads k frames and START (k*F + 1 tokens) and then its own
    patches but the last (F - 3 more): k*F + F - 2 positions in all.
    """
    return (max_seq_len + 2) // frame_len - 1


def icl_accuracy(predict: Predictor, tokens: np.ndarray, frame_len: int, colors: int, patch: int,
                 ks: Sequence[int], batch_size: int = IclConfig.batch_size, progress: bool = False,
                 desc: str = "icl") -> list[dict]:
    """Cell and frame accuracy of ``predict`` for each k in ``ks`` on ``tokens`` (n, T).

    ``progress`` shows a bar over the k x batch predictions on stderr, labelled ``desc``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(k < 1 for k in ks):  # before any prediction, not after the first ks have run
        raise ValueError(f"ks: every k must be >= 1 (frames of context), got {min(ks)}")
    tokens = np.asarray(tokens, dtype=np.int64)
    n_patches = frame_len - 2
    starts = range(0, len(tokens), batch_size)
    rows = []
    # Greedy decoding of many rules at large k takes minutes on a CPU: show it moving.
    with tqdm(total=len(ks) * len(starts), desc=desc, unit="batch", disable=not progress,
              dynamic_ncols=True) as bar:
        for k in ks:
            end = k * frame_len + 1  # context: k whole frames and the next START; target: that frame's patches
            if tokens.shape[1] < end + n_patches:
                raise ValueError(f"k={k}: sequences of {tokens.shape[1]} tokens hold fewer than k+1 frames")
            context, target = tokens[:, :end], tokens[:, end:end + n_patches]
            batches = []
            for i in starts:
                pred = np.asarray(predict(context[i:i + batch_size], n_patches))
                want = target[i:i + batch_size]
                if pred.shape != want.shape:
                    raise ValueError(f"predictor returned shape {pred.shape}, expected {want.shape}")
                right = patch_cells(pred, colors, patch) == patch_cells(want, colors, patch)
                batches.append(right.reshape(len(want), -1))
                bar.update()
            right = np.concatenate(batches)  # (sequences, cells): whether each cell is right
            rows.append({"k": int(k), "cell_acc": float(right.mean(axis=1).mean()),
                         "frame_acc": float(right.all(axis=1).mean()), "n": len(tokens)})
    return rows


def greedy_predictor(model) -> Predictor:
    """Greedy decoding with ``model``'s KV cache, on the model's device (ncalm.lm.sampling's decoder)."""

    def predict(context: np.ndarray, n: int) -> np.ndarray:
        return np.array(generate_ids(model, context.tolist(), n, batch_size=len(context)), dtype=np.int64)

    return predict


def copy_last_frame_predictor(frame_len: int) -> Predictor:
    """Baseline: predict that the last frame repeats (what a rule-blind model can do)."""

    def predict(context: np.ndarray, n: int) -> np.ndarray:
        # context ends with [..., START, t_1..t_N, END, START]
        return context[:, -frame_len:-2][:, :n]

    return predict


def icl_bytes(cfg, n: int, frames: int, batch_size: int = IclConfig.batch_size) -> int:
    """Peak memory of one band of ``n`` rules of ``frames`` frames in `ncalm eval icl`: per token, the int32
    tokens, their int64 copy and the previous band's (20 B); per rule, its ids and ratios and each k's cells
    right (twice, before and after concatenating); per cell of a batch, patch_cells' int64 digits (32 B)."""
    return n * (20 * frames * cfg.frame_len + 32 + 2 * cfg.grid**2) + 32 * min(n, batch_size) * cfg.grid**2


def icl_sequences(cfg, seed: int, n: int, frames: int, band: tuple[float, float] | None) -> np.ndarray:
    """``n`` sequences of ``frames`` whole frames, each a fresh rule from ``band``.

    ``band`` replaces ``cfg.band``; None means every rule (no filter), as in
    NCAConfig. Pass ``cfg.band`` for the training band. Ids start at ``ICL_OFFSET``.
    """
    from ncalm import sequence_tokens

    if n < 1:
        raise ValueError(f"n (rules per band) must be >= 1, got {n}")
    # sequence_tokens gives seq_len + 1 tokens
    test = cfg.replace(seq_len=frames * cfg.frame_len - 1, band=None if band is None else tuple(band))
    ids = np.arange(n, dtype=np.uint64) + np.uint64(ICL_OFFSET)
    return np.asarray(sequence_tokens(test, seed, ids), dtype=np.int64)


def evaluate_icl(predict: Predictor, cfg, seed: int, n: int, ks: Sequence[int],
                 bands: dict[str, tuple[float, float] | None], batch_size: int = IclConfig.batch_size,
                 progress: bool = False) -> dict:
    """``{band name: [per-k rows]}`` for ``n`` fresh rules of each band (``progress``: a bar per band).

    A band of None is every rule, unfiltered; pass ``cfg.band`` for the training band.
    """
    if not ks:
        raise ValueError("ks: give at least one k")
    return {name: icl_accuracy(predict, icl_sequences(cfg, seed, n, max(ks) + 1, band), cfg.frame_len, cfg.colors,
                               cfg.patch, ks, batch_size, progress, desc=f"icl {name}")
            for name, band in bands.items()}
