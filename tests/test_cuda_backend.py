"""The CUDA backend against the CPU backend (the reference): whole token
streams and filtering results must be identical. GPU tests skip cleanly
without a GPU; the error and buffer-parsing tests run anywhere."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ncalm import _core
from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import filter_rules, find_rules, score_rules, sequence_tokens
from ncalm.nca.generator import NCAGenerator

cuda_backend = pytest.importorskip("ncalm.nca.cuda")
USABLE, WHY = cuda_backend.cuda_status()
gpu = [pytest.mark.gpu, pytest.mark.skipif(not (USABLE and torch.cuda.is_available()), reason=f"no GPU: {WHY}")]

SEED = 20240917

# The configs the bit-identity contract is tested on (issue 3), plus shapes
# that exercise the kernel's lane/pass layout (16, 144, 256, 1024 cells).
CONFIGS = {
    "default": NCAConfig(),
    "argmax": NCAConfig(temperature=0.0),
    "temperature_1": NCAConfig(temperature=1.0),
    "identity_bias": NCAConfig(identity_bias=0.5, temperature=0.3),
    "grid16_patch4": NCAConfig(grid=16, patch=4, colors=3, seq_len=300),
    "four_colours": NCAConfig(colors=4),
    "dT_2": NCAConfig(dT=2),
    "grid4_short": NCAConfig(grid=4, seq_len=7, burn_in=0),
    "grid32_clean": NCAConfig(grid=32, colour_wrap=False, seq_len=600, temperature=0.05),
    "many_colours": NCAConfig(colors=40, patch=1, temperature=0.5),
}


def _cpu(cfg: NCAConfig, ids: np.ndarray, dtype=np.int64, rule_ids=None) -> np.ndarray:
    return sequence_tokens(cfg, SEED, ids, rule_ids=rule_ids, dtype=dtype)


def _assert_same_tokens(cfg: NCAConfig, got: np.ndarray, want: np.ndarray, label: str) -> None:
    """GPU == CPU, or a failure that says where the streams part (and, under
    gpu_check.sh, both streams saved to NCALM_GPU_DUMP for offline debugging)."""
    got, want = np.asarray(got, dtype=np.int64), np.asarray(want, dtype=np.int64)
    if got.shape == want.shape and np.array_equal(got, want):
        return
    if os.environ.get("NCALM_GPU_DUMP"):
        dump = Path(os.environ["NCALM_GPU_DUMP"])
        dump.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(dump / f"{label}.npz", gpu=got, cpu=want, seed=SEED, config=repr(cfg.to_dict()))
    assert got.shape == want.shape, f"{label}: GPU shape {got.shape}, CPU shape {want.shape}"
    rows, cols = np.nonzero(got != want)
    r, c, L = rows[0], cols[0], cfg.frame_len
    pytest.fail(f"{label}: {len(np.unique(rows))} of {len(got)} sequences differ; first at row {r}, token {c} "
                f"(frame {c // L}, position {c % L} of {L}): GPU {got[r, c]}, CPU {want[r, c]}")


# --- GPU == CPU ---------------------------------------------------------------


def _gpu_only(fn):
    for m in gpu:
        fn = m(fn)
    return fn


@_gpu_only
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tokens_match_cpu(name):
    cfg = CONFIGS[name]
    ids = np.arange(1000, 1000 + 257, dtype=np.uint64)  # 257: a partial last block of warps
    gpu_tokens = cuda_backend.CudaGenerator(cfg, SEED, "cuda").tokens(ids)
    torch.cuda.synchronize()
    _assert_same_tokens(cfg, gpu_tokens.cpu().numpy(), _cpu(cfg, ids), name)


@_gpu_only
@pytest.mark.parametrize("dtype", ["int32", "uint16", "int64"])
def test_output_dtypes_and_strided_rows(dtype):
    cfg = NCAConfig(seq_len=100)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    # torch's uint16 is a storage-only dtype: fill and read it through int16.
    store = torch.int16 if dtype == "uint16" else getattr(torch, dtype)
    big = torch.full((33, 140), 7, dtype=store, device="cuda")
    target = big.view(torch.uint16) if dtype == "uint16" else big
    gen.generate_into(target[:, : cfg.seq_len + 1], start=5)  # rows 140 apart: row_stride > width
    torch.cuda.synchronize()
    got = big.cpu().numpy().view(np.dtype(dtype)).astype(np.int64)
    np.testing.assert_array_equal(got[:, : cfg.seq_len + 1], _cpu(cfg, np.arange(5, 38)))
    assert (got[:, cfg.seq_len + 1:] == 7).all()  # nothing written past the rows


@_gpu_only
def test_scattered_ids_and_explicit_rules():
    cfg = NCAConfig(seq_len=200)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    ids = np.array([7, 3, 2**40 - 1, 12345, 0], dtype=np.uint64)
    rules = np.array([1, 1, 99, 2**56 - 1, 5], dtype=np.uint64)
    out = torch.empty((5, cfg.seq_len + 1), dtype=torch.int32, device="cuda")
    s = torch.cuda.Stream()
    gen.generate_into(out, ids, rule_ids=rules, stream=s)
    s.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), _cpu(cfg, ids, np.int32, rule_ids=rules))
    np.testing.assert_array_equal(gen.tokens(ids, rule_ids=rules).cpu().numpy(), _cpu(cfg, ids, rule_ids=rules))


@_gpu_only
def test_generation_only_enqueues():
    # Issue 3: no device synchronisation on the hot path, id uploads included.
    cfg = NCAConfig(seq_len=64)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    out = torch.empty((8, 65), dtype=torch.int32, device="cuda")
    ids = np.array([9, 2, 7, 1, 0, 3, 4, 5], dtype=np.uint64)
    torch.cuda.set_sync_debug_mode("error")  # a synchronising torch call raises
    try:
        gen.generate_into(out, start=3)
        gen.generate_into(out, ids, rule_ids=ids + 1)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), _cpu(cfg, ids, np.int32, rule_ids=ids + 1))
    # The debug mode sees torch's syncs only; one inside the core would leave the
    # stream idle on return. 32768 paper-sized rows take the GPU tens of ms.
    big_gen = cuda_backend.CudaGenerator(NCAConfig(), SEED, "cuda")
    big = torch.empty((32768, 1025), dtype=torch.int32, device="cuda")
    big_gen.generate_into(big[:8], start=0)  # first launch: module load, stack size
    torch.cuda.synchronize()
    big_gen.generate_into(big, np.arange(32768, dtype=np.uint64)[::-1].copy())  # an id upload too
    busy = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    assert busy, "generate_into returned after the GPU had finished: something synchronised"


@_gpu_only
def test_cupy_and_dlpack_targets():
    cp = pytest.importorskip("cupy")
    cfg = NCAConfig(seq_len=64)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    want = _cpu(cfg, np.arange(10, 30), np.int32)
    a = cp.zeros((20, 65), dtype=cp.int32)
    gen.generate_into(a, start=10)
    cp.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cp.asnumpy(a), want)

    class OnlyDLPack:  # exposes DLPack alone
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    t = torch.zeros((20, 65), dtype=torch.int32, device="cuda")
    gen.generate_into(OnlyDLPack(t), start=10)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(t.cpu().numpy(), want)


@_gpu_only
def test_ncagenerator_cuda_batches_match_cpu():
    cfg = NCAConfig(seq_len=128)
    g_cpu, g_gpu = NCAGenerator(cfg, SEED), NCAGenerator(cfg, SEED, device="cuda")
    for n in (3, 17):
        xc, yc = g_cpu.batch(n)
        xg, yg = g_gpu.batch(n)
        assert xg.device.type == "cuda" and xg.dtype == torch.int64
        assert torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)


@_gpu_only
def test_ncagenerator_cuda_writes_into_torch_and_cupy_buffers():
    cfg = NCAConfig(seq_len=64, band=(0.5, 1.0))
    want = _cpu(cfg, np.arange(2, 12))
    gen = NCAGenerator(cfg, SEED, device="cuda", start=2)
    store = torch.zeros((4, 65), dtype=torch.int16, device="cuda")  # uint16 is storage-only in torch
    t = store.view(torch.uint16)
    s = torch.cuda.Stream()
    assert gen.generate_into(t, stream=s) is t and gen.position == 6
    s.synchronize()
    np.testing.assert_array_equal(store.cpu().numpy().view(np.uint16), want[:4])
    cp = pytest.importorskip("cupy")
    a = cp.zeros((6, 65), dtype=cp.int32)
    gen.generate_into(a)
    cp.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cp.asnumpy(a), want[4:])
    assert gen.position == 12


@_gpu_only
@pytest.mark.parametrize("band", [(0.5, 1.0), (0.3, 0.4)])
def test_filtering_matches_cpu(band):
    cfg = NCAConfig(band=band)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda", chunk=300)  # several chunks in flight
    ids = np.arange(2000, 3000, dtype=np.uint64)
    np.testing.assert_array_equal(gen.score_rules(ids), score_rules(cfg, SEED, ids))
    acc_gpu, r_gpu = gen.filter_rules(2000, 1000)
    acc_cpu, r_cpu = filter_rules(cfg, SEED, 2000, 1000)
    np.testing.assert_array_equal(acc_gpu, acc_cpu)
    np.testing.assert_array_equal(r_gpu, r_cpu)
    seqs = np.arange(0, 200, dtype=np.uint64)
    rules_gpu, ratios_gpu = gen.find_rules(seqs)
    rules_cpu, ratios_cpu = find_rules(cfg, SEED, seqs)
    np.testing.assert_array_equal(rules_gpu, rules_cpu)
    np.testing.assert_array_equal(ratios_gpu, ratios_cpu)
    # Sequences under the band: the same found rules, the same tokens.
    _assert_same_tokens(cfg, gen.tokens(seqs[:50]).cpu().numpy(), _cpu(cfg, seqs[:50]), f"band_{band[0]}_{band[1]}")


@_gpu_only
def test_generate_command_writes_the_same_shards_on_gpu(tmp_path):
    from ncalm.cli import main

    args = ["--seq-len", "63", "--sequences", "40", "--shard-tokens", "1k", "--chunk", "7", "--seed", "5",
            "--no-progress"]
    for device in ("cpu", "cuda"):
        assert main(["generate", "--out", str(tmp_path / device), "--device", device, *args]) == 0
    for name in sorted(p.name for p in (tmp_path / "cpu").iterdir()):
        assert (tmp_path / "cuda" / name).read_bytes() == (tmp_path / "cpu" / name).read_bytes(), name


@_gpu_only
def test_no_band_needs_no_filter():
    gen = cuda_backend.CudaGenerator(NCAConfig(seq_len=64), SEED, "cuda")
    rules, ratios = gen.find_rules([0, 5, 9])
    np.testing.assert_array_equal(rules, [0, 5, 9])
    assert np.isnan(ratios).all() and gen._filter is None


@_gpu_only
def test_band_search_failure_is_reported():
    cfg = NCAConfig(band=(1.9, 2.0), max_attempts=3)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    with pytest.raises(ValueError, match="no rule inside band"):  # a config error, as on the CPU
        gen.find_rules([1, 2])


@_gpu_only
def test_bad_targets_are_refused():
    cfg = NCAConfig(seq_len=16)
    gen = cuda_backend.CudaGenerator(cfg, SEED, "cuda")
    with pytest.raises(ValueError, match="shape"):
        gen.generate_into(torch.empty((4, 16), dtype=torch.int32, device="cuda"), start=0)
    with pytest.raises(ValueError, match="dtype"):
        gen.generate_into(torch.empty((4, 17), dtype=torch.float32, device="cuda"), start=0)
    with pytest.raises(ValueError, match="CUDA device"):
        gen.generate_into(torch.empty((4, 17), dtype=torch.int32), start=0)
    with pytest.raises(ValueError, match="contiguous"):
        gen.generate_into(torch.empty((17, 4), dtype=torch.int32, device="cuda").t(), start=0)
    with pytest.raises(ValueError, match="exactly one"):
        gen.generate_into(torch.empty((4, 17), dtype=torch.int32, device="cuda"))
    buf = torch.empty((4 * 17 + 1,), dtype=torch.int32, device="cuda")

    class Misaligned:  # an int32 view 2 bytes into an allocation
        __cuda_array_interface__ = {"shape": (4, 17), "typestr": "<i4", "strides": None, "version": 3,
                                    "data": (buf.data_ptr() + 2, False)}

    with pytest.raises(ValueError, match="must be aligned for int32"):
        gen.generate_into(Misaligned(), start=0)


# --- anywhere: errors and buffer parsing -------------------------------------------


def test_a_stream_mismatch_is_located_and_saved(tmp_path, monkeypatch):
    # The GPU tests' failure report, checked here so that the first GPU run's
    # failure (if any) says where the streams part and brings both back.
    cfg = NCAConfig(seq_len=100)
    want = _cpu(cfg, np.arange(4))
    got = want.copy()
    got[2, 2 * cfg.frame_len + 5] += 1
    monkeypatch.setenv("NCALM_GPU_DUMP", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"1 of 4 sequences differ; first at row 2, token 81 \(frame 2, "
                                                    r"position 5 of 38\)"):
        _assert_same_tokens(cfg, got, want, "demo")
    saved = np.load(tmp_path / "demo.npz")
    np.testing.assert_array_equal(saved["gpu"], got)
    np.testing.assert_array_equal(saved["cpu"], want)
    _assert_same_tokens(cfg, want, want.copy(), "same")  # equal streams pass


@pytest.mark.skipif(USABLE, reason="this machine has a usable GPU")
def test_cuda_without_gpu_says_so():
    with pytest.raises(cuda_backend.CudaUnavailableError) as e:
        NCAGenerator(NCAConfig(), device="cuda")
    msg = str(e.value)
    if _core.built_with_cuda:
        assert "built with CUDA support" in msg and "no CUDA GPU is usable" in msg
    else:
        assert "built without CUDA support" in msg
    assert "device='cpu'" in msg


def test_cuda_build_without_kernels_says_so(monkeypatch):
    monkeypatch.setattr(_core, "built_with_cuda", False, raising=False)
    with pytest.raises(cuda_backend.CudaUnavailableError, match="built without CUDA support"):
        NCAGenerator(NCAConfig(), device="cuda:0")
    with pytest.raises(cuda_backend.CudaUnavailableError, match="nvcc"):
        cuda_backend.CudaGenerator(NCAConfig(), 0, "cuda")


def test_non_cuda_device_is_a_value_error():
    with pytest.raises(ValueError, match="not a CUDA device"):
        cuda_backend.CudaGenerator(NCAConfig(), 0, "cpu")


class _FakeCAI:
    def __init__(self, **cai):
        self.__cuda_array_interface__ = {"version": 3, "data": (0, False), "strides": None, **cai}


def test_cuda_array_interface_parsing():
    t = cuda_backend.as_target(_FakeCAI(shape=(3, 5), typestr="<u2"))
    assert (t.shape, t.strides, t.dtype, t.device, t.stream) == ((3, 5), (10, 2), "uint16", -1, 0)
    t = cuda_backend.as_target(_FakeCAI(shape=(2, 4), typestr="<i8", strides=(64, 8), stream=2))
    assert (t.strides, t.dtype, t.stream) == ((64, 8), "int64", 2)
    with pytest.raises(ValueError, match="read-only"):
        cuda_backend.as_target(_FakeCAI(shape=(1, 1), typestr="<i4", data=(0, True)))
    with pytest.raises(TypeError, match="__cuda_array_interface__"):
        cuda_backend.as_target([[1, 2, 3]])
    with pytest.raises(ValueError, match="CUDA device"):  # numpy speaks DLPack, but from host memory
        cuda_backend.as_target(np.zeros((2, 3), np.int32))


def test_host_tensor_target_is_refused():
    with pytest.raises(ValueError, match="CUDA device"):
        cuda_backend.as_target(torch.zeros((2, 3), dtype=torch.int32))


@pytest.mark.skipif(not _core.built_with_cuda, reason="no GPU: ncalm was built without CUDA (no nvcc)")
def test_kernel_limits_are_checked_without_a_gpu():
    assert _core.cuda_unsupported(NCAConfig().core_dict()) == ""
    assert "shared memory" in _core.cuda_unsupported(NCAConfig(grid=512).core_dict())
    assert _core.cuda_pointer_device(0) == -1
