"""NCA token streams as a :class:`~ncalm.data.sharding.Source`.

Item ``i`` is NCA sequence ``i`` of the generator (a pure function of config,
seed and id). By default each sequence draws its own rule; with a rule pool,
epoch ``e`` (``epoch_sequences`` items) uses ``pool_size`` rules found on ids
``POOL_OFFSET + e * pool_size + [0, pool_size)`` — disjoint from sequence
ids — and item ``i`` takes rule ``i % pool_size`` of its epoch, as in the
paper's per-epoch re-sampled rule pools. Validation sequences use ids from
``VAL_OFFSET`` upwards with their own fresh rules, never seen in training.
"""
from __future__ import annotations

import numpy as np

from ncalm.data.config import DataConfig

# Generator ids are < 2**40: training sequences below 2**39, pool rule streams above,
# validation sequences in the top quarter.
POOL_OFFSET = 1 << 39
VAL_OFFSET = 3 << 38


class NCASource:
    """Sequences from the compiled NCA generator (``ncalm.sequence_tokens``)."""

    def __init__(self, cfg, seed: int = DataConfig.seed, pool_size: int = DataConfig.pool_size,
                 epoch_sequences: int = DataConfig.epoch_sequences, threads: int | None = DataConfig.gen_threads,
                 device: str = "cpu"):
        # The sequence length and pool sizes were checked with the DataConfig they come from.
        self.cfg, self.seed, self.threads = cfg, seed, threads
        self.pool_size, self.epoch_sequences = pool_size, epoch_sequences
        self.vocab_size = cfg.vocab_size
        self.seq_len = cfg.seq_len
        self._pool_epoch, self._pool = -1, None
        # The CUDA backend is bit-identical to the CPU one, so the device changes speed, not data.
        self.device = device
        self._made = None  # made on first use: CUDA state must not cross into forked workers

    def _backend(self):
        if self._made is None:
            from ncalm.nca.generator import backend

            self._made = backend(self.cfg, self.seed, self.device, self.threads)
        return self._made

    def _rules_for(self, indices: np.ndarray) -> np.ndarray | None:
        if not self.pool_size:
            return None
        epochs = self._epochs(indices)
        rules = np.empty(len(indices), dtype=np.uint64)
        for e in np.unique(epochs):
            if e != self._pool_epoch:
                ids = np.arange(self.pool_size, dtype=np.uint64) + np.uint64(POOL_OFFSET + int(e) * self.pool_size)
                self._pool = np.asarray(self._backend().find_rules(ids)[0])
                self._pool_epoch = int(e)
            sel = epochs == e
            rules[sel] = self._pool[indices[sel] % self.pool_size]
        return rules

    def _epochs(self, indices: np.ndarray) -> np.ndarray:
        """The rule-pool epoch of each training item."""
        return indices // self.epoch_sequences

    def _tokens(self, ids: np.ndarray, rules: np.ndarray | None):
        from ncalm.nca.cpu import split_inputs_targets

        tokens = self._backend().tokens(ids.astype(np.uint64), rule_ids=rules)
        # The first frame is a random initial state: split_inputs_targets leaves it unscored.
        return split_inputs_targets(tokens, self.cfg)

    def items(self, indices: np.ndarray):
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and indices.max() >= POOL_OFFSET:
            raise ValueError(f"NCA item index {int(indices.max())} exceeds the training id range 2**39")
        return self._tokens(indices, self._rules_for(indices))

    def val_batches(self, batch_size: int, sequences: int):
        from ncalm.data.sharding import chunks

        return [self._tokens(ids, None) for ids in chunks(VAL_OFFSET + np.arange(sequences), batch_size)]

    def describe(self) -> dict:
        return {"kind": "nca", "nca": self.cfg.to_dict(), "seed": self.seed,
                "pool_size": self.pool_size, "epoch_sequences": self.epoch_sequences}
