"""The CUDA kernel's per-warp code, run on the host (32 threads as lanes, a
barrier as __syncwarp, see ncacore/cuda/emulate/), against the CPU backend.
Runs without a GPU: it checks the kernel's indexing, lane/pass layout, RNG
counters, domains and framing; the float intrinsics are the shared
detmath.hpp ones that tests/test_cuda_backend.py checks on a GPU."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import complexity, score_rules, sequence_tokens

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "ncacore"
SEED = 987654321


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Path:
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler (c++, g++ or clang++) on PATH")
    exe = tmp_path_factory.mktemp("emu") / "warp_emulator"
    cmd = [cxx, "-std=c++20", "-O1", "-ffp-contract=off", "-fno-fast-math", "-pthread",
           f"-I{CORE / 'include'}", f"-I{CORE / 'cuda' / 'include'}", f"-I{CORE / 'cuda'}",
           str(CORE / "cuda" / "emulate" / "warp_emulator.cpp"), str(CORE / "src" / "config.cpp"), "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:  # a kernel change that breaks the emulator must not pass as a skip
        pytest.fail(f"the emulator does not compile with {cxx}: {done.stderr[-2000:]}", pytrace=False)
    return exe


def _emulate(exe: Path, mode: str, cfg: NCAConfig, first: int, n: int) -> np.ndarray:
    args = [mode, cfg.grid, cfg.grid, cfg.colors, cfg.patch, cfg.burn_in, cfg.dT, repr(float(cfg.temperature)),
            repr(float(cfg.identity_bias)), cfg.seq_len, int(cfg.colour_wrap), cfg.score_frames, SEED, first, n]
    out = subprocess.run([str(exe), *map(str, args)], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.int64).reshape(n, -1)


CONFIGS = {
    "default": NCAConfig(),
    "argmax": NCAConfig(temperature=0.0),
    "temperature_1": NCAConfig(temperature=1.0),
    "identity_bias": NCAConfig(identity_bias=0.5, temperature=0.3),
    "grid16_patch4": NCAConfig(grid=16, patch=4, colors=3, seq_len=300),  # 256 cells: 2 passes of 4
    "four_colours": NCAConfig(colors=4),
    "dT_2": NCAConfig(dT=2),
    "grid4_short": NCAConfig(grid=4, seq_len=7, burn_in=0),  # 16 cells: half the lanes idle
    "grid10_clean": NCAConfig(grid=10, colour_wrap=False, seq_len=200, temperature=0.05),  # 100 cells, KC 4
    "many_colours": NCAConfig(colors=40, patch=1, temperature=0.5, seq_len=300),
    "grid6": NCAConfig(grid=6, seq_len=100),  # KC 2
    "grid9_patch3": NCAConfig(grid=9, patch=3, colors=5, seq_len=100),  # KC 3
    "grid24": NCAConfig(grid=24, seq_len=300, temperature=0.01),  # 576 cells: 4 passes of 5
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_emulated_kernel_tokens_match_cpu(emulator, name):
    cfg = CONFIGS[name]
    got = _emulate(emulator, "gen", cfg, 500, 3)
    np.testing.assert_array_equal(got, sequence_tokens(cfg, SEED, np.arange(500, 503), dtype=np.int64))


@pytest.mark.parametrize("name", ["default", "temperature_1", "grid16_patch4"])
def test_emulated_scoring_rollouts_match_cpu_scores(emulator, name):
    cfg = CONFIGS[name]
    tokens = _emulate(emulator, "score", cfg, 77, 3)
    assert tokens.shape[1] == cfg.score_frames * cfg.patches_per_frame
    want = score_rules(cfg, SEED, np.arange(77, 80))
    assert [complexity(t.astype("<i4")) for t in tokens] == list(want)
