"""Temp files of writers killed between writing and renaming
(``.checkpoint.pt.tmp<pid>``, ``.manifest.json.tmp<pid>``) are removed when
the folder is next written, resumed or started afresh; a live writer's are kept."""
import subprocess
import sys

from ncalm.cli import main
from ncalm.locks import remove_stale_temps
from ncalm.train import StageConfig, train


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _config(out, **kw):
    run = dict(out_dir=str(out), steps=4, eval_every=0, eval_batches=1, log_every=1, threads=1, progress=False, **kw)
    return StageConfig.from_dict({"data": {"kind": "dyck", "seq_len": 32}, "run": run,
                                  "optim": {"batch_size": 2, "warmup_steps": 1}})


def test_training_removes_dead_writers_temp_files_on_resume_and_fresh_start(tmp_path):
    out = tmp_path / "run"
    train(_config(out, stop_at=2))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for resume in (True, False):
            stale = out / f".checkpoint.pt.tmp{_dead_pid()}"
            stale.write_bytes(b"\0" * (1 << 20))
            busy = out / f".checkpoint.pt.tmp{live.pid}"  # another process still writing it
            busy.write_bytes(b"\0")
            train(_config(out, resume=resume))
            assert not stale.exists() and busy.exists()
    finally:
        live.kill()
        live.wait()


def test_generate_removes_them_too(tmp_path):
    out = tmp_path / "nca"
    args = ["generate", "--out", str(out), "--seq-len", "63", "--sequences", "4", "--no-progress"]
    assert main(args) == 0
    stale = out / f".manifest.json.tmp{_dead_pid()}"
    stale.write_text("{")
    assert main([*args, "--resume"]) == 0
    assert not stale.exists()


def test_only_temp_names_are_touched(tmp_path):
    dead = _dead_pid()
    names = [f".checkpoint.pt.tmp{dead}", f"checkpoint.pt.tmp{dead}", f".x.tmp{dead}.keep", "checkpoint.pt",
             f".results.json.tmp{dead}"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [f".checkpoint.pt.tmp{dead}", f".results.json.tmp{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:4])
