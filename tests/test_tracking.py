"""run.tracking mirrors every metrics record to TensorBoard or W&B; off by default."""
import sys
import types

import pytest

from ncalm.settings import SettingError
from ncalm.train import train
from ncalm.train.config import StageConfig
from ncalm.train.metrics import read_metrics


def _cfg(out, tracking):
    return StageConfig.from_dict({
        "data": {"kind": "dyck", "seq_len": 16, "val_sequences": 4}, "optim": {"batch_size": 2, "warmup_steps": 0},
        "run": {"out_dir": str(out), "steps": 4, "eval_every": 2, "log_every": 1, "threads": 1, "progress": False,
                "tracking": tracking}})


def test_off_by_default_and_checked(tmp_path):
    assert StageConfig().run.tracking == []
    train(_cfg(tmp_path / "plain", []))
    assert not (tmp_path / "plain" / "tensorboard").exists()
    with pytest.raises(SettingError, match="^run.tracking: must be distinct names of tensorboard, wandb"):
        _cfg(tmp_path, ["mlflow"])


def test_tensorboard_gets_every_record(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_cfg(tmp_path, ["tensorboard"]))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    records = read_metrics(tmp_path / "metrics.jsonl")
    for key in ("loss", "lr", "val_loss"):
        want = [(r["step"], r[key]) for r in records if key in r]
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)  # stored as float32


def test_tensorboard_missing_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ValueError, match=r"^run.tracking: tensorboard needs the tensorboard package"):
        train(_cfg(tmp_path, ["tensorboard"]))


def test_wandb_logs_each_record_and_a_resume_continues_its_run(tmp_path, monkeypatch):
    calls = []

    class Run:
        def log(self, scalars, step):
            calls.append(("log", step, scalars))

        def finish(self):
            calls.append(("finish",))

    fake = types.SimpleNamespace(util=types.SimpleNamespace(generate_id=lambda: f"id{len(calls)}"),
                                 init=lambda **kw: calls.append(("init", kw)) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = _cfg(tmp_path, ["wandb"])
    train(cfg.replace(run=cfg.run.replace(stop_at=2)))
    train(cfg.replace(run=cfg.run.replace(resume=True)))
    inits = [c[1] for c in calls if c[0] == "init"]
    assert len(inits) == 2 and inits[0]["id"] == inits[1]["id"] and inits[1]["resume"] == "allow"
    logged = [(c[1], c[2]) for c in calls if c[0] == "log"]
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert sorted({s for s, _ in logged}) == sorted({r["step"] for r in records})
    assert [c[0] for c in calls].count("finish") == 2
