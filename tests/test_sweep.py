"""`ncalm sweep`: points are experiments, a rerun redoes nothing, --plan | xargs -P 2 + --collect = the same report."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ncalm
from ncalm.cli import main
from ncalm.experiment.sweep import SWEEP_PRESETS, SweepConfig, parse_points, points
from ncalm.settings import SettingError

NCALM_ROOT = Path(ncalm.__file__).resolve().parents[1]

SWEEP = """
name = "mini"
preset = "tiny"
seeds = [0, 1]
jobs = 2
[experiment]
arms = ["scratch", "nca", "nca-shuffled"]
threads = 1
bands = [[0.1, 1.0]]
bpb_bytes = 0
[experiment.prepretrain]
data = {{ seq_len = 64, nca = {{ grid = 6, colors = 4 }} }}
optim = {{ batch_size = 4, warmup_steps = 1 }}
run = {{ tokens = 1024 }}
[experiment.language]
data = {{ seq_len = 64, val_sequences = 8, text = {{ source = "{corpus}", val_percent = 20.0, max_val_bytes = 20000 }} }}
optim = {{ batch_size = 4, warmup_steps = 1 }}
run = {{ tokens = 2560, eval_every = 5 }}
[axes]
"prepretrain.optim.lr" = [1e-3, 3e-3]
"""


def _corpus(directory: Path) -> Path:
    directory.mkdir()
    words = "the of cell rule grid token frame state loss model data python code value".split()
    for i in range(10):
        (directory / f"doc{i}.txt").write_text(" ".join(words[(i * 7 + j * j) % len(words)] for j in range(400)))
    return directory


def _events(out: Path) -> list[str]:
    return [json.loads(line)["event"] for p in sorted(out.glob("point-*/events.jsonl"))
            for line in p.read_text().splitlines()]


def _table(out: Path) -> list[tuple]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [(r["point"], r["arm"], r["seeds"], r["perplexity"], r.get("change_pct")) for r in rows]


def test_points_share_scratch_only_when_its_run_is_the_same():
    cfg = SweepConfig(preset="tiny", axes={"prepretrain": {"optim": {"lr": [1e-3, 3e-3]}}})
    assert cfg.axes == {"prepretrain.optim.lr": [1e-3, 3e-3]}
    pts = points(cfg)
    assert [p.config.arms for p in pts] == [["scratch"], ["nca", "dyck", "text"], ["nca", "dyck", "text"]]
    assert [p.config.prepretrain.optim.lr for p in pts[1:]] == [1e-3, 3e-3]
    sizes = points(SweepConfig(preset="tiny", axes={"model.size": ["tiny", "mini"], "bands": [[[0.36, 1.0]]]}))
    assert [(p.values, "scratch" in p.config.arms) for p in sizes] == [
        ({"model.size": "tiny", "bands": [[0.36, 1.0]]}, True), ({"model.size": "mini", "bands": [[0.36, 1.0]]}, True)]
    listed = points(SweepConfig(preset="tiny", grid=False, axes={"model.size": ["tiny", "mini"],
                                                                  "language.optim.lr": [1e-3, 2e-3]}))
    assert [p.values for p in listed] == [{"model.size": "tiny", "language.optim.lr": 1e-3},
                                          {"model.size": "mini", "language.optim.lr": 2e-3}]
    for name in SWEEP_PRESETS:
        assert points(SweepConfig.from_dict(SWEEP_PRESETS[name]))


def test_bad_sweeps_name_the_setting():
    with pytest.raises(SettingError, match=r"^prepretrain.optim.lr: must be > 0.*at the point prepretrain.optim.lr=0"):
        SweepConfig(axes={"prepretrain.optim.lr": [0.0]})
    with pytest.raises(SettingError, match="^nope: unknown setting"):
        SweepConfig(axes={"nope": [1]})
    with pytest.raises(SettingError, match="^axes: with grid = false"):
        SweepConfig(grid=False, axes={"model.size": ["tiny"], "bands": [[[0.1, 1.0]], [[0.2, 1.0]]]})
    # Seeds and a name for the points were overridden by the sweep's own without a word.
    for where, key, value in (("experiment", "seeds", [0, 1, 2]), ("experiment", "name", "lr"),
                              ("axes", "seeds", [[0], [1]]), ("axes", "name", ["a", "b"])):
        given = {"experiment": {}, "axes": {"model.size": ["tiny"]}}
        given[where][key] = value
        with pytest.raises(SettingError, match=rf"^{where}.{key}: {key} is the sweep's own setting \(.* top level\)$"):
            SweepConfig.from_dict(given)
    # "..., got 0.001, got {...}"; and a point of only scratch was "arms: must be a non-empty list ..., got []".
    with pytest.raises(SettingError, match=r"^axes: prepretrain.optim.lr: must be a non-empty list of values, "
                                           r"got \{'prepretrain.optim.lr': 0.001\}$"):
        SweepConfig(axes={"prepretrain.optim.lr": 1e-3})
    with pytest.raises(SettingError, match=r"^arms: only scratch, which every point runs anyway .*"
                                           r"\(at the point arms=\[\"scratch\"\]\)$"):
        SweepConfig(axes={"arms": [["scratch", "nca"], ["scratch"]]})
    with pytest.raises(SettingError, match="^experiment.arms: a sweep measures"):
        SweepConfig(experiment={"arms": ["nca"]}, axes={"model.size": ["tiny"]})
    assert parse_points("1..3,0", 5) == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="points 0..4"):
        parse_points("2..5", 5)



def test_a_model_shorthand_takes_later_overrides_as_ncalm_experiment_does(tmp_path):
    # The shorthand was expanded only per point: --set experiment.model.overrides replaced model = "small"
    # (and a preset's model = "small"), and every point fell back to the tiny model.
    from ncalm.experiment.sweep import load_definition
    from ncalm.lm.config import SIZES, model_config

    def shapes(cfg: SweepConfig) -> list[tuple]:
        return [(p.config.model.size, p.config.model.overrides, model_config(p.config.model.size,
                                                                            **p.config.model.overrides))
                for p in points(cfg)]

    small = model_config("small", mlp_hidden=512)
    assert (small.n_layer, small.d_model, small.mlp_hidden) == (SIZES["small"]["n_layer"], 384, 512)
    toml = tmp_path / "sweep.toml"
    toml.write_text('preset = "tiny"\n[experiment]\nmodel = "small"\n[axes]\n"prepretrain.optim.lr" = [1e-3, 3e-3]\n')
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(toml), "--set", "experiment.model.overrides={mlp_hidden=512}",
                 "--out", str(out), "--plan"]) == 0
    assert shapes(load_definition(out)) == [("small", {"mlp_hidden": 512}, small)] * 3
    # The same over a preset whose model is a shorthand, and an axis over the size keeping the override.
    over_preset = SweepConfig(preset="gpu-small", experiment={"model": {"overrides": {"mlp_hidden": 512}}},
                              axes={"prepretrain.optim.lr": [1e-3]})
    assert [s[0] for s in shapes(over_preset)] == ["small"] and shapes(over_preset)[0][2] == small
    sized = SweepConfig(experiment={"model": {"overrides": {"mlp_hidden": 512}}}, axes={"model": ["mini", "small"]})
    assert [s[:2] for s in shapes(sized)] == [("mini", {"mlp_hidden": 512}), ("small", {"mlp_hidden": 512})]

@pytest.mark.slow
def test_sweep_resumes_and_plan_gives_the_same_report(tmp_path):
    toml = tmp_path / "sweep.toml"
    toml.write_text(SWEEP.format(corpus=_corpus(tmp_path / "corpus")))
    a, b = tmp_path / "a", tmp_path / "b"
    # A slice first (as an interrupted sweep leaves it), then the whole sweep: the slice is not redone.
    assert main(["sweep", "--config", str(toml), "--out", str(a), "--points", "0", "--no-progress"]) == 0
    assert not (a / "results.json").exists()
    sliced = _events(a)
    assert main(["sweep", "--out", str(a), "--no-progress"]) == 0  # 2 jobs: subprocesses
    assert [e for e in _events(a)[:len(sliced)]] == sliced
    point0 = [json.loads(line)["event"] for line in (a / "point-000" / "events.jsonl").read_text().splitlines()]
    assert point0.count("start") == 2 * 2 and point0.count("skip") == 2  # scratch's 2 seeds ran once
    summary = json.loads((a / "results.json").read_text())
    assert summary["shared_scratch"] and summary["missing"] == []
    assert [(r["point"], r["arm"]) for r in summary["rows"]] == [
        (1, "nca 0.1-1"), (1, "nca-shuffled 0.1-1"), (2, "nca 0.1-1"), (2, "nca-shuffled 0.1-1")]
    assert all(r["change_pct"]["n"] == 2 and r["change_pct"]["ci95"] > 0 for r in summary["rows"])
    assert (a / "effect.png").stat().st_size > 0 and "| 1 | 0.001 | nca 0.1-1 | 2 |" in (a / "results.md").read_text()
    assert (a / "point-001" / "results.json").exists()  # each point is an ordinary experiment directory
    started = _events(a).count("start")
    # Per seed, a "start" per arm and per stage: scratch (1 stage) once, 2 arms x 2 stages at each of 2 points.
    assert started == 2 * (2 + 2 * 2 * 3)
    # A rerun redoes nothing.
    assert main(["sweep", "--out", str(a), "--no-progress"]) == 0
    assert _events(a).count("start") == started
    # The plan's commands, two at a time, then --collect: the same report.
    plan = subprocess.run([sys.executable, "-m", "ncalm", "sweep", "--config", str(toml), "--out", str(b), "--plan"],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(NCALM_ROOT)}).stdout
    assert len(plan.splitlines()) == 3
    subprocess.run(["xargs", "-P", "2", "-I{}", "sh", "-c", "{}"], input=plan, text=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(NCALM_ROOT)}, capture_output=True)
    assert not (b / "results.json").exists()  # slices leave the report to --collect
    assert main(["sweep", "--out", str(b), "--collect"]) == 0
    assert _table(b) == _table(a)


def test_a_definition_saved_against_an_older_preset_resumes_when_its_points_are_the_same(tmp_path):
    from ncalm.atomic_json import write_json
    from ncalm.experiment.runner import pin_precision
    from ncalm.experiment.sweep import SWEEP, save_definition

    out = tmp_path / "sweep"
    cfg = SweepConfig.from_dict(SWEEP_PRESETS["sweep-tiny"])
    for p in points(cfg):  # what the points' runs pinned (sweep-tiny ran at 6 colours before and after)
        (out / p.dir_name).mkdir(parents=True)
        write_json(out / p.dir_name / "experiment.json", pin_precision(p.config, out / p.dir_name).to_dict())
    old = cfg.to_dict()
    del old["experiment"]["prepretrain"]["data"]  # the definition before sweep-tiny pinned its colours
    write_json(out / SWEEP, old)
    save_definition(cfg, out)  # same points: accepted, and the definition is brought up to date
    assert SweepConfig.from_dict(json.loads((out / SWEEP).read_text())) == cfg
    write_json(out / SWEEP, old)
    moved = cfg.to_dict()
    moved["experiment"]["prepretrain"]["data"]["nca"]["colors"] = 5  # points unlike the runs: refused
    with pytest.raises(ValueError, match="colors"):
        save_definition(SweepConfig.from_dict(moved), out)


def test_a_rerun_with_other_axis_values_is_refused(tmp_path, capsys):
    # Swapped, edited or removed values were accepted (bands and arms are what an experiment may change on a
    # resume): sweep.json was overwritten and point-NNN kept the old value's runs under the new label.
    from ncalm.atomic_json import write_json
    from ncalm.experiment.runner import pin_precision
    from ncalm.experiment.sweep import SWEEP, load_definition, save_definition

    out = tmp_path / "sweep"
    cfg = SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca"]},
                      axes={"bands": [[[0.22, 1.0]], [[0.3, 1.0]]]})
    save_definition(cfg, out)
    for p in points(cfg):  # what the points' runs pinned
        (out / p.dir_name).mkdir()
        write_json(out / p.dir_name / "experiment.json", pin_precision(p.config, out / p.dir_name).to_dict())
    saved = (out / SWEEP).read_text()
    for bands in ([[[0.3, 1.0]], [[0.22, 1.0]]], [[[0.22, 1.0]], [[0.25, 1.0]]], [[[0.22, 1.0]]]):
        with pytest.raises(ValueError, match=r"^--out .* holds a sweep with other points: point \d: .+? there, "):
            save_definition(SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca"]},
                                        axes={"bands": bands}), out)
        assert (out / SWEEP).read_text() == saved
    assert main(["sweep", "--out", str(out), "--set", "axes={bands=[[[0.3, 1.0]], [[0.22, 1.0]]]}", "--plan"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ncalm sweep: error: --out {out} holds a sweep with other points: point 1: bands=[[0.22, 1.0]] there, "
        f"bands=[[0.3, 1.0]] here; point 2: bands=[[0.3, 1.0]] there, bands=[[0.22, 1.0]] here; "
        f"give the same axes to resume it, or another --out")
    # The same points and one more after them (a value added at the end): resumed, the new one a new folder.
    grown = SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca"]},
                        axes={"bands": [[[0.22, 1.0]], [[0.3, 1.0]], [[0.4, 1.0]]]})
    save_definition(grown, out)
    assert [p.values for p in points(load_definition(out))] == [p.values for p in points(grown)]
    write_json(out / SWEEP, cfg.to_dict())
    # The same points, an arm added: resumed (each point's experiment adds the arm).
    save_definition(SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca", "nca-shuffled"]},
                                axes={"bands": [[[0.22, 1.0]], [[0.3, 1.0]]]}), out)
    # A point folder whose runs had another band than its label (as the old acceptance left them): refused.
    write_json(out / SWEEP, cfg.to_dict())
    first = out / "point-001" / "experiment.json"
    write_json(first, {**json.loads(first.read_text()), "bands": [[0.3, 1.0]]})
    with pytest.raises(ValueError, match="^the sweep in .* was made with other settings"):
        save_definition(SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca", "nca-shuffled"]},
                                    axes={"bands": [[[0.22, 1.0]], [[0.3, 1.0]]]}), out)


def test_a_point_that_cannot_run_is_refused_before_any_point_trains(tmp_path, capsys, monkeypatch):
    # Points 0 and 1 trained before point 2 found no rule in its band (with jobs > 1: "points 2 failed").
    import ncalm.experiment.runner as runner

    ran: list[Path] = []
    monkeypatch.setattr(runner, "run_and_report", lambda cfg, out, echo=print: ran.append(out) or 0.0)
    out = tmp_path / "s"
    args = ["sweep", "--out", str(out), "--set", "experiment.arms=['scratch', 'nca']",
            "--set", "axes={bands=[[[0.22, 1.0]], [[0.6, 1.0]]]}", "--no-progress"]
    for jobs in ("1", "2"):
        assert main(args + ["--jobs", jobs]) == 2
        assert capsys.readouterr().err.strip() == (
            "ncalm sweep: error: bands: [0.6, 1.0]: no rule of this NCA config scores inside (0.6, 1) (65,536 "
            "candidates tried): widen the band; `ncalm show` with the same NCA settings plots this config's "
            "complexity distribution (at the point bands=[[0.6, 1.0]])")
        assert ran == [] and not out.exists()  # nothing trained, and no sweep saved to refuse the fixed one
    assert main(args[:-3] + ["--set", "axes={bands=[[[0.22, 1.0]], [[0.3, 1.0]]]}", "--no-progress"]) == 0
    assert [p.name for p in ran] == ["point-000", "point-001", "point-002"]


def test_the_seeds_column_says_how_many_seeds_the_change_is_paired_over(tmp_path, monkeypatch):
    # The seeds column counted every seed an arm ran, the change only those with a finite scratch to pair with.
    import ncalm.experiment.runner as runner
    from ncalm.experiment.sweep import collect, markdown

    cfg = SweepConfig(preset="tiny", seeds=[0, 1, 2], experiment={"arms": ["scratch", "nca"]},
                      axes={"prepretrain.optim.lr": [1e-3, 3e-3]})
    scratch = {0: 10.0, 1: float("nan")}  # seed 1's scratch diverged, seed 2's has not finished
    runs = {"point-000": [("scratch", s, ppl) for s, ppl in scratch.items()],
            "point-001": [("nca", s, 9.0) for s in (0, 1, 2)], "point-002": [("nca", s, 11.0) for s in (0, 1)]}
    monkeypatch.setattr(runner, "finished_records", lambda d: [
        {"arm": arm, "kind": arm, "band": None, "seed": s, "perplexity": ppl} for arm, s, ppl in runs[d.name]])
    for p in points(cfg):
        (tmp_path / p.dir_name).mkdir()
    summary = collect(cfg, tmp_path)
    assert [(r["point"], r["seeds"], r["paired"], r["change_pct"]["n"]) for r in summary["rows"]] == [
        (1, [0, 1, 2], 1, 1), (2, [0, 1], 1, 1)]
    table = markdown(summary)
    assert "| 1 | 0.001 | nca | 3 (1 paired) | 9.000 | -10.00 (1 seed) |" in table
    assert "| 2 | 0.003 | nca | 2 (1 paired) | 11.000 | +10.00 (1 seed) |" in table
    runs["point-000"] = [("scratch", s, 10.0) for s in (0, 1, 2)]
    assert "| 1 | 0.001 | nca | 3 | 9.000 | -10.00 ± 0.00 |" in markdown(collect(cfg, tmp_path))


def test_failed_points_are_one_line_naming_their_logs(tmp_path, capsys, monkeypatch):
    # The sweep ended in a RuntimeError traceback.
    import sys

    import ncalm.experiment.sweep as sweep

    monkeypatch.setattr(sweep, "point_command", lambda out, index: [sys.executable, "-c", "raise SystemExit(3)"])
    out = tmp_path / "s"
    assert main(["sweep", "--preset", "sweep-tiny", "--out", str(out), "--set", "jobs=2", "--points", "1..2",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ncalm sweep: error: points 1, 2 failed: see {out}/point-NNN.log; rerun to continue them"


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped by its new parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs /proc/PID/task/TID/children (Linux)")
def test_sigterm_stops_the_point_processes_and_a_rerun_may_resume(tmp_path):
    # A SIGTERM killed the sweep alone: its point processes ran on, holding their folders' locks.
    from ncalm.locks import exclusive

    toml = tmp_path / "sweep.toml"
    toml.write_text(SWEEP.format(corpus=_corpus(tmp_path / "corpus")).replace("tokens = 1024", "tokens = 10_000_000"))
    out = tmp_path / "s"
    sweep = subprocess.Popen([sys.executable, "-m", "ncalm", "sweep", "--config", str(toml), "--out", str(out),
                              "--no-progress"], env={**os.environ, "PYTHONPATH": str(NCALM_ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: list[int] = []
    try:  # both points running their experiments (each holds its folder), then the signal
        assert _wait_until(lambda: len(list(out.glob("point-*/.ncalm-lock"))) == 2, 60)
        children = _children(sweep.pid)
        assert len(children) == 2
        sweep.send_signal(signal.SIGTERM)
        _, err = sweep.communicate(timeout=20)
        assert sweep.returncode == 130
        assert err.strip().splitlines()[-1] == ("ncalm sweep: interrupted; stopped points 0, 1; "
                                                "rerun the same command to resume")
        assert _wait_until(lambda: all(map(_gone, children)), 5)
        assert not (out / "results.json").exists()  # nothing reported as finished
        for point in ("point-000", "point-001"):  # a rerun is not refused
            with exclusive(out / point):
                pass
    finally:  # the old behaviour's orphans, and a sweep that hung
        for pid in [sweep.pid, *children]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        sweep.wait()


def test_points_that_ignore_sigterm_are_killed_with_their_workers(tmp_path, monkeypatch, capsys):
    import threading

    import ncalm.experiment.sweep as sweep

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are the main thread's")
    # Each point ignores SIGTERM and starts a worker of its own; both write their pids.
    child = ("import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "w = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
             "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(20)']); "
             "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {w.pid}'); "
             "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(20)")
    monkeypatch.setattr(sweep, "point_command",
                        lambda out, index: [sys.executable, "-c", child, str(tmp_path / f"pids{index}")])
    monkeypatch.setattr(sweep, "STOP_GRACE_S", 0.5, raising=False)
    pids: list[int] = []

    def signal_the_sweep() -> None:
        if _wait_until(lambda: all((tmp_path / f"pids{i}").exists() for i in (1, 2)), 20):
            pids.extend(int(p) for i in (1, 2) for p in (tmp_path / f"pids{i}").read_text().split())
            os.kill(os.getpid(), signal.SIGTERM)

    def unhandled(signum, frame):  # the sweep left SIGTERM alone: fail the test, not the test run
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, unhandled)
    threading.Thread(target=signal_the_sweep, daemon=True).start()
    try:
        t0 = time.monotonic()
        assert main(["sweep", "--preset", "sweep-tiny", "--out", str(tmp_path / "s"), "--set", "jobs=2",
                     "--points", "1..2", "--no-progress"]) == 130
        # SIGKILL is delivered at once, but a worker whose point died first may take a moment to exit.
        assert len(pids) == 4 and _wait_until(lambda: all(map(_gone, pids)), 5) and time.monotonic() - t0 < 15
        assert capsys.readouterr().err.strip() == ("ncalm sweep: interrupted; stopped points 1, 2; "
                                                   "rerun the same command to resume")
    finally:
        signal.signal(signal.SIGTERM, previous)
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


# A sweep in a process of its own whose two points (1 and 2 of sweep-tiny) write their pid and sleep: the
# sweep's handling of its point processes, without training.
SLEEPY_SWEEP = """
import sys
import ncalm.experiment.sweep as sweep
from ncalm.cli import main

point = ("import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
         "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)")
sweep.point_command = lambda out, index: [sys.executable, "-c", point, f"{out}/pid{index}"]
sys.exit(main(["sweep", "--preset", "sweep-tiny", "--out", sys.argv[1], "--set", "jobs=2", "--points", "1..2",
               "--no-progress"]))
"""


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL], ids=["hangup", "killed"])
def test_a_hangup_or_a_killed_sweep_ends_its_points(tmp_path, sig):
    # The points run in sessions of their own (so that Ctrl-C reaches the sweep alone): a hangup killed the
    # sweep by its default action and never reached them, and neither did a SIGKILL (or the OOM killer);
    # they ran on, holding their folders' locks.
    out = tmp_path / "s"
    sweep = subprocess.Popen([sys.executable, "-c", SLEEPY_SWEEP, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(NCALM_ROOT)})
    pids: list[int] = []
    try:
        assert _wait_until(lambda: all((out / f"pid{i}").exists() for i in (1, 2)), 30)
        pids = [int((out / f"pid{i}").read_text()) for i in (1, 2)]
        sweep.send_signal(sig)
        _, err = sweep.communicate(timeout=20)
        assert _wait_until(lambda: all(map(_gone, pids)), 5)
        if sig == signal.SIGHUP:  # stopped as by SIGTERM: no report, one line, the same command resumes
            assert sweep.returncode == 130 and not (out / "results.json").exists()
            assert err.strip().splitlines()[-1] == ("ncalm sweep: interrupted; stopped points 1, 2; "
                                                    "rerun the same command to resume")
    finally:  # the old behaviour's orphans, and a sweep that hung
        for pid in [sweep.pid, *pids]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        sweep.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_point_started_as_the_sweep_dies_does_not_run(monkeypatch):
    # Between the fork and the prctl the sweep may die: the child is then already an orphan, which no
    # parent-death signal will reach, so it must not go on to run the point.
    import ncalm.experiment.sweep as sweep

    probe = [sys.executable, "-c", "import ctypes; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); "
                                   "print(v.value)"]  # PR_GET_PDEATHSIG
    done = subprocess.run(probe, preexec_fn=sweep._dies_with_this_thread(), capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, str(int(signal.SIGTERM)))
    with monkeypatch.context() as m:
        m.setattr(sweep.os, "getpid", lambda: 1 << 30)  # the sweep that started it: gone
        orphaned = sweep._dies_with_this_thread()
    done = subprocess.run(probe, preexec_fn=orphaned, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (128 + signal.SIGTERM, "")


def test_hangups_request_a_stop_once_and_nohup_keeps_them_ignored():
    import threading

    from ncalm.train.interrupt import DeferredInterrupt

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are the main thread's")

    def unhandled(signum, frame):  # a hangup left to its default action would end the test run
        raise AssertionError(f"signal {signum} reached no DeferredInterrupt")

    def send(sig) -> None:
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # the handler runs in this thread between bytecodes

    previous = signal.signal(signal.SIGHUP, unhandled)
    try:
        with DeferredInterrupt(hangup=True) as interrupt:
            send(signal.SIGHUP)
            assert interrupt.requested
            try:
                send(signal.SIGHUP)  # a closing terminal sends two: the second is not a person insisting
            except KeyboardInterrupt:
                pytest.fail("a second hangup stopped at once")
            with pytest.raises(KeyboardInterrupt):
                send(signal.SIGTERM)  # a second SIGTERM is
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as `nohup ncalm sweep ...` starts it
        with DeferredInterrupt(hangup=True) as interrupt:
            send(signal.SIGHUP)
            assert not interrupt.requested and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_sweep_grows_by_points_after_its_own_and_old_definitions_still_load(tmp_path, capsys):
    # A value appended to the first axis was refused as "made with other settings" until a point had run;
    # a sweep.json saved with experiment.name (ncalm band wrote it) could no longer be read, not even by --collect.
    from ncalm.atomic_json import write_json
    from ncalm.experiment.sweep import SWEEP, load_definition, save_definition

    out = tmp_path / "s"

    def cfg(lr, wd):
        return SweepConfig(preset="tiny", experiment={"arms": ["scratch", "nca"]},
                           axes={"prepretrain.optim.lr": lr, "prepretrain.optim.weight_decay": wd})
    save_definition(cfg([1e-3, 3e-3], [0.0, 0.1]), out)
    save_definition(cfg([1e-3, 3e-3, 1e-2], [0.0, 0.1]), out)  # new points after the saved ones
    with pytest.raises(ValueError, match="holds a sweep with other points: point 3"):
        save_definition(cfg([1e-3, 3e-3, 1e-2], [0.0, 0.1, 0.2]), out)  # the last axis varies fastest: moved
    saved = json.loads((out / SWEEP).read_text())
    write_json(out / SWEEP, {**saved, "experiment": {**saved["experiment"], "name": "mine"}})
    assert "name" not in load_definition(out).experiment
    assert main(["sweep", "--out", str(out), "--plan"]) == 0
