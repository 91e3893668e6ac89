"""Control streams for NCA pre-pre-training: what is left when the NCA's dynamics are taken away.

Each control is an :class:`~ncalm.data.nca.NCASource` with one thing changed,
so it shares the NCA stream's config, seeds, ids, sequence length, vocabulary
and first-frame masking (the arm kinds of ``ncalm experiment`` pick them via
``data.control``):

- ``shuffle-frames``: every sequence's frames in a random order. The first
  frame (context only, never scored) stays first and the trailing partial
  frame stays last, so each sequence keeps its token multiset, its scored-token
  multiset and its frame delimiters in place; only the order in time of the
  complete frames after the first is destroyed.
- ``shuffle-tokens``: the patch tokens of every frame (the partial one too)
  permuted among that frame's patch positions, delimiters in place: each frame
  keeps its multiset (so the colour counts keep their dynamics), the spatial
  layout is destroyed.
- ``unigram``: the frame skeleton (delimiters) in place and every patch token
  drawn i.i.d. from the NCA stream's patch-token frequencies, estimated on
  ``UNIGRAM_SEQUENCES`` NCA sequences with ids disjoint from training and
  validation.
- ``fixed-rules``: the rule pool of epoch 0 for every epoch (the public
  reference code's accident); needs ``pool_size``.

The permutations and draws are a pure function of (seed, control, sequence id),
like the NCA sequences themselves, so batches do not depend on workers, ranks
or resumes.
"""
from __future__ import annotations

import numpy as np

from ncalm.data.config import CONTROLS, DataConfig
from ncalm.data.nca import VAL_OFFSET, NCASource

# Sequence ids the unigram estimate is measured on: in the validation range, far above the ids
# validation uses, so neither training nor validation sequences are among them.
UNIGRAM_OFFSET = VAL_OFFSET + (1 << 37)
UNIGRAM_SEQUENCES = 256
_TAGS = {name: i for i, name in enumerate(CONTROLS)}  # one random stream per control


def _rng(seed: int, control: str, seq_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TAGS[control], int(seq_id)])


def _host(tokens) -> np.ndarray:
    """A backend's tokens as a numpy array (the CUDA backend's are on the GPU)."""
    return tokens.cpu().numpy() if hasattr(tokens, "cpu") else np.asarray(tokens)


def shuffle_frames(tokens: np.ndarray, cfg, rng: np.random.Generator) -> np.ndarray:
    """One sequence with its complete frames after the first in a random order (see module docstring)."""
    f = cfg.frame_len
    n_full = len(tokens) // f
    if n_full <= 2:
        return tokens.copy()
    frames = tokens[: n_full * f].reshape(n_full, f)
    order = np.concatenate([[0], 1 + rng.permutation(n_full - 1)])
    return np.concatenate([frames[order].reshape(-1), tokens[n_full * f:]])


def patch_positions(cfg, length: int) -> np.ndarray:
    """Boolean mask of the positions holding patch tokens (not frame delimiters)."""
    pos = np.arange(length) % cfg.frame_len
    return (pos != 0) & (pos != cfg.frame_len - 1)


def shuffle_tokens(tokens: np.ndarray, cfg, rng: np.random.Generator) -> np.ndarray:
    """One sequence with each frame's patch tokens permuted among that frame's patch positions."""
    out = tokens.copy()
    for start in range(0, len(tokens), cfg.frame_len):  # sequences start with a frame
        lo, hi = start + 1, min(start + cfg.frame_len - 1, len(tokens))
        out[lo:hi] = tokens[lo:hi][rng.permutation(hi - lo)]
    return out


def patch_unigram(tokens: np.ndarray, cfg) -> np.ndarray:
    """Frequencies of the patch tokens (ids below ``patch_vocab``) of ``tokens`` (n, length)."""
    patches = tokens[:, patch_positions(cfg, tokens.shape[1])].reshape(-1)
    counts = np.bincount(patches, minlength=cfg.patch_vocab).astype(np.float64)
    return counts / counts.sum()


class ControlSource(NCASource):
    """An NCA source with one control applied (``control`` of :data:`CONTROLS`, not ``none``)."""

    def __init__(self, cfg, seed: int = DataConfig.seed, pool_size: int = DataConfig.pool_size,
                 epoch_sequences: int = DataConfig.epoch_sequences, threads: int | None = DataConfig.gen_threads,
                 device: str = "cpu", control: str = "shuffle-frames"):
        # ``control`` was checked with the DataConfig it comes from (fixed-rules has a pool).
        super().__init__(cfg, seed, pool_size, epoch_sequences, threads, device)
        self.control = control
        self._probs: np.ndarray | None = None

    def _epochs(self, indices: np.ndarray) -> np.ndarray:
        if self.control == "fixed-rules":
            return np.zeros_like(indices)
        return super()._epochs(indices)

    def unigram(self) -> np.ndarray:
        """The NCA stream's patch-token distribution (estimated once, see module docstring)."""
        if self._probs is None:
            ids = np.arange(UNIGRAM_SEQUENCES, dtype=np.uint64) + np.uint64(UNIGRAM_OFFSET)
            self._probs = patch_unigram(_host(self._backend().tokens(ids)), self.cfg)
        return self._probs

    def _tokens(self, ids: np.ndarray, rules: np.ndarray | None):
        from ncalm.nca.cpu import split_inputs_targets

        if self.control == "fixed-rules":
            return super()._tokens(ids, rules)
        length = self.cfg.seq_len + 1
        if self.control == "unigram":  # no NCA rollout at all: the skeleton of a sequence and i.i.d. patches
            skeleton = np.where(np.arange(length) % self.cfg.frame_len == 0, self.cfg.start_token,
                                self.cfg.end_token).astype(np.int64)
            mask, probs = patch_positions(self.cfg, length), self.unigram()
            rows = np.tile(skeleton, (len(ids), 1))
            for row, i in zip(rows, ids):
                row[mask] = _rng(self.seed, self.control, i).choice(self.cfg.patch_vocab, int(mask.sum()), p=probs)
        else:
            tokens = _host(self._backend().tokens(ids.astype(np.uint64), rule_ids=rules))
            shuffle = shuffle_frames if self.control == "shuffle-frames" else shuffle_tokens
            rows = np.stack([shuffle(row, self.cfg, _rng(self.seed, self.control, i)) for row, i in zip(tokens, ids)])
        return split_inputs_targets(rows, self.cfg)

    def describe(self) -> dict:
        return {**super().describe(), "control": self.control}
