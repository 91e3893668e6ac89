"""Training on a GPU with NCA data generated there: the data must be the CPU
backend's, and a stage must run end to end on CUDA (bf16 autocast, fused
AdamW, GPU-resident batches, checkpoint and resume); batches are made ahead on
a side stream without changing them, and a training step does not wait for the
GPU. Skips without a GPU."""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch

from ncalm.nca.config import NCAConfig
from ncalm.data.dyck import DyckSource
from ncalm.data.nca import NCASource
from ncalm.data.sharding import Prefetcher, make_loader
from ncalm.lm.model import LlamaLM, model_config
from ncalm.train import StageConfig, train
from ncalm.train.config import OptimConfig
from ncalm.train.optim import build_optimizer
from ncalm.train.trainer import train_step

cuda_backend = pytest.importorskip("ncalm.nca.cuda")
USABLE, WHY = cuda_backend.cuda_status()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not (USABLE and torch.cuda.is_available()), reason=f"no GPU: {WHY}")]

CFG = NCAConfig(grid=8, colors=4, seq_len=64, band=(0.3, 1.0))


@pytest.mark.parametrize("pool_size", [0, 8])
def test_nca_source_on_gpu_yields_the_cpu_batches(pool_size):
    kw = dict(seed=5, pool_size=pool_size, epoch_sequences=2 * pool_size)
    gpu, cpu = NCASource(CFG, device="cuda", **kw), NCASource(CFG, device="cpu", **kw)
    indices = np.arange(30, 54)  # crosses a pool epoch when pool_size = 8
    for (gx, gy), (cx, cy) in zip([gpu.items(indices)] + gpu.val_batches(4, 2),
                                  [cpu.items(indices)] + cpu.val_batches(4, 2)):
        assert gx.device.type == "cuda" and gx.dtype == torch.int64
        assert torch.equal(gx.cpu(), cx) and torch.equal(gy.cpu(), cy)


def _config(out, gen_device: str, **run) -> StageConfig:
    return StageConfig.from_dict({
        "data": {"kind": "nca", "seq_len": 64, "nca": {"grid": 8, "colors": 4, "band": [0.3, 1.0]},
                 "gen_device": gen_device},
        "optim": {"lr": 3e-3, "warmup_steps": 2, "batch_size": 4, "grad_accum": 2},
        "run": {"out_dir": str(out), "device": "cuda", "steps": 8, "eval_every": 4, "eval_batches": 2,
                "ckpt_every": 0, "log_every": 1, "progress": False, "compile": False, **run}})


def test_a_stage_trains_on_gpu_generated_nca_and_resumes(tmp_path, monkeypatch):
    calls = []
    tokens = cuda_backend.CudaGenerator.tokens
    monkeypatch.setattr(cuda_backend.CudaGenerator, "tokens",
                        lambda self, *a, **k: calls.append(1) or tokens(self, *a, **k))
    full = train(_config(tmp_path / "gpu", "cuda"))
    assert calls, "the GPU generator was not used"
    assert full["finished"] and full["step"] == 8 and math.isfinite(full["val_loss"])

    # Same data from the CPU backend: the same run up to GPU float nondeterminism
    # (embedding backward accumulates with atomics).
    cpu_data = train(_config(tmp_path / "cpu", "cpu"))
    assert cpu_data["val_loss"] == pytest.approx(full["val_loss"], rel=2e-2)

    part = train(_config(tmp_path / "part", "cuda", stop_at=5))
    assert part["step"] == 5 and not part["finished"]
    resumed = train(_config(tmp_path / "part", "cuda", resume=True))
    assert resumed["finished"] and resumed["step"] == 8
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], rel=2e-2)


class SlowSource:
    """A source whose every batch is preceded by ~10 ms of GPU work on the stream that makes it: a
    reader that did not wait for the making stream would read the batch before it is written."""

    def __init__(self, source):
        self.source = source

    def items(self, indices):
        torch.cuda._sleep(20_000_000)
        return self.source.items(indices)


@pytest.mark.parametrize("made_on", ["cuda", "cpu"])
def test_prefetched_batches_are_the_loaders_and_ready_when_read(made_on):
    """Made on a side stream (GPU-generated NCA, or CPU-made then pinned and copied), read on the
    compute stream right away: the same batches, in the same order."""
    if made_on == "cuda":  # NCA generated on the GPU, against the CPU backend's
        source, reference = NCASource(CFG, seed=5, device="cuda"), NCASource(CFG, seed=5, device="cpu")
    else:
        source, reference = DyckSource(seq_len=64, seed=5), DyckSource(seq_len=64, seed=5)
    plain = make_loader(reference, 4, start=3)
    ahead = Prefetcher(make_loader(SlowSource(source), 4, start=3), "cuda", depth=2)
    try:
        for _ in range(6):
            (px, py), (ax, ay) = next(plain), next(ahead)
            assert ax.is_cuda and ay.is_cuda
            assert torch.equal(ax.cpu(), px) and torch.equal(ay.cpu(), py)
    finally:
        ahead.close()


def test_a_training_step_returns_while_the_gpu_still_works():
    """No host sync in a step (bf16 autocast, two micro-batches, clipping, fused AdamW): with a second
    of GPU work queued before it, the step returns long before the GPU is done."""
    device = torch.device("cuda")
    model = LlamaLM(model_config("tiny", vocab_size=64, max_seq_len=64)).to(device)
    optimizer = build_optimizer(model, OptimConfig(), fused=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    x = torch.randint(0, 64, (4, 64), device=device)
    cfg = OptimConfig(batch_size=4, grad_accum=2, grad_clip=1.0)

    def step():
        return train_step(model, model, iter([(x, x)] * 2), optimizer, trainable, cfg,
                          lambda: torch.autocast("cuda", dtype=torch.bfloat16), device)

    step()
    torch.cuda.synchronize()  # optimizer state made, kernels loaded
    torch.cuda._sleep(2_000_000_000)  # about a second of GPU time, queued before the step
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")  # names the synchronizing operation, if there is one
        try:
            loss_sum, _ = step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    host = time.perf_counter() - start
    still_working = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    gpu = time.perf_counter() - start
    syncs = sorted({str(w.message).splitlines()[0] for w in caught if "ynchroniz" in str(w.message)})
    assert still_working and host < gpu / 2, f"the step waited for the GPU ({host:.3f} s of {gpu:.3f} s): {syncs}"
    assert loss_sum.is_cuda and math.isfinite(loss_sum.item())


def test_activation_checkpointing_trains_the_same_on_the_gpu(tmp_path):
    plain = train(_config(tmp_path / "plain", "cuda", steps=4))
    recomputed = train(_config(tmp_path / "ckpt", "cuda", steps=4, activation_checkpointing=True))
    assert recomputed["val_loss"] == pytest.approx(plain["val_loss"], rel=2e-2)
    assert 0 <= recomputed["data_wait_s"] <= recomputed["step_s"]
