import os
import subprocess
import sys
from pathlib import Path

import torch

import ncalm
from ncalm.checkpoint import load_checkpoint
from ncalm.train import DataConfig, OptimConfig, TrainConfig, train

PYTHONPATH = str(Path(ncalm.__file__).resolve().parents[1])


def test_torchrun_two_processes_match_one_process_with_double_batch(tmp_path):
    """2 ranks x batch 2 (gloo) see the same sequences as 1 process x batch 4, so they train the same."""
    common = ["--data", "dyck", "--dyck-k", "2", "--dyck-depth", "4", "--steps", "3", "--seq-len", "32",
              "--lr", "1e-2", "--warmup", "1", "--eval-every", "0", "--eval-batches", "1", "--threads", "1",
              "--no-progress"]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ncalm", "prepretrain", "--out", str(tmp_path / "ddp"), "--batch-size", "2", "--device", "cpu",
           *common]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("prepretrain (dyck): 3/3 steps") == 1  # only rank 0 reports

    single = train(TrainConfig(out_dir=str(tmp_path / "one"), data=DataConfig(kind="dyck", seq_len=32, dyck_k=2,
                                                                             dyck_depth=4),
                               steps=3, batch_size=4, eval_every=0, eval_batches=1, threads=1, progress=False,
                               optim=OptimConfig(lr=1e-2, warmup_steps=1), device="cpu"))
    ddp = load_checkpoint(tmp_path / "ddp/checkpoint.pt")
    one = load_checkpoint(single["checkpoint"])
    assert ddp["world"] == 2 and ddp["tokens"] == one["tokens"] == 3 * 4 * 32
    for name, t in one["model"].items():
        assert torch.allclose(ddp["model"][name], t, atol=1e-5, rtol=1e-4), name
