#!/usr/bin/env bash
# The whole GPU check in one run, for a lent GPU machine: build the package
# with its CUDA kernels (sm_90 only, to save the lease's minutes), run the GPU
# tests (GPU tokens == CPU tokens, training on the GPU), the generator
# benchmarks, the training-speed benchmark (tokens/s, MFU, data wait), then
# small launches under compute-sanitizer with what time is left; the table of
# figures and verdicts is printed last.
#
#   benchmarks/gpu_check.sh [--quick] [--paper]
#
# --quick: small generator sizes and 3-step training windows; --paper: also the
# paper's 24 x 2048 shape in the training benchmark (minutes more: raise
# GPU_CHECK_BUDGET, or expect the sanitizer to be skipped).
# Needs python3 with torch (CUDA), pybind11, scikit-build-core, cmake, ninja
# and nvcc; no internet. Logs go to $OUT when set (the device tool's folder).
# Every step gets what is left of one budget (GPU_CHECK_BUDGET seconds, 560 by
# default, under the device tool's 600 s limit), so a hung kernel costs its
# step, never the table or the run's files.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
budget=${GPU_CHECK_BUDGET:-560}
left() { echo $(( budget - SECONDS )); }
# At most $1 seconds, keeping $2 seconds for the steps after this one (floor 10 s).
allow() { local t=$(( $(left) - $2 )); (( t > $1 )) && t=$1; (( t < 10 )) && t=10; echo "$t"; }
export PYTHONUNBUFFERED=1
# The device tool brings back at most 8 files from $OUT: build.log, tests.log,
# bench.log, bench.json, train.log, train.json, sanitize.log and, if any
# stream differed, mismatch.tgz.
logs=${OUT:-/tmp/gpu_check}
export NCALM_GPU_DUMP=/tmp/ncalm-mismatch  # GPU != CPU streams, one .npz per config; packed below
rm -rf "$NCALM_GPU_DUMP"
mkdir -p "$logs"
quick="" train_args=()
for arg in "$@"; do
  case $arg in
    --quick) quick="--quick"; train_args+=(--steps 3) ;;
    --paper) train_args+=(--paper) ;;
    *) echo "usage: benchmarks/gpu_check.sh [--quick] [--paper]"; exit 2 ;;
  esac
done

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
nproc
# CMake looks for nvcc on PATH only; a toolkit outside it would build no kernels.
command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
nvcc --version | tail -1 || echo "nvcc not found: the build will have no CUDA kernels"

echo "== build (pip install --no-build-isolation --no-deps .)"
start=$(date +%s)
if ! timeout "$(allow 200 150)" python3 -m pip install --no-build-isolation --no-deps -v . \
    -C cmake.define.NCALM_CUDA_ARCHS=90-real -C build-dir=/tmp/ncalm-build >"$logs/build.log" 2>&1; then
  tail -60 "$logs/build.log"
  echo "BUILD FAILED"
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
# Without a usable GPU every GPU test would skip and the run would look
# green: stop here instead, with the reason, before spending more lease time.
# The tests skip unless both the kernels and torch see a GPU: check both.
if ! python3 -c "
import sys, torch; from ncalm.nca.cuda import cuda_status
ok, why = cuda_status(); print(why)
if not ok: sys.exit(1)
if not torch.cuda.is_available(): print('torch sees no CUDA device (torch', torch.__version__, ', CUDA', torch.version.cuda, ')'); sys.exit(2)"; then
  echo "NO USABLE GPU (see the line above: the build, the machine or torch): the GPU tests would only skip"
  exit 1
fi

# C++ exceptions must reach Python as errors. A build on a lent machine (gcc 13,
# Python 3.12) was once seen to crash on them instead: if they do, say so with
# the toolchain and a backtrace, and run the tests in a worker that pytest-xdist
# restarts after a crash, so that one crash does not hide the other results.
echo "== C++ exceptions through the bindings"
xdist=()
no_rule="ncalm.find_rules(ncalm.NCAConfig(grid=4, colors=2, band=(0.0, 0.01), max_attempts=3), 0, [0])"
if ! timeout 60 python3 -X faulthandler -c "
import numpy as np, ncalm
from ncalm import _core
d = ncalm.NCAConfig(grid=4, colors=2).core_dict()
for what, call in [('core: bad colour', lambda: _core.logits(d, *_core.sample_rule(d, 0, 0), np.full(16, 9, np.uint8))),
                   ('core: band without rules', lambda: $no_rule)]:
    print('raising:', what, flush=True)
    try:
        call()
    except (ValueError, RuntimeError) as e:
        print('  caught', type(e).__name__, str(e)[:80], flush=True)
print('C++ exceptions: caught as Python errors')"; then
  echo "C++ EXCEPTIONS CRASH THE PROCESS (rc above): toolchain, libraries and a backtrace follow"
  gcc --version | head -1
  python3 -c "import sys, pybind11, torch; print('python', sys.version.split()[0], 'pybind11', pybind11.__version__, 'torch', torch.__version__)"
  so=$(python3 -c "import ncalm._core as c; print(c.__file__)")
  ldd "$so" | grep -E "stdc|gcc_s|cudart|libz"
  python3 -c "import torch, ncalm._core; print(''.join(l for l in open('/proc/self/maps') if 'libstdc' in l or 'libgcc_s' in l))" | awk '{print $6}' | sort -u
  gdb=$(command -v cuda-gdb || ls /usr/local/cuda*/bin/cuda-gdb 2>/dev/null | head -1)
  [[ -n "$gdb" ]] && timeout 60 "$gdb" -batch -ex run -ex bt --args python3 -c "import ncalm; $no_rule" 2>&1 | grep -v "^\[New Thread\|^\[Thread" | tail -30
  python3 -c "import xdist" 2>/dev/null && xdist=(-n 1 --max-worker-restart 200)
fi

echo "== GPU tests ($(left) s left)"
# -v: a test that hangs is named in tests.log. (The kernel emulator's test runs
# in CI, without a GPU; it is left out here to save the lease.)
timeout "$(allow 240 300)" python3 -m pytest -v -p no:cacheprovider -rs --durations=10 "${xdist[@]}" \
  tests/test_cuda_backend.py tests/test_gpu_training.py \
  2>&1 | tee "$logs/tests.log" | grep -v " PASSED" | tail -50
tests_rc=${PIPESTATUS[0]}
if [[ -d "$NCALM_GPU_DUMP" ]]; then
  tar czf "$logs/mismatch.tgz" -C "$NCALM_GPU_DUMP" . && echo "differing streams saved to mismatch.tgz"
fi

echo "== GPU benchmarks ($(left) s left)"
timeout "$(allow 150 250)" python3 benchmarks/bench_gpu.py $quick --json "$logs/bench.json" 2>&1 | tee "$logs/bench.log"
bench_rc=${PIPESTATUS[0]}

echo "== training speed ($(left) s left)"
# The benchmark skips configurations that its --budget cannot fit, so that it ends, with its
# table, before the timeout; the sanitizer below gets what is left.
t=$(allow 300 30)
timeout "$t" python3 benchmarks/bench_train_gpu.py "${train_args[@]}" --budget $(( t - 15 )) \
  --json "$logs/train.json" 2>&1 | tee "$logs/train.log" | grep -v "^row: "
train_rc=${PIPESTATUS[0]}
# After the benchmarks, so that a slow sanitizer cannot cost their figures.
echo "== compute-sanitizer on small launches of every kernel variant"
san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
sanitizer=()
sanitizer_rc=0
if [[ -z "$san" ]] || ! python3 -c "import cupy" 2>/dev/null; then
  sanitizer+=("sanitizer: skipped (compute-sanitizer or cupy missing)")
else
  : >"$logs/sanitize.log"
  tools=(memcheck racecheck synccheck)
  for i in "${!tools[@]}"; do
    tool=${tools[$i]}
    # An equal share of what is left for this and the remaining tools, 5 s kept for the table.
    limit=$(( ($(left) - 5) / (${#tools[@]} - i) ))
    (( limit > 90 )) && limit=90
    echo "===== $tool (limit $limit s)" >>"$logs/sanitize.log"
    if (( limit < 30 )); then
      sanitizer+=("$(printf '%-60s %s' "compute-sanitizer $tool" "skipped: the budget is spent")")
      continue
    fi
    timeout "$limit" "$san" --tool "$tool" --error-exitcode 9 --print-limit 20 \
      python3 benchmarks/sanitize_kernels.py >/tmp/sanitize_$tool.log 2>&1
    rc=$?
    cat /tmp/sanitize_$tool.log >>"$logs/sanitize.log"
    case $rc in
      0) verdict="clean" ;;
      9) verdict="ERRORS (see sanitize.log)" ;;
      124) verdict="timed out after $limit s" ;;
      *) verdict="failed, rc $rc (see sanitize.log)" ;;
    esac
    # Seen on gVisor machines: the sanitizer refuses the device. No verdict on the code then.
    if grep -q "Device not supported" /tmp/sanitize_$tool.log; then
      verdict="not supported on this machine"
      rc=0
    fi
    sanitizer+=("$(printf '%-60s %s' "compute-sanitizer $tool" "$verdict")")
    (( rc == 0 )) || sanitizer_rc=1
  done
fi

# The table last: benchmark figures, then the sanitizer verdicts.
echo
sed -n '/^== ncalm GPU benchmarks/,$p' "$logs/bench.log"
echo
# The training table, or (killed by the timeout) the rows finished before it.
grep -q "^== ncalm training speed" "$logs/train.log" && sed -n '/^== ncalm training speed/,$p' "$logs/train.log" \
  || grep "^row: " "$logs/train.log"
printf '%s\n' "${sanitizer[@]}"
echo "tests rc=$tests_rc, benchmarks rc=$bench_rc, training benchmark rc=$train_rc, sanitizer rc=$sanitizer_rc" \
  "(124: timed out); ${SECONDS} s of ${budget}"
exit $(( tests_rc || bench_rc || train_rc || sanitizer_rc ))
