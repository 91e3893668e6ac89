"""The NCA control streams keep what they claim to keep (ncalm.data.controls)."""
import numpy as np
import pytest

from ncalm.data.config import DataConfig
from ncalm.data.controls import ControlSource, patch_positions
from ncalm.data.nca import NCASource
from ncalm.nca.config import NCAConfig
from ncalm.settings import SettingError
from ncalm.train.sources import build_source

# 4 x 4 grid of 2 x 2 patches: frames of 6 tokens; 40 + 1 tokens = 6 complete frames and a partial one.
CFG = NCAConfig(grid=4, colors=3, patch=2, seq_len=40, band=None)
IDS = np.arange(12)


def _rows(source, ids=IDS) -> np.ndarray:
    x, y = source.items(ids)
    return np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1)


@pytest.mark.parametrize("control", ["shuffle-frames", "shuffle-tokens"])
def test_shuffles_keep_each_sequences_multiset_and_delimiters(control):
    nca, shuffled = _rows(NCASource(CFG, seed=3)), _rows(ControlSource(CFG, seed=3, control=control))
    assert nca.shape == shuffled.shape == (len(IDS), CFG.seq_len + 1)
    assert not np.array_equal(nca, shuffled)  # something moved
    f = CFG.frame_len
    for a, b in zip(nca, shuffled):
        assert sorted(a) == sorted(b)  # the sequence's multiset
        assert sorted(a[f:]) == sorted(b[f:])  # the scored tokens' multiset (the first frame stays first)
        assert np.array_equal(a[:f], b[:f]) if control == "shuffle-frames" else sorted(a[:f]) == sorted(b[:f])
        delims = ~patch_positions(CFG, len(a))
        assert np.array_equal(a[delims], b[delims])  # delimiters in place
        n_full = len(a) // f
        if control == "shuffle-frames":  # whole frames moved, the partial one kept last
            assert sorted(map(tuple, a[:n_full * f].reshape(n_full, f))) == \
                sorted(map(tuple, b[:n_full * f].reshape(n_full, f)))
            assert np.array_equal(a[n_full * f:], b[n_full * f:])
        else:  # every frame, the partial one too, keeps its own multiset
            for s in range(0, len(a), f):
                assert sorted(a[s:s + f]) == sorted(b[s:s + f])


def test_controls_are_deterministic_and_first_frame_unscored():
    a, b = ControlSource(CFG, seed=1, control="shuffle-frames"), ControlSource(CFG, seed=1, control="shuffle-frames")
    assert np.array_equal(_rows(a, [5, 2]), _rows(b, [5, 2])[[0, 1]])
    assert np.array_equal(_rows(a, [5, 2])[1], _rows(b, [2])[0])  # per id, not per batch
    y = a.items(IDS)[1].numpy()
    assert (y[:, : CFG.frame_len - 1] == -100).all() and (y[:, CFG.frame_len - 1:] >= 0).all()


def test_unigram_control_matches_the_nca_unigram_distribution():
    stats = pytest.importorskip("scipy.stats")
    source = ControlSource(CFG, seed=0, control="unigram")
    probs = source.unigram()
    # An independent estimate from other NCA sequences agrees roughly (the NCA's own frequencies).
    nca = _rows(NCASource(CFG, seed=0), np.arange(400))
    nca_probs = np.bincount(nca[:, patch_positions(CFG, nca.shape[1])].ravel(), minlength=CFG.patch_vocab)
    nca_probs = nca_probs / nca_probs.sum()
    assert np.abs(probs - nca_probs).sum() < 0.35
    rows = _rows(source, np.arange(600))
    delims = ~patch_positions(CFG, rows.shape[1])
    assert (rows[:, delims] == _rows(NCASource(CFG, seed=0), [0])[0][delims]).all()  # the frame skeleton
    counts = np.bincount(rows[:, ~delims].ravel(), minlength=CFG.vocab_size)[: CFG.patch_vocab]

    def chi2_p(counts, probs):
        keep = probs * counts.sum() >= 5  # pool the rare tokens into one bin
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(probs[keep], probs[~keep].sum()) * counts.sum()
        obs, exp = obs[exp > 0], exp[exp > 0]
        return stats.chisquare(obs, exp).pvalue

    assert chi2_p(counts, probs) > 1e-3
    # The test can fail: a uniform draw, or the NCA stream itself (not i.i.d.), is rejected.
    uniform = np.full(CFG.patch_vocab, 1 / CFG.patch_vocab)
    assert chi2_p(counts, uniform) < 1e-6
    assert chi2_p(np.bincount(nca[:, ~delims].ravel(), minlength=CFG.vocab_size)[: CFG.patch_vocab], probs) < 1e-6


def test_fixed_rules_uses_epoch_zeros_pool_forever():
    pool, epoch = 4, 8
    nca = NCASource(CFG, seed=2, pool_size=pool, epoch_sequences=epoch)
    fixed = ControlSource(CFG, seed=2, pool_size=pool, epoch_sequences=epoch, control="fixed-rules")
    early, late = np.arange(epoch), np.arange(3 * epoch, 4 * epoch)
    assert np.array_equal(_rows(nca, early), _rows(fixed, early))  # epoch 0 is the NCA stream's
    epoch0 = nca._rules_for(early)
    assert np.array_equal(fixed._rules_for(late), epoch0)  # item i takes rule i % pool of epoch 0
    assert not np.array_equal(nca._rules_for(late), epoch0)  # the NCA stream draws a new pool
    by_hand = np.asarray(nca._backend().tokens(late.astype(np.uint64), rule_ids=epoch0))
    assert np.array_equal(_rows(fixed, late), by_hand)


def test_data_config_selects_and_checks_controls():
    data = DataConfig(kind="nca", seq_len=40, nca=CFG, control="shuffle-tokens")
    source, _ = build_source(data)
    assert isinstance(source, ControlSource) and source.describe()["control"] == "shuffle-tokens"
    assert type(build_source(DataConfig(kind="nca", seq_len=40, nca=CFG))[0]) is NCASource
    with pytest.raises(SettingError, match="^control: fixed-rules .* pool_size"):
        DataConfig(kind="nca", control="fixed-rules")
    with pytest.raises(SettingError, match="^control: unigram is a control of NCA data"):
        DataConfig(kind="dyck", control="unigram")
