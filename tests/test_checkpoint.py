import hashlib
import math
import os
import random
import signal
import multiprocessing
import time
import numpy as np
import pytest
import torch

import ncalm
from ncalm.lm import checkpoint
from ncalm.lm.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from ncalm.cli import main
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.tokenizer import ByteTokenizer


def small_state():
    torch.manual_seed(0)
    cfg = model_config("tiny", vocab_size=40, max_seq_len=32)
    model = LlamaLM(cfg)
    return model, {"model": model.state_dict(), "model_config": cfg.to_dict(),
                   "tokenizer": ByteTokenizer().to_dict(), "step": 7}


def test_load_model_round_trip(tmp_path):
    model, state = small_state()
    save_checkpoint(tmp_path / "c.pt", state)
    loaded, tok, meta = load_model(tmp_path / "c.pt")
    assert isinstance(tok, ByteTokenizer)
    assert meta["step"] == 7 and "model" not in meta
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_nca_checkpoint_has_no_tokenizer(tmp_path):
    _, state = small_state()
    state["tokenizer"] = None
    save_checkpoint(tmp_path / "c.pt", state)
    assert load_model(tmp_path / "c.pt")[1] is None


def test_state_round_trips_exactly(tmp_path):
    state = {"model": {"w": torch.randn(3, 4), "b16": torch.randn(5).bfloat16(), "step": torch.tensor(3.0)},
             "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"betas": (0.9, 0.95),
                                                                                       "params": [0]}]},
             "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
             "loss": float("nan"), "none": None, "flag": True, "nested": [[1, "a"], {"x": 2.5}]}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.pt", state))
    assert loaded.pop("ncalm_version") == ncalm.__version__
    assert math.isnan(loaded.pop("loss")) and math.isnan(state.pop("loss"))
    assert loaded["optimizer"]["state"].keys() == {0}  # int keys stay ints: optimizers match moments by them
    random.setstate(loaded["rng"]["python"])  # tuples stay tuples
    for name, t in [*state["model"].items(), ("rng", state["rng"]["torch"])]:
        got = loaded["rng"]["torch"] if name == "rng" else loaded["model"][name]
        assert torch.equal(got, t) and got.dtype == t.dtype, name
    assert loaded["rng"]["python"] == state["rng"]["python"]
    assert {k: v for k, v in loaded.items() if k not in ("model", "rng", "optimizer")} == \
        {k: v for k, v in state.items() if k not in ("model", "rng", "optimizer")}
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert "optimizer" not in load_checkpoint(tmp_path / "c.pt", skip=("optimizer",))


def test_a_checkpoint_is_a_safetensors_file_of_the_weights(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    model, state = small_state()
    save_checkpoint(tmp_path / "c.pt", state)
    tensors = safetensors.load_file(tmp_path / "c.pt")
    assert tensors.keys() == {f"model/{k}" for k in model.state_dict()}
    assert all(torch.equal(tensors[f"model/{k}"], v) for k, v in model.state_dict().items())


def test_an_unchanged_checkpoint_is_hashed_once(tmp_path, monkeypatch):
    _, state = small_state()
    path = save_checkpoint(tmp_path / "c.pt", state)
    hashed = []
    real = checkpoint.file_sha256
    monkeypatch.setattr(checkpoint, "file_sha256", lambda *a, **k: hashed.append(a[0]) or real(*a, **k))
    load_model(path)
    load_model(path)
    assert hashed == []  # the save verified what it wrote
    (tmp_path / ".c.pt.verified").unlink()
    load_model(path)
    load_model(path)
    assert hashed == [path]
    data = bytearray(path.read_bytes())  # rewritten in place: another mtime, so verified again
    data[len(data) // 2] ^= 0x01
    time.sleep(0.05)  # past the file system's timestamp granularity
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(path)


def test_the_earlier_format_still_loads(tmp_path):
    model, state = small_state()
    with open(tmp_path / "old.pt", "wb") as f:  # torch.save payload + (magic, length, sha256) trailer
        torch.save(state, f)
        length = f.tell()
    payload = (tmp_path / "old.pt").read_bytes()
    with open(tmp_path / "old.pt", "ab") as f:
        f.write(checkpoint.TRAILER.pack(checkpoint.MAGIC, length, hashlib.sha256(payload).digest()))
    loaded, tok, meta = load_model(tmp_path / "old.pt")
    assert isinstance(tok, ByteTokenizer) and meta["step"] == 7
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    (tmp_path / "old.pt").write_bytes(payload[:100] + bytes([payload[100] ^ 1]) + payload[101:] +
                                      (tmp_path / "old.pt").read_bytes()[length:])
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path / "old.pt")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1, -48])
def test_truncated_checkpoint_is_refused(tmp_path, keep):
    _, state = small_state()
    save_checkpoint(tmp_path / "c.pt", state)
    data = (tmp_path / "c.pt").read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    (tmp_path / "t.pt").write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "t.pt")


def test_flipped_byte_is_refused(tmp_path):
    _, state = small_state()
    save_checkpoint(tmp_path / "c.pt", state)
    data = bytearray((tmp_path / "c.pt").read_bytes())
    data[len(data) // 3] ^= 0x01
    (tmp_path / "c.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(tmp_path / "c.pt")


def test_plain_torch_file_is_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an ncalm checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_cli_reports_corrupt_checkpoint_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"\0" * 1000)
    rc = main(["pretrain", "--init", str(tmp_path / "bad.pt"), "--steps", "1", "--warmup", "1",
               "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "bad.pt" in err and "Traceback" not in err


def _writer(path, pipe) -> None:
    k = 0
    while True:
        k += 1
        # Every tensor holds the step number: a loaded checkpoint is right iff all agree.
        # numpy builds the tensors: torch ops may use an OpenMP pool that does not survive fork.
        a, b = np.full(1 << 22, k, dtype=np.float32), np.full(999, k, dtype=np.float32)
        save_checkpoint(path, {"step": k, "a": torch.from_numpy(a), "b": torch.from_numpy(b)})
        pipe.send(k)


def test_kill_mid_checkpoint_never_leaves_a_valid_but_wrong_file(tmp_path):
    # fork (not spawn) so the writer starts in milliseconds: torch is already imported.
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "ckpt.pt"
    seen, leftovers = [], 0
    for delay in (0.0, 0.011, 0.037, 0.07, 0.13, 0.23):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_writer, args=(path, send), daemon=True)
        proc.start()
        assert recv.poll(60), "checkpoint writer made no progress"
        recv.recv()  # at least one complete save
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        state = load_checkpoint(path)  # the last completed save must always load, and be right
        assert torch.all(state["a"] == state["step"]) and torch.all(state["b"] == state["step"])
        seen.append(state["step"])
        # A temporary left by the kill is either refused or a complete, consistent save.
        for tmp in tmp_path.glob(".ckpt.pt.tmp*"):
            leftovers += 1
            try:
                partial = load_checkpoint(tmp)
            except CheckpointError:
                pass
            else:
                assert torch.all(partial["a"] == partial["step"])
            tmp.unlink()
    assert min(seen) >= 1
