import itertools

import numpy as np
import pytest
import torch

from ncalm import NCAConfig, find_rules, sequence_tokens
from ncalm.data.config import DataConfig
from ncalm.data.dyck import DyckSource
from ncalm.data.nca import NCASource
from ncalm.data.sharding import make_loader, micro_batch_items
from ncalm.data.nca import POOL_OFFSET, VAL_OFFSET



class IdentitySource:
    """Each item is its own index: makes the sharding visible."""

    vocab_size, seq_len = 1 << 30, 1

    def items(self, indices):
        t = torch.as_tensor(np.asarray(indices, dtype=np.int64))[:, None]
        return t, t

    def val_batches(self, batch_size, n_batches):
        return []

    def describe(self):
        return {"kind": "identity"}


def take(loader, n):
    return [b for b in itertools.islice(loader, n)]


def test_two_workers_times_two_ranks_yield_every_item_exactly_once():
    source, batch, steps = IdentitySource(), 3, 10
    seen = []
    for rank in range(2):
        for x, _ in take(make_loader(source, batch, rank=rank, world=2, workers=2), steps):
            seen += x[:, 0].tolist()
    assert sorted(seen) == list(range(2 * batch * steps))


def test_workers_do_not_change_a_ranks_stream():
    source = IdentitySource()
    a = take(make_loader(source, 4, rank=1, world=2, workers=0), 6)
    b = take(make_loader(source, 4, rank=1, world=2, workers=2), 6)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))


def test_start_resumes_the_same_stream():
    source = IdentitySource()
    full = take(make_loader(source, 2, rank=0, world=2), 9)
    resumed = take(make_loader(source, 2, rank=0, world=2, start=5, workers=2), 4)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(full[5:], resumed))


def test_bad_sharding_arguments_are_named():
    with pytest.raises(ValueError, match="rank"):
        make_loader(IdentitySource(), 2, rank=2, world=2)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(IdentitySource(), 0)


def test_nca_sequences_shorter_than_a_frame_are_refused():
    # The first frame is unscored context: with seq_len < frame_len every target is -100 (a NaN loss).
    cfg = NCAConfig(seq_len=37)
    with pytest.raises(ValueError, match=r"seq_len: 37 is shorter than one NCA frame \(38 tokens\)"):
        DataConfig(kind="nca", seq_len=37)
    _, targets = NCASource(cfg.replace(seq_len=38)).items(np.arange(2))
    assert (targets != -100).sum(dim=1).tolist() == [1, 1]


def test_nca_stream_over_workers_and_ranks_is_the_generator_sequences():
    cfg = NCAConfig(grid=8, colors=4, seq_len=64)
    source = NCASource(cfg, seed=3)
    for rank in range(2):
        batches = take(make_loader(source, 2, rank=rank, world=2, workers=2), 3)
        for m, (x, y) in enumerate(batches):
            ids = micro_batch_items(m, rank, 2, 2)
            tokens = torch.from_numpy(sequence_tokens(cfg, 3, ids)).long()
            assert torch.equal(x, tokens[:, :-1])
            scored = y != -100
            assert torch.equal(y[scored], tokens[:, 1:][scored])
            assert (~scored).sum(1).tolist() == [cfg.frame_len - 1] * 2  # first frame is context only


def test_nca_rule_pool_uses_its_epochs_rules():
    cfg = NCAConfig(grid=8, colors=4, seq_len=64)
    source = NCASource(cfg, seed=1, pool_size=3, epoch_sequences=5)
    ids = np.arange(12)
    x, _ = source.items(ids)
    epochs = ids // 5
    pools = {e: find_rules(cfg, 1, POOL_OFFSET + e * 3 + np.arange(3))[0] for e in set(epochs.tolist())}
    rules = np.array([pools[e][i % 3] for i, e in zip(ids, epochs)], dtype=np.uint64)
    expected = sequence_tokens(cfg, 1, ids, rule_ids=rules)
    assert torch.equal(x, torch.from_numpy(expected[:, :-1]).long())
    with pytest.raises(ValueError, match="epoch_sequences: must be >= pool_size=4, got 2"):
        DataConfig(pool_size=4, epoch_sequences=2)


def test_nca_validation_is_fixed_and_disjoint_from_training_ids():
    cfg = NCAConfig(grid=8, colors=4, seq_len=64)
    source = NCASource(cfg, seed=0)
    a, b = source.val_batches(2, 2), source.val_batches(2, 2)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert torch.equal(a[0][0], torch.from_numpy(sequence_tokens(cfg, 0, [VAL_OFFSET, VAL_OFFSET + 1])[:, :-1]).long())
    with pytest.raises(ValueError, match="training id range"):
        source.items([POOL_OFFSET])


def test_dyck_sequences_are_well_nested_and_bounded():
    k, depth = 3, 5
    source = DyckSource(k=k, max_depth=depth, seq_len=200, seed=0)
    x, y = source.items(np.arange(4))
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row in torch.cat([x, y[:, -1:]], 1).tolist():
        stack = []
        for t in row:
            if t < k:
                stack.append(t)
                assert len(stack) <= depth
            else:
                assert stack and stack.pop() == t - k
    assert source.vocab_size == 2 * k
    assert torch.equal(source.items([7])[0], source.items([7])[0])
    with pytest.raises(ValueError, match="max_depth"):
        DyckSource(max_depth=0)
