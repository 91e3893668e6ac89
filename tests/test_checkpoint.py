import os
import signal
import multiprocessing
import time
import numpy as np
import pytest
import torch

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
