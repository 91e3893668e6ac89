import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import ncalm
from ncalm.lm.checkpoint import load_checkpoint
from ncalm.lm.tokenizer import load_tokenizer
from ncalm.train import StageConfig, train
from ncalm.train.metrics import read_metrics

PYTHONPATH = str(Path(ncalm.__file__).resolve().parents[1])


def test_torchrun_two_processes_match_one_process_with_double_batch(tmp_path):
    """2 ranks x batch 2 (gloo) see the same sequences as 1 process x batch 4, so they train the same."""
    common = ["--data", "dyck", "--dyck-k", "2", "--dyck-depth", "4", "--steps", "3", "--seq-len", "32",
              "--lr", "1e-2", "--warmup", "1", "--eval-every", "0", "--val-sequences", "2", "--threads", "1",
              "--log-every", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ncalm", "prepretrain", "--out", str(tmp_path / "ddp"), "--batch-size", "2", "--device", "cpu",
           *common]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("prepretrain (dyck): 3/3 steps") == 1  # only rank 0 reports

    single = train(StageConfig.from_dict({
        "data": {"kind": "dyck", "seq_len": 32, "dyck": {"k": 2, "depth": 4}},
        "optim": {"lr": 1e-2, "warmup_steps": 1, "batch_size": 4},
        "run": {"out_dir": str(tmp_path / "one"), "steps": 3, "eval_every": 0, "eval_batches": 1, "threads": 1,
                "progress": False, "log_every": 1, "device": "cpu"}}))
    ddp = load_checkpoint(tmp_path / "ddp/checkpoint.pt")
    one = load_checkpoint(single["checkpoint"])
    assert ddp["spec"]["world"] == 2 and ddp["tokens"] == one["tokens"] == 3 * 4 * 32
    for name, t in one["model"].items():
        assert torch.allclose(ddp["model"][name], t, atol=1e-5, rtol=1e-4), name
    # The logged training loss is the whole batch's (both ranks), as in the single process.
    losses = [[r["loss"] for r in read_metrics(p) if "loss" in r]
              for p in (tmp_path / "ddp/metrics.jsonl", single["metrics"])]
    assert np.allclose(losses[0], losses[1], rtol=1e-5) and len(losses[0]) == 3


def _torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ncalm",
           "pretrain", "--out", str(out), "--device", "cpu", "--model", "tiny", "--batch-size", "2", "--steps", "2",
           "--seq-len", "32", "--warmup", "1", "--eval-every", "0", "--val-sequences", "2", "--threads", "1",
           "--no-progress", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_torchrun_ranks_share_one_trained_bpe_vocabulary(tmp_path):
    """Rank 0 trains the BPE tokenizer once and the other rank reads it."""
    proc = _torchrun(tmp_path / "bpe", "--text", "stdlib", "--max-bytes", "100000", "--tokenizer", "bpe",
                     "--bpe-vocab", "400")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(tmp_path / "bpe/checkpoint.pt")
    saved = load_tokenizer(tmp_path / "bpe")
    assert state["tokenizer"] == saved.to_dict() and saved.vocab_size == state["model_config"]["vocab_size"]


def test_torchrun_ranks_stop_when_rank_0_cannot_make_the_tokenizer(tmp_path):
    """The other rank used to die in the barrier with a gloo traceback (with NCCL: wait for its timeout)."""
    proc = _torchrun(tmp_path / "bpe", "--text", str(tmp_path / "missing"), "--tokenizer", "bpe")
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "rank 0 could not make the BPE tokenizer" in proc.stderr


def test_torchrun_bin_data_ignores_the_bpe_flag(tmp_path):
    """nanoGPT .bin data carries its own vocabulary: --tokenizer bpe trains nothing there."""
    data = tmp_path / "bin"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        rng.integers(0, 300, 5000, dtype=np.uint16).tofile(data / f"{split}.bin")
    (data / "meta.json").write_text('{"vocab_size": 300}')
    proc = _torchrun(tmp_path / "run", "--text", f"bin:{data}", "--tokenizer", "bpe")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run/checkpoint.pt")["model_config"]["vocab_size"] == 300
