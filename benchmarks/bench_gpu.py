"""GPU benchmarks of the CUDA backend at the paper's settings, each next to
its baselines measured in the same run: the CPU backend on this machine's
cores and a plain PyTorch implementation on the same GPU.

    python3 benchmarks/bench_gpu.py [--quick] [--json PATH]

Prints a table last. Device timings use CUDA events after warm-up; tokens
are counted as written to device memory (seq_len + 1 per sequence).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import torch_nca  # the plain PyTorch NCA baseline beside this file
from ncalm import _core
from ncalm.nca.config import NCAConfig
from ncalm.nca.cuda import CudaGenerator
from ncalm.nca.cpu import score_rules, sequence_tokens

SEED = 1234


def cuda_seconds(fn, reps: int, warmup: int = 2) -> float:
    """Mean seconds per call of fn() on the current stream, by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / 1e3 / reps


def wall_seconds(fn, reps: int = 1, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    q = args.quick
    cfg = NCAConfig()  # paper settings: 12x12, 10 colours, 2x2 patches, burn-in 10, T 1e-4, seq_len 1024
    band_cfg = cfg.replace(band=(0.5, 1.0))
    width = cfg.seq_len + 1
    cores = _core.default_threads()  # what threads=None uses: the CPUs this process may run on
    rows: list[tuple[str, float, str]] = []

    gen = CudaGenerator(cfg, SEED, "cuda")
    for dtype in (torch.int32, torch.uint16):
        n = 8192 if q else 131072
        out = torch.empty((n, width), dtype=dtype, device="cuda")
        pos = iter(range(0, 1 << 40, n))
        sec = cuda_seconds(lambda: gen.generate_into(out, start=next(pos)), reps=2 if q else 5)
        rows.append((f"fused generation, {str(dtype)[6:]} out, batch {n}", n * width / sec, "tokens/s"))

    n_torch = 1024 if q else 8192
    sec = cuda_seconds(lambda: torch_nca.sequences(n_torch, device="cuda"), reps=1 if q else 3, warmup=1)
    rows.append((f"plain PyTorch NCA (same GPU), batch {n_torch}", n_torch * width / sec, "tokens/s"))

    n_cpu = 512 if q else 8192
    sec = wall_seconds(lambda: sequence_tokens(cfg, SEED, np.arange(n_cpu), dtype=np.int32))
    rows.append((f"CPU backend, {cores} threads, batch {n_cpu}", n_cpu * width / sec, "tokens/s"))

    band_gen = CudaGenerator(band_cfg, SEED, "cuda")
    n_rules = 16384 if q else 262144
    ids = np.arange(n_rules, dtype=np.uint64)
    sec = wall_seconds(lambda: band_gen.score_rules(ids))
    rows.append((f"GPU filtering (gzip on {cores} CPU threads), {n_rules} candidates", n_rules / sec, "rules/s"))
    n_rules_cpu = 4096 if q else 65536
    sec = wall_seconds(lambda: score_rules(band_cfg, SEED, np.arange(n_rules_cpu)))
    rows.append((f"CPU filtering, {cores} threads, {n_rules_cpu} candidates", n_rules_cpu / sec, "rules/s"))

    fused, torch_rate = rows[0][1], rows[2][1]
    card = torch.cuda.get_device_name()
    print(f"\n== ncalm GPU benchmarks on {card} ({'quick' if q else 'full'}) ==")
    for name, value, unit in rows:
        print(f"{name:<60} {value:>16,.0f} {unit}")
    print(f"{'fused / plain PyTorch':<60} {fused / torch_rate:>16.1f} x")
    print(f"{'fused / CPU backend':<60} {fused / rows[3][1]:>16.1f} x")
    if args.json:
        args.json.write_text(json.dumps({"device": card, "quick": q, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
