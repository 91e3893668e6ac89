import numpy as np
import pytest
import torch

import ncalm
from ncalm import NCAConfig, decode, find_rules, rollout
from ncalm.eval.icl import (ICL_OFFSET, copy_last_frame_predictor, evaluate_icl, greedy_predictor,
                                  icl_accuracy, icl_sequences, max_context_frames, patch_cells)
from ncalm.lm.model import LlamaLM, ModelConfig

SEED, N, KS = 3, 48, (1, 2, 4)
# A low band: many rules freeze into one colour, so a constant guess gets whole frames right.
LOW = (0.0, 0.05)
CFG = NCAConfig(band=(0.5, 1.0))


def true_grids(band, frames):
    """The trajectories ICL should be scored on, straight from the simulator (no tokens)."""
    cfg = CFG.replace(band=band)
    ids = np.arange(N, dtype=np.uint64) + np.uint64(ICL_OFFSET)
    rules, _ = find_rules(cfg, SEED, ids)
    return rollout(cfg, SEED, rules, ids, frames)


def test_patch_cells_agrees_with_the_generators_decode():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, CFG.patch_vocab, size=(5, CFG.patches_per_frame))
    grids = decode(CFG, tokens)
    cells = patch_cells(tokens, CFG.colors, CFG.patch)  # (5, N, p*p), digit j = r*p + c
    side, p = CFG.grid // CFG.patch, CFG.patch
    rebuilt = cells.reshape(5, side, side, p, p).transpose(0, 1, 3, 2, 4).reshape(5, CFG.grid, CFG.grid)
    np.testing.assert_array_equal(rebuilt, grids)
    assert (patch_cells(np.array([CFG.start_token, CFG.end_token, -1]), CFG.colors, CFG.patch) == -1).all()


def test_perfect_oracle_scores_one():
    tokens = icl_sequences(CFG, SEED, N, max(KS) + 1, CFG.band)
    truth = {row[:k * CFG.frame_len + 1].tobytes(): row for row in tokens for k in KS}

    def oracle(context, n):
        return np.stack([truth[c.tobytes()][len(c):len(c) + n] for c in context])

    for row in icl_accuracy(oracle, tokens, CFG.frame_len, CFG.colors, CFG.patch, KS, batch_size=5):
        assert row["cell_acc"] == 1.0 and row["frame_acc"] == 1.0 and row["n"] == N


@pytest.mark.parametrize("colour", [0, 3])
def test_constant_predictor_matches_the_simulated_grids(colour):
    token = colour * sum(CFG.colors ** j for j in range(CFG.patch ** 2))  # a patch of one colour

    def constant(context, n):
        return np.full((len(context), n), token)

    bands = {"train": CFG.band, "low": LOW}
    result = evaluate_icl(constant, CFG, SEED, N, KS, bands, batch_size=7)
    for name, band in bands.items():
        grids = true_grids(band, max(KS) + 1)
        for row in result[name]:
            target = grids[:, row["k"]]
            assert row["cell_acc"] == pytest.approx((target == colour).mean(), abs=1e-12)
            assert row["frame_acc"] == pytest.approx((target == colour).reshape(N, -1).all(1).mean(), abs=1e-12)
    # Not a vacuous check: in the low band some frames are entirely one colour.
    assert max(r["frame_acc"] for r in result["low"]) > 0


def test_copy_last_frame_baseline():
    grids = true_grids(LOW, max(KS) + 1)
    result = evaluate_icl(copy_last_frame_predictor(CFG.frame_len), CFG, SEED, N, KS, {"low": LOW})
    for row in result["low"]:
        same = grids[:, row["k"]] == grids[:, row["k"] - 1]
        assert row["cell_acc"] == pytest.approx(same.mean(), abs=1e-12)
        assert row["frame_acc"] == pytest.approx(same.reshape(N, -1).all(1).mean(), abs=1e-12)


def test_greedy_with_kv_cache_equals_full_recomputation():
    torch.manual_seed(0)
    model = LlamaLM(ModelConfig(vocab_size=30, n_layer=2, n_head=2, d_model=32, max_seq_len=64)).eval()
    context = np.random.default_rng(1).integers(0, 30, size=(3, 11))
    got = greedy_predictor(model)(context, 9)
    idx = torch.as_tensor(context)
    with torch.no_grad():
        for _ in range(9):
            nxt = model(idx)[0][:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    np.testing.assert_array_equal(got, idx[:, 11:].numpy())


def test_bad_input():
    tokens = icl_sequences(CFG, SEED, 2, 3, CFG.band)
    with pytest.raises(ValueError, match="k=3"):
        icl_accuracy(copy_last_frame_predictor(CFG.frame_len), tokens, CFG.frame_len, CFG.colors, CFG.patch, [3])
    with pytest.raises(ValueError, match=">= 1"):
        icl_accuracy(copy_last_frame_predictor(CFG.frame_len), tokens, CFG.frame_len, CFG.colors, CFG.patch, [0])
    with pytest.raises(ValueError, match="shape"):
        icl_accuracy(lambda c, n: np.zeros((len(c), n - 1)), tokens, CFG.frame_len, CFG.colors, CFG.patch, [1])


def test_batch_size_must_be_positive():
    tokens = icl_sequences(CFG, SEED, 2, 3, CFG.band)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        icl_accuracy(copy_last_frame_predictor(CFG.frame_len), tokens, CFG.frame_len, CFG.colors, CFG.patch, [1],
                     batch_size=0)


def test_max_context_frames_is_the_largest_k_whose_decode_fits():
    # k frames + START are read, then the predicted patches but the last: k*F + F - 2 positions.
    assert max_context_frames(1024, 38) == 26  # the paper's settings: 26 * 38 + 36 = 1024
    for length in range(20, 300):
        for frame_len in (6, 10, 18, 38):
            k = max_context_frames(length, frame_len)
            assert k * frame_len + frame_len - 2 <= length < (k + 1) * frame_len + frame_len - 2


def test_progress_bar_counts_k_times_batches_on_stderr_only_when_asked(capsys):
    tokens = icl_sequences(CFG, SEED, 5, 3, CFG.band)
    copy = copy_last_frame_predictor(CFG.frame_len)
    quiet = icl_accuracy(copy, tokens, CFG.frame_len, CFG.colors, CFG.patch, [1, 2], batch_size=2)
    assert capsys.readouterr() == ("", "")  # quiet by default
    shown = icl_accuracy(copy, tokens, CFG.frame_len, CFG.colors, CFG.patch, [1, 2], batch_size=2,
                         progress=True, desc="icl low")
    out, err = capsys.readouterr()
    assert shown == quiet and out == ""
    assert "icl low" in err and "6/6" in err  # 2 ks x 3 batches of 5 rules


def test_a_band_of_none_is_every_rule_not_the_training_band():
    # Was "keep cfg.band": {'unfiltered': None} silently scored training-band rules.
    unfiltered = icl_sequences(CFG, SEED, N, 2, None)
    plain = CFG.replace(band=None, seq_len=2 * CFG.frame_len - 1)
    ids = np.arange(N, dtype=np.uint64) + np.uint64(ICL_OFFSET)
    np.testing.assert_array_equal(unfiltered, ncalm.sequence_tokens(plain, SEED, ids))
    assert not np.array_equal(unfiltered, icl_sequences(CFG, SEED, N, 2, CFG.band))


def test_icl_bytes_bounds_what_an_evaluation_allocates():
    import tracemalloc

    from ncalm.eval.icl import icl_bytes

    predict, bands = copy_last_frame_predictor(CFG.frame_len), {"train": CFG.band, "all": None}
    evaluate_icl(predict, CFG, SEED, 4, [1], bands)  # imports and caches outside the measurement
    for batch in (16, 400):  # patch_cells' digits grow with the batch
        tracemalloc.start()
        evaluate_icl(predict, CFG, SEED, 400, KS, bands, batch_size=batch)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= icl_bytes(CFG, 400, max(KS) + 1, batch)
