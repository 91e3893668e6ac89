"""The CPU core's instruction-set paths (ncacore/src/kernels.hpp): one build
holds a scalar path (cell.hpp's per-cell functions) and on x86-64 AVX2 and
AVX-512 paths, chosen at run time. Every path must give the very same
tokens, rule weights and scores; the scalar path is the yardstick."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ncalm
from ncalm import _core

ROOT = Path(__file__).resolve().parents[1]
X86 = platform.machine().lower() in ("x86_64", "amd64")
PATHS = _core.supported_isas()
SEED = 20240917

# Each config takes a different branch of the SIMD step: conv1 by 8- or
# 16-entry table lookups (C <= 8, C <= 16) or by gathers (C > 16), with and
# without noise (temperature 0, hot), identity bias, the noisy-cell batch
# filling up (more than 4096 cells), and the scoring simulations.
CONFIGS = {
    "paper": ncalm.NCAConfig(band=(0.5, 1.0)),
    "argmax": ncalm.NCAConfig(temperature=0.0, seq_len=400),
    "4 colours": ncalm.NCAConfig(colors=4, seq_len=400),
    "grid 16 patch 4": ncalm.NCAConfig(grid=16, patch=4, colors=3, seq_len=400),
    "dT 2, no colour wrap, bias": ncalm.NCAConfig(dT=2, colour_wrap=False, identity_bias=1.5, seq_len=400),
    "20 colours, hot": ncalm.NCAConfig(colors=20, temperature=1.0, seq_len=400),
    "72x72 grid, hot": ncalm.NCAConfig(grid=72, temperature=0.5, seq_len=1300, burn_in=3, score_frames=2),
}


@pytest.fixture
def restore_path():
    yield
    _core.set_isa("auto")


def _outputs(cfg: ncalm.NCAConfig) -> dict[str, np.ndarray]:
    ids = np.arange(3 if cfg.grid > 16 else 6)
    out = {"tokens": ncalm.sequence_tokens(cfg, SEED, ids + 1000),
           "scores": ncalm.score_rules(cfg, SEED, ids),
           **ncalm.sample_rules(cfg, SEED, ids[:2])}
    if cfg.band is not None:
        out["rules"], out["ratios"] = ncalm.find_rules(cfg, SEED, ids)
    return out


def test_paths_compiled_and_chosen():
    compiled = _core.compiled_isas()
    assert compiled[0] == "scalar" and PATHS[0] == "scalar" and set(PATHS) <= set(compiled)
    if X86:
        assert compiled == ["scalar", "avx2", "avx512"]
    if not os.environ.get("NCALM_ISA"):
        assert _core.isa() == PATHS[-1], "the default is the fastest path this CPU runs"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_path_gives_the_scalar_paths_results(name, restore_path):
    if len(PATHS) == 1:
        pytest.skip("only the scalar path runs on this CPU")
    cfg = CONFIGS[name]
    _core.set_isa("scalar")
    want = _outputs(cfg)
    for path in PATHS[1:]:
        _core.set_isa(path)
        got = _outputs(cfg)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{path} path, {key}")


def test_set_isa_refuses_unknown_paths(restore_path):
    with pytest.raises(ValueError, match=r"isa='sse9' is not a compiled path \(allowed: auto, scalar"):
        _core.set_isa("sse9")


def _run_core(code: str, env: dict[str, str] | None = None, prefix: list[str] | None = None):
    """Runs `code` in a fresh interpreter with this _core loaded as `m` (not
    through ncalm, whose imports are slow under an emulator)."""
    load = ("import importlib.util as u, json, numpy as np\n"
            f"s = u.spec_from_file_location('_core', {_core.__file__!r})\n"
            "m = u.module_from_spec(s); s.loader.exec_module(m)\n")
    return subprocess.run([*(prefix or []), sys.executable, "-c", load + code],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_ncalm_isa_environment_variable():
    for path in PATHS:
        done = _run_core("print(m.isa())", {"NCALM_ISA": path})
        assert done.returncode == 0 and done.stdout.split() == [path], done.stderr
    done = _run_core("m.isa()", {"NCALM_ISA": "avx1024"})
    assert done.returncode != 0
    assert "ValueError: NCALM_ISA='avx1024' is not a compiled path (allowed: auto, scalar" in done.stderr


# A short generation and scoring run, printed as JSON for the host to compare.
PROBE = """
cfg = {'height': 12, 'width': 12, 'colors': 10, 'patch': 2, 'burn_in': 10, 'dT': 1, 'temperature': 1e-4,
       'identity_bias': 0.0, 'seq_len': 300, 'colour_wrap': True, 'score_frames': 10, 'max_attempts': 65536,
       'band': (0.5, 1.0)}
out = np.empty((3, 301), np.int32)
m.generate(cfg, 7, np.arange(3, dtype=np.uint64), None, out, 1)
rules, ratios = m.find_rules(cfg, 7, np.arange(3, dtype=np.uint64), 1)
refused = ''
try:
    m.set_isa('avx512')
except ValueError as e:
    refused = str(e)
print(json.dumps({'isa': m.isa(), 'supported': m.supported_isas(), 'refused': refused, 'tokens': out.tolist(),
                  'rules': rules.tolist(), 'ratios': ratios.tolist()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu, path", [("Haswell", "avx2"), ("Nehalem", "scalar")])
def test_older_cpus_under_qemu(cpu, path):
    """The build runs on CPUs without AVX-512 (Haswell: AVX2) or AVX (Nehalem)
    and gives this machine's results there (qemu-user emulates the CPU)."""
    qemu = shutil.which("qemu-x86_64")
    if not X86 or qemu is None:
        pytest.skip("needs x86-64 and qemu-x86_64 (apt's qemu-user)")
    if _core.built_native:
        pytest.skip("a -march=native build (NCALM_NATIVE=ON) runs only on CPUs like the one that built it")
    done = _run_core(PROBE, prefix=[qemu, "-cpu", cpu])
    assert done.returncode == 0, f"exit {done.returncode} under qemu -cpu {cpu}: {done.stderr[-2000:]}"
    emulated = json.loads(done.stdout)
    host = json.loads(_run_core(PROBE).stdout)
    compiled = _core.compiled_isas()
    assert emulated["isa"] == path and emulated["supported"] == compiled[:compiled.index(path) + 1]
    assert emulated["refused"].startswith("isa='avx512': this CPU cannot run it (it runs scalar")
    for key in ("tokens", "rules", "ratios"):
        assert emulated[key] == host[key], key


@pytest.mark.slow
def test_aarch64_scalar_path_under_qemu(tmp_path):
    """The core builds for aarch64 (scalar path only) and gives the same tokens
    there: tests/cpu_probe.cpp, cross-compiled, under qemu-aarch64."""
    cxx, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if cxx is None or qemu is None:
        pytest.skip("needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt's g++-aarch64-linux-gnu and qemu-user)")
    exe = tmp_path / "cpu_probe"
    src = ROOT / "ncacore" / "src"
    sources = [src / "config.cpp", src / "rollout.cpp", src / "isa.cpp", *sorted(src.glob("kernels_*.cpp"))]
    done = subprocess.run([cxx, "-std=c++17", "-O2", "-static", "-ffp-contract=off", "-fno-fast-math", "-Wall",
                           "-Wextra", "-Werror", f"-I{ROOT / 'ncacore' / 'include'}", str(ROOT / "tests" / "cpu_probe.cpp"),
                           *map(str, sources), "-o", str(exe)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("paper", "argmax", "dT 2, no colour wrap, bias", "20 colours, hot"):
        cfg = CONFIGS[name].replace(band=None)
        args = [cfg.grid, cfg.grid, cfg.colors, cfg.patch, cfg.burn_in, cfg.dT, repr(float(cfg.temperature)),
                repr(float(cfg.identity_bias)), cfg.seq_len, int(cfg.colour_wrap), cfg.score_frames, SEED, 40, 3]
        run = lambda mode: np.frombuffer(subprocess.run([qemu, str(exe), mode, *map(str, args)], capture_output=True,
                                                        check=True, timeout=300).stdout, np.int64).reshape(3, -1)
        np.testing.assert_array_equal(run("gen"), ncalm.sequence_tokens(cfg, SEED, np.arange(40, 43), dtype=np.int64),
                                      err_msg=name)
        scores = [ncalm.complexity(t.astype("<i4")) for t in run("score")]
        assert scores == list(ncalm.score_rules(cfg, SEED, np.arange(40, 43))), name
