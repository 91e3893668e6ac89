"""The default (portable) build against a -march=native build, side by side.

Builds the CPU module twice from this checkout with CMake (CUDA off): the
default build, whose hot loops pick their instruction set at run time, and
NCALM_NATIVE=ON. Both are timed in the same run, alternating, on the paper's
settings: generation (tokens/s) and gzip-band filtering (candidate rules/s),
one thread each. The default build's forced paths (NCALM_ISA: what an AVX2
CPU, or one without AVX, gets) are timed alongside for the table.

    pytest benchmarks/bench_isa.py -s                                  # builds (a few minutes), then times
    NCALM_BENCH_BUILD_DIR=/tmp/ncalm-isa pytest benchmarks/bench_isa.py -s   # keeps the builds for reruns

Rates are per second of process CPU time, best of several rounds: on a
shared machine, wall time also counts the time other processes hold the
core. The test fails when the default build makes less than 90% of the
native build's tokens/s or rules/s, or when their outputs differ.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 10
GUARD = 0.9

# One worker process per build: two builds of the same extension module
# cannot share a process (the second one's symbols resolve to the first's).
WORKER = r"""
import hashlib, importlib.util, sys, time
import numpy as np
path, isa = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("_core", path)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
if isa:
    m.set_isa(isa)
print(m.isa(), ",".join(m.supported_isas()), flush=True)
cfg = {"height": 12, "width": 12, "colors": 10, "patch": 2, "burn_in": 10, "dT": 1, "temperature": 1e-4,
       "identity_bias": 0.0, "seq_len": 1024, "colour_wrap": True, "score_frames": 10, "max_attempts": 65536,
       "band": None}
band = dict(cfg, band=(0.5, 1.0))
n = int(sys.argv[3])
ids = np.arange(n, dtype=np.uint64)
out = np.empty((n, 1025), np.int32)


def tokens():
    m.generate(cfg, 0, ids, None, out, 1)
    return out


jobs = {"tokens": tokens, "rules": lambda: m.score_rules(band, 0, ids, 1)}
for job in sys.stdin:
    t = time.process_time()
    result = jobs[job.strip()]()
    dt = time.process_time() - t
    print(dt, hashlib.sha256(result.tobytes()).hexdigest()[:16], flush=True)
"""


def _build(src: Path, build: Path, native: bool) -> Path:
    import pybind11

    gen = ["-G", "Ninja"] if shutil.which("ninja") and not (build / "CMakeCache.txt").exists() else []
    for cmd in (["cmake", "-S", str(src), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Release", "-DNCALM_CUDA=OFF",
                 f"-DNCALM_NATIVE={'ON' if native else 'OFF'}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"],
                ["cmake", "--build", str(build), "--parallel"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return next(build.glob("_core*.so"))


@pytest.fixture(scope="module")
def builds():
    keep = os.environ.get("NCALM_BENCH_BUILD_DIR")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="ncalm-isa-"))
    # Built from a copy of the sources: a build outside scikit-build copies
    # _core into <source>/python/ncalm, which must not be this checkout's.
    src = root / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "python" / "ncalm").mkdir(parents=True)
    for part in ("CMakeLists.txt", "ncacore", "csrc"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy2)(ROOT / part, src / part)
    try:
        yield {"default": _build(src, root / "default", False), "native": _build(src, root / "native", True)}
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


class Worker:
    """One build (or one forced path of it) in its own process; keeps the best time per job."""

    def __init__(self, module: Path, isa: str, n: int, rounds: int):
        self.n, self.rounds = n, rounds
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(module), isa, str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.isa, supported = self.proc.stdout.readline().split()
        self.supported = supported.split(",")
        self.best = {"tokens": float("inf"), "rules": float("inf")}
        self.digest: dict[str, str] = {}

    def run(self, job: str) -> None:
        self.proc.stdin.write(job + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        assert line, f"the worker died running {job}"
        self.best[job] = min(self.best[job], float(line[0]))
        self.digest[job] = line[1]

    def rate(self, job: str) -> float:
        return self.n * (1025 if job == "tokens" else 1) / self.best[job]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


@pytest.mark.slow
def test_default_build_runs_at_native_speed(builds):
    n = 1000
    workers = {"-march=native": Worker(builds["native"], "", n, ROUNDS),
               "default": Worker(builds["default"], "", n, ROUNDS)}
    default_isa, supported = workers["default"].isa, workers["default"].supported
    if "avx2" in supported and default_isa != "avx2":
        workers["default, avx2 path"] = Worker(builds["default"], "avx2", n, ROUNDS // 2)
    workers["default, scalar path"] = Worker(builds["default"], "scalar", n // 5, 2)
    try:
        for r in range(ROUNDS):
            for job in ("tokens", "rules"):
                for w in workers.values():
                    if r < w.rounds:
                        w.run(job)
    finally:
        for w in workers.values():
            w.close()
    native, default = workers["-march=native"], workers["default"]
    print(f"\n[default build vs -march=native: paper settings, 1 thread, CPU time; the default build runs "
          f"its {default_isa} path here]")
    print(f"  {'':22s} {'tokens/s':>12s} {'ratio':>6s} {'rules/s':>10s} {'ratio':>6s}")
    for label, w in workers.items():
        print(f"  {label:22s} {w.rate('tokens'):12,.0f} {w.rate('tokens') / native.rate('tokens'):6.2f} "
              f"{w.rate('rules'):10,.0f} {w.rate('rules') / native.rate('rules'):6.2f}")
    for label, w in workers.items():
        if w.n == n:
            assert w.digest == native.digest, f"{label}: tokens or scores differ from the native build's"
    for job in ("tokens", "rules"):
        ratio = default.rate(job) / native.rate(job)
        assert ratio >= GUARD, f"default build at {ratio:.2f} of native {job}/s (guard {GUARD})"
