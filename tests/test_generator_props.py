"""Spec properties of the generator: layout, ranges, determinism, addressing."""
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import ncalm
from ncalm import _core

CFG = ncalm.NCAConfig(seq_len=300)


def test_frame_layout_and_token_ranges():
    toks = ncalm.sequence_tokens(CFG, 0, np.arange(8))
    assert toks.shape == (8, CFG.seq_len + 1) and toks.dtype == np.int32
    L = CFG.frame_len
    pos = np.arange(CFG.seq_len + 1) % L
    assert (toks[:, pos == 0] == CFG.start_token).all()
    assert (toks[:, pos == L - 1] == CFG.end_token).all()
    inner = toks[:, (pos != 0) & (pos != L - 1)]
    assert inner.min() >= 0 and inner.max() < CFG.patch_vocab
    assert CFG.vocab_size == 10002 and CFG.frame_len == 38 and CFG.frames_per_sequence == 8  # ceil(301 / 38)


def test_frames_are_the_rollout_tokenized():
    cfg = CFG.replace(seq_len=4 * CFG.frame_len - 1)
    toks = ncalm.sequence_tokens(cfg, 5, [11])[0].reshape(4, -1)
    rules, _ = ncalm.find_rules(cfg, 5, [11])
    grids = ncalm.rollout(cfg, 5, rules, [11], frames=4)[0]
    np.testing.assert_array_equal(toks[:, 1:-1], ncalm.encode(cfg, grids))
    np.testing.assert_array_equal(ncalm.decode(cfg, toks[:, 1:-1]), grids)


@pytest.mark.parametrize("cfg", [CFG, ncalm.NCAConfig(grid=8, patch=4, colors=3), ncalm.NCAConfig(grid=6, patch=1)])
def test_encode_decode_round_trip(cfg):
    grids = np.random.default_rng(0).integers(0, cfg.colors, (20, cfg.grid, cfg.grid), dtype=np.uint8)
    tokens = ncalm.encode(cfg, grids)
    assert tokens.shape == (20, cfg.patches_per_frame) and tokens.max() < cfg.patch_vocab
    np.testing.assert_array_equal(ncalm.decode(cfg, tokens), grids)


def test_decode_rejects_tokens_outside_patch_vocabulary():
    bad = np.zeros((1, CFG.patches_per_frame), dtype=np.int64)
    bad[0, 3] = CFG.start_token
    with pytest.raises(ValueError, match="out of range"):
        ncalm.decode(CFG, bad)


def test_encode_and_decode_refuse_non_integers():
    # Truncating 9.99 to colour 9 (or NaN to 0) would hide a caller's bug.
    with pytest.raises(ValueError, match="grids must hold integer colours, got dtype float64"):
        ncalm.encode(CFG, np.full((CFG.grid, CFG.grid), 9.99))
    with pytest.raises(ValueError, match="tokens must hold integers, got dtype float32"):
        ncalm.decode(CFG, np.zeros(CFG.patches_per_frame, dtype=np.float32))


def test_loss_mask_hides_exactly_the_first_frame_targets():
    gen = ncalm.NCAGenerator(CFG, seed=1)
    inputs, targets = gen.batch(3)
    assert inputs.dtype == targets.dtype == torch.int64 and inputs.shape == (3, CFG.seq_len)
    masked = (targets == ncalm.IGNORE_INDEX).all(dim=0)
    assert masked[: CFG.frame_len - 1].all() and not masked[CFG.frame_len - 1:].any()
    full = torch.from_numpy(gen.sequences(0, 3)).long()
    assert torch.equal(inputs, full[:, :-1])
    assert torch.equal(targets[:, CFG.frame_len - 1:], full[:, CFG.frame_len:])
    assert targets[0, CFG.frame_len - 1] == CFG.start_token  # START of frame 1 is predicted


def test_determinism_and_seed_dependence():
    a = ncalm.sequence_tokens(CFG, 42, np.arange(4))
    np.testing.assert_array_equal(a, ncalm.sequence_tokens(CFG, 42, np.arange(4)))
    assert (a != ncalm.sequence_tokens(CFG, 43, np.arange(4))).mean() > 0.5


def test_stream_positions_are_independent():
    cfg = CFG.replace(band=(0.5, 1.0))
    whole = ncalm.sequence_tokens(cfg, 9, np.arange(10))
    np.testing.assert_array_equal(ncalm.sequence_tokens(cfg, 9, [7, 2, 5]), whole[[7, 2, 5]])
    gen = ncalm.NCAGenerator(cfg, 9, start=3)
    x1, _ = gen.batch(2)
    x2, _ = gen.batch(3)
    assert gen.position == 8
    assert torch.equal(torch.cat([x1, x2]), torch.from_numpy(whole[3:8, :-1]).long())


def test_generate_into_fills_caller_buffers_and_advances_the_stream():
    cfg = CFG.replace(band=(0.5, 1.0))
    whole = ncalm.sequence_tokens(cfg, 9, np.arange(10), dtype=np.int64)
    gen = ncalm.NCAGenerator(cfg, 9, start=1)
    a = np.zeros((3, cfg.seq_len + 1), dtype=np.uint16)
    assert gen.generate_into(a) is a and gen.position == 4
    b = torch.zeros((4, cfg.seq_len + 1), dtype=torch.int64)
    gen.generate_into(b)
    np.testing.assert_array_equal(a, whole[1:4])
    np.testing.assert_array_equal(b.numpy(), whole[4:8])
    assert gen.batch(2)[0].equal(torch.from_numpy(whole[8:10, :-1]))  # the stream goes on from there
    with pytest.raises(TypeError, match="numpy array or a CPU torch tensor"):
        gen.generate_into([[0] * (cfg.seq_len + 1)])
    with pytest.raises(ValueError, match="shape"):
        gen.generate_into(np.zeros((2, cfg.seq_len), dtype=np.int32))
    with pytest.raises(ValueError, match="stream is for device='cuda'"):
        gen.generate_into(a, stream=0)
    assert gen.position == 10  # refused calls do not move the stream


def test_generator_state_round_trip():
    gen = ncalm.NCAGenerator(CFG, 4)
    gen.batch(5)
    state = gen.state_dict()
    x, _ = gen.batch(2)
    other = ncalm.NCAGenerator(CFG, 4)
    other.load_state_dict(state)
    assert torch.equal(other.batch(2)[0], x)
    with pytest.raises(ValueError, match="different config or seed"):
        ncalm.NCAGenerator(CFG, 5).load_state_dict(state)
    for bad, message in ((-5, r"must lie in \[0, 1099511627775\]"), (2**41, "must lie in"),
                         (3.5, "must be an integer")):
        with pytest.raises(ValueError, match=message):
            other.load_state_dict({**state, "position": bad})
    assert other.position == 7  # a refused state changes nothing


@pytest.mark.parametrize("band", [None, (0.5, 1.0)])
def test_thread_count_does_not_change_output(band):
    cfg = CFG.replace(band=band)
    ref = ncalm.sequence_tokens(cfg, 3, np.arange(17), threads=1)
    for t in (2, 3, 8):
        np.testing.assert_array_equal(ncalm.sequence_tokens(cfg, 3, np.arange(17), threads=t), ref)


def test_output_dtypes_agree_and_uint16_needs_small_vocab():
    i32 = ncalm.sequence_tokens(CFG, 0, [0, 1])
    np.testing.assert_array_equal(ncalm.sequence_tokens(CFG, 0, [0, 1], dtype=np.uint16), i32)
    np.testing.assert_array_equal(ncalm.sequence_tokens(CFG, 0, [0, 1], dtype=np.int64), i32)
    big = ncalm.NCAConfig(colors=20, seq_len=50)
    with pytest.raises(ValueError, match="does not fit uint16"):
        ncalm.sequence_tokens(big, 0, [0], dtype=np.uint16)


def test_complexity_refuses_what_int32_tokens_cannot_hold():
    with pytest.raises(ValueError, match="dtype float64"):
        ncalm.complexity(np.array([1.7, 2.0]))
    with pytest.raises(ValueError, match="int32 range"):
        ncalm.complexity(np.array([2**32 + 5] * 100))
    assert ncalm.complexity(np.array([-5, 7] * 50)) == ncalm.complexity(np.array([-5, 7] * 50, np.int32))


def test_gzip_size_reads_only_contiguous_buffers():
    a = np.arange(200, dtype=np.uint8)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gzip_size(a[::-1])
    assert _core.gzip_size(a, "zlib") == len(gzip.compress(a.tobytes(), 9))


def test_zlib_length_is_exact_when_input_and_output_stream_in_pieces():
    # zlib counts bytes in 32 bits, so the core feeds input in 1 MiB pieces and
    # drains output through 64 KiB: 3.5 MB with matches across piece borders.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 1_500_000, dtype=np.uint8).tobytes()
    data = noise + b"ab" * 500_000 + noise[:1_000_000]
    assert _core.gzip_size(data, "zlib") == len(gzip.compress(data, 9))


def test_out_buffers_of_an_equivalent_dtype_are_accepted():
    import pickle

    want = ncalm.sequence_tokens(CFG, 0, [0, 1])
    for out in (pickle.loads(pickle.dumps(np.empty((2, CFG.seq_len + 1), np.int32))),
                np.empty((2, CFG.seq_len + 1), np.longlong)):
        np.testing.assert_array_equal(ncalm.sequence_tokens(CFG, 0, [0, 1], out=out), want)
    with pytest.raises(ValueError, match=">i4"):
        ncalm.sequence_tokens(CFG, 0, [0, 1], out=np.empty((2, CFG.seq_len + 1), ">i4"))


def test_misaligned_arrays_are_copied_in_and_refused_out():
    # np.frombuffer at an odd offset reached the core as a misaligned pointer (UBSan). On x86 the
    # misaligned read happens to work, so the input half checks only that the values are right
    # (the copy itself shows under -fsanitize=alignment); the refused out is what can fail here.
    def misaligned(n, dtype):
        a = np.frombuffer(bytearray(n * np.dtype(dtype).itemsize + 1), dtype, count=n, offset=1)
        assert not a.flags.aligned
        return a

    ids = misaligned(3, np.uint64)
    ids[:] = [5, 0, 9]
    want = ncalm.sequence_tokens(CFG, 0, [5, 0, 9])
    np.testing.assert_array_equal(ncalm.sequence_tokens(CFG, 0, ids), want)
    rules = misaligned(3, np.uint64)
    rules[:] = [5, 0, 9]
    np.testing.assert_array_equal(ncalm.rollout(CFG, 0, rules, ids, 2), ncalm.rollout(CFG, 0, [5, 0, 9], [5, 0, 9], 2))
    out = misaligned(3 * (CFG.seq_len + 1), np.int32).reshape(3, -1)
    out.flags.writeable = True
    with pytest.raises(ValueError, match="out must be aligned"):
        ncalm.sequence_tokens(CFG, 0, [5, 0, 9], out=out)


def test_complexity_equals_python_gzip():
    rng = np.random.default_rng(1)
    for n in (1, 36, 360, 5000):
        tokens = rng.integers(0, 10000, n).astype(np.int32)
        raw = tokens.astype("<i4").tobytes()
        assert ncalm.complexity(tokens) == len(gzip.compress(raw, 9)) / len(raw)
    text = b"the quick brown fox " * 50
    assert ncalm.complexity(text) == len(gzip.compress(text, 9)) / len(text)


def test_band_filter_is_strict():
    cfg = CFG.replace(band=(0.5, 1.0))
    ratios = ncalm.score_rules(cfg, 2, np.arange(64))
    accepted, all_ratios = ncalm.filter_rules(cfg, 2, 0, 64)
    np.testing.assert_array_equal(all_ratios, ratios)
    np.testing.assert_array_equal(accepted, np.flatnonzero((ratios > 0.5) & (ratios < 1.0)))
    # A band whose lower edge equals a rule's exact score excludes that rule.
    edge = float(ratios[accepted[0]])
    accepted_edge, _ = ncalm.filter_rules(cfg.replace(band=(edge, 1.0)), 2, 0, 64)
    assert accepted[0] not in accepted_edge
    rules, found = ncalm.find_rules(cfg, 2, np.arange(30))
    assert ((found > 0.5) & (found < 1.0)).all()
    np.testing.assert_array_equal(ncalm.score_rules(cfg, 2, rules), found)


def test_no_band_means_rule_i_for_sequence_i():
    rules, ratios = ncalm.find_rules(CFG, 0, [0, 5, 9])
    np.testing.assert_array_equal(rules, [0, 5, 9])
    assert np.isnan(ratios).all()


def test_impossible_band_gives_a_clear_error():
    cfg = CFG.replace(band=(1.9, 2.0), max_attempts=8)
    with pytest.raises(ValueError, match="no rule inside band"):
        ncalm.find_rules(cfg, 0, [0])


@pytest.mark.parametrize("batch", [1, 7, 50, 4096])
def test_batched_band_search_accepts_what_find_rules_accepts(batch):
    # The GPU filter searches in rounds of candidates; driven by the CPU scorer
    # here, so its order is checked without a GPU. A narrow band makes most
    # sequences need several candidates, some over several rounds.
    cfg = CFG.replace(band=(0.6, 0.7), max_attempts=200)
    seqs = np.arange(100, 140, dtype=np.uint64)
    rules, ratios = ncalm.find_rules(cfg, 3, seqs)
    got_rules, got_ratios = _core.find_rules_batched(cfg.core_dict(), 3, seqs, batch)
    np.testing.assert_array_equal(got_rules, rules)
    np.testing.assert_array_equal(got_ratios, ratios)
    assert (rules >> 40).max() >= 2  # the band did make sequences search


def test_batched_band_search_reports_a_miss_as_find_rules_does():
    cfg = CFG.replace(band=(1.9, 2.0), max_attempts=5)
    with pytest.raises(ValueError, match="no rule inside band .* after 5 candidates for sequence 4"):
        _core.find_rules_batched(cfg.core_dict(), 0, np.array([4], dtype=np.uint64), 3)
    rules, ratios = _core.find_rules_batched(CFG.core_dict(), 0, np.array([0, 5], dtype=np.uint64), 3)
    np.testing.assert_array_equal(rules, [0, 5])
    assert np.isnan(ratios).all()


def test_sampling_follows_softmax_at_temperature_one():
    # One step from a fixed grid, many independent noise streams: the colour
    # frequencies of a cell must match softmax(logits).
    cfg = ncalm.NCAConfig(temperature=1.0, colors=4)
    w = ncalm.sample_rules(cfg, 0, [1])
    w = (w["conv1"][0], w["conv2"][0], w["conv3"][0])
    grid = np.random.default_rng(0).integers(0, 4, (12, 12), dtype=np.uint8)
    logits = _core.logits(cfg.core_dict(), *w, grid)[0, 0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    n = 4000
    draws = np.array([_core.evolve(cfg.core_dict(), *w, grid, 1, 0, sim)[0, 0, 0] for sim in range(n)])
    freq = np.bincount(draws, minlength=4) / n
    assert np.abs(freq - p).max() < 4 * np.sqrt(0.25 / n)


def test_low_level_entry_points_refuse_bad_input_by_name():
    cfg = ncalm.NCAConfig(colors=4)
    w = ncalm.sample_rules(cfg, 0, [1])
    w = (w["conv1"][0], w["conv2"][0], w["conv3"][0])
    bad = np.zeros((12, 12), np.uint8)
    bad[0, 0] = 200  # would index past the weight table
    with pytest.raises(ValueError, match="colour out of range"):
        _core.logits(cfg.core_dict(), *w, bad)
    empty = ncalm.sample_rules(cfg, 0, [])
    assert {k: v.shape for k, v in empty.items()} == {"conv1": (0, 3, 3, 6, 4), "conv2": (0, 4, 16), "conv3": (0, 16, 4)}
    with pytest.raises(ValueError, match="start=1.5"):
        ncalm.filter_rules(cfg.replace(band=(0.5, 1.0)), 0, 1.5, 2)
    with pytest.raises(ValueError, match="threads=100000"):
        ncalm.sequence_tokens(cfg, 0, [0], threads=100_000)
    with pytest.raises(ValueError, match="frames=2147483648"):
        ncalm.rollout(cfg, 0, [0], [0], frames=2**31)
    np.testing.assert_array_equal(ncalm.sequence_tokens(CFG, 0, [0], threads=np.int64(2)), ncalm.sequence_tokens(CFG, 0, [0]))


def test_rule_weights_are_truncated_lecun_normal():
    w = ncalm.sample_rules(CFG, 0, np.arange(40))
    for name, fan in (("conv1", 9 * 12), ("conv2", 4), ("conv3", 16)):
        z = w[name] * np.sqrt(fan) * 0.87962566103423978
        assert np.abs(z).max() <= 2.0 + 1e-6
        assert abs(z.std() - 0.8796) < 0.05 and abs(z.mean()) < 0.05
    # colours 0 and C-1 get two weight slices of conv1 (colour-axis wrap)
    assert w["conv1"].shape == (40, 3, 3, 12, 4)


def test_all_cores_means_the_cpus_this_process_may_use():
    # hardware_concurrency() counts the host's CPUs: a pinned process (taskset,
    # a cpuset container, one DataLoader worker per core) would oversubscribe.
    assert _core.default_threads() == len(os.sched_getaffinity(0))
    script = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from ncalm import _core; print(_core.default_threads())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "1", done.stderr[-2000:]


def test_threads_the_system_refuses_slow_the_batch_rather_than_kill_it():
    # Under a 1.5 GB address-space limit, 1000 threads (8 MB stacks) cannot all start;
    # a failed start used to destroy joinable threads: std::terminate, the process gone.
    script = """
import resource, numpy as np, ncalm
cfg = ncalm.NCAConfig(grid=4, seq_len=20)
want = ncalm.sequence_tokens(cfg, 0, np.arange(1000), threads=1)
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, resource.RLIM_INFINITY))
got = ncalm.sequence_tokens(cfg, 0, np.arange(1000), threads=1000)
print("same" if np.array_equal(got, want) else "DIFFERENT")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "same"

