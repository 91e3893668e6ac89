"""Training on a GPU with NCA data generated there: the data must be the CPU
backend's, and a stage must run end to end on CUDA (bf16 autocast, fused
AdamW, GPU-resident batches, checkpoint and resume). Skips without a GPU."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncalm.nca.config import NCAConfig
from ncalm.data.nca import NCASource
from ncalm.train import StageConfig, train

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
                "ckpt_every": 0, "log_every": 1, "progress": False, **run}})


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
