"""Generator speed: the compiled core against a plain batched PyTorch NCA
(torch_nca.py) measured in the same run, at the paper's settings (12x12,
10 colours, 2x2 patches, burn-in 10, temperature 1e-4, seq_len 1024).

    pytest benchmarks/bench_generator.py --benchmark-enable     # full sizes
    NCALM_BENCH_SHORT=1 pytest benchmarks/bench_generator.py    # CI guard

The ratio is the figure (these machines are noisy); test_speed_ratios prints
a table and fails when the compiled path drops below 10x the baseline.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

import ncalm
import torch_nca  # the plain PyTorch NCA baseline beside this file
from ncalm import _core

SHORT = os.environ.get("NCALM_BENCH_SHORT") == "1"
CFG = ncalm.NCAConfig()
BAND = CFG.replace(band=(0.5, 1.0))
N_SEQ, N_BASE_SEQ = (600, 64) if SHORT else (4000, 512)
N_RULES, N_BASE_RULES = (600, 64) if SHORT else (4000, 512)
GUARD = 10.0


def compiled_tokens() -> None:
    ncalm.sequence_tokens(CFG, 0, np.arange(N_SEQ))


def baseline_tokens() -> None:
    torch_nca.sequences(N_BASE_SEQ)


def compiled_rules() -> None:
    ncalm.score_rules(BAND, 0, np.arange(N_RULES))


def baseline_rules() -> None:
    torch_nca.score_rules(N_BASE_RULES)


def best_seconds(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@pytest.fixture(autouse=True)
def _torch_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(old)


@pytest.mark.benchmark(group="tokens")
def test_tokens_compiled(benchmark):
    benchmark.extra_info["tokens_per_call"] = N_SEQ * CFG.seq_len
    benchmark.pedantic(compiled_tokens, rounds=5, iterations=1)


@pytest.mark.benchmark(group="tokens")
def test_tokens_torch_baseline(benchmark):
    benchmark.extra_info["tokens_per_call"] = N_BASE_SEQ * CFG.seq_len
    benchmark.pedantic(baseline_tokens, rounds=2, iterations=1)


@pytest.mark.benchmark(group="rules")
def test_rules_compiled(benchmark):
    benchmark.extra_info["rules_per_call"] = N_RULES
    benchmark.pedantic(compiled_rules, rounds=5, iterations=1)


@pytest.mark.benchmark(group="rules")
def test_rules_torch_baseline(benchmark):
    benchmark.extra_info["rules_per_call"] = N_BASE_RULES
    benchmark.pedantic(baseline_rules, rounds=2, iterations=1)


def test_speed_ratios():
    """Both paths timed here, best of several rounds; prints the table, guards the ratio."""
    rates = {
        "tokens/s compiled": N_SEQ * CFG.seq_len / best_seconds(compiled_tokens, 3 if SHORT else 5),
        "tokens/s torch": N_BASE_SEQ * CFG.seq_len / best_seconds(baseline_tokens, 2),
        "rules/s compiled": N_RULES / best_seconds(compiled_rules, 3 if SHORT else 5),
        "rules/s torch": N_BASE_RULES / best_seconds(baseline_rules, 2),
    }
    tok_ratio = rates["tokens/s compiled"] / rates["tokens/s torch"]
    rule_ratio = rates["rules/s compiled"] / rates["rules/s torch"]
    print(f"\n[generator speed, {os.cpu_count()} cores{', short mode' if SHORT else ''}]")
    for k, v in rates.items():
        print(f"  {k:20s} {v:14,.0f}")
    print(f"  tokens ratio {tok_ratio:8.1f}x   rules ratio {rule_ratio:8.1f}x")
    assert tok_ratio >= GUARD, f"generation only {tok_ratio:.1f}x the torch baseline (guard {GUARD}x)"
    assert rule_ratio >= GUARD, f"filtering only {rule_ratio:.1f}x the torch baseline (guard {GUARD}x)"


def test_gzip_length_model_vs_zlib():
    """The score's gzip length: the deflate model against compressing with zlib,
    on the same score-shaped inputs (10 frames of 36 int32 patch tokens)."""
    n = 300 if SHORT else 2000
    ids = np.arange(n)  # without a band, sequence i's rule is rule i
    grids = ncalm.rollout(CFG, 0, ids, ids, frames=CFG.score_frames)  # frames from the end of burn-in
    rows = ncalm.encode(CFG, grids).astype("<i4").reshape(n, -1).view(np.uint8)
    assert (_core.gzip_sizes(rows, "model") == _core.gzip_sizes(rows, "zlib")).all()
    us = {m: best_seconds(lambda m=m: _core.gzip_sizes(rows, m), 3) / n * 1e6 for m in ("zlib", "model")}
    print(f"\n[gzip length of a 1,440-byte score input, 1 thread]  zlib {us['zlib']:.1f} us  "
          f"model {us['model']:.1f} us  ({us['zlib'] / us['model']:.2f}x)")
    assert us["model"] < us["zlib"], "the deflate model is no faster than zlib"


@pytest.mark.skipif(SHORT, reason="end-to-end generate run is for full benchmark runs")
def test_generate_command_end_to_end():
    """`ncalm generate` of filtered tokens (band 0.5-1.0), shards written: tokens/s end to end."""
    tokens = int(os.environ.get("NCALM_BENCH_E2E_TOKENS", "20000000"))
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ncalm", "generate", "--tokens", str(tokens), "--out", out,
                        "--no-progress"], check=True)
        dt = time.perf_counter() - t
    print(f"\n[ncalm generate] {tokens:,} filtered tokens in {dt:.1f} s = {tokens / dt:,.0f} tokens/s "
          "(process start and imports included)")
