"""Small launches of every kernel variant, meant to run under compute-sanitizer
(memcheck, racecheck, synccheck): out-of-bounds accesses, shared-memory
races between a warp's lanes and bad warp-sync masks can hide behind
matching tokens, and only the hardware tools see them.

    compute-sanitizer --tool racecheck --error-exitcode 9 python3 benchmarks/sanitize_kernels.py

Drives ncalm._core directly with cupy buffers (no torch, whose start-up is
slow under the sanitizer) and also checks the tokens against the CPU backend.
"""
from __future__ import annotations

import sys

import cupy as cp
import numpy as np

from ncalm import _core
from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import score_rules, sequence_tokens

SEED = 77
# One cudaMalloc per array: cupy's pool rounds sizes up and carves blocks out
# of larger freed ones, where a write past `out` would be invisible to memcheck.
cp.cuda.set_allocator(None)
N = 41  # ten blocks of four warps and one warp more

# One config per kernel variant (cells per lane KC and passes), the near-tie
# path (temperature 1) and the uint16/int64 outputs; short rows keep the
# sanitizer's run short.
CONFIGS = {
    "grid4, KC 1": (NCAConfig(grid=4, seq_len=20, burn_in=2), "int32"),
    "grid9, KC 3": (NCAConfig(grid=9, patch=3, colors=3, seq_len=30, burn_in=2), "int32"),
    "grid8, KC 2": (NCAConfig(grid=8, colors=4, seq_len=40, burn_in=2), "uint16"),
    "grid16, KC 4, T 1": (NCAConfig(grid=16, patch=4, colors=3, seq_len=40, burn_in=2, temperature=1.0), "int64"),
    "paper grid, KC 5": (NCAConfig(seq_len=80, burn_in=2), "int32"),
    "grid32, 7 passes": (NCAConfig(grid=32, colour_wrap=False, seq_len=260, burn_in=1, temperature=0.05), "int32"),
}


def generate(cfg: NCAConfig, dtype: str, first: int) -> np.ndarray:
    width = cfg.seq_len + 1
    out = cp.zeros((N, width + 3), dtype=dtype)  # rows 3 apart: the stride is honoured, the gap not written
    _core.cuda_generate(cfg.core_dict(), SEED, out.data.ptr, dtype, N, width + 3, first, 0, 0, 0,
                        cp.cuda.get_current_stream().ptr)
    cp.cuda.get_current_stream().synchronize()
    host = cp.asnumpy(out)
    if (host[:, width:] != 0).any():
        raise AssertionError("tokens written past the end of a row")
    return host[:, :width].astype(np.int64)


def main() -> int:
    failed = []
    for name, (cfg, dtype) in CONFIGS.items():
        got = generate(cfg, dtype, first=1000)
        same = np.array_equal(got, sequence_tokens(cfg, SEED, np.arange(1000, 1000 + N)))
        print(f"{name:<20} generate {dtype:<6} {'== CPU' if same else 'DIFFERS from CPU'}")
        if not same:
            failed.append(name)
    band = CONFIGS["paper grid, KC 5"][0].replace(band=(0.5, 1.0))
    scorer = _core.CudaFilter(band.core_dict(), SEED, 0, 2, 16)  # 16 per chunk: both slots in use
    ids = np.arange(500, 500 + 40, dtype=np.uint64)
    same = np.array_equal(scorer.score(ids), score_rules(band, SEED, ids))
    print(f"{'filter scores':<20} {'== CPU' if same else 'DIFFER from CPU'}")
    if not same:
        failed.append("filter")
    if failed:
        print("FAILED:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
