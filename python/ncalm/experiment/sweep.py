"""Sweeps: one experiment per point of a grid (or list) over dotted keys of ExperimentConfig.

Layout of a sweep's output directory::

    sweep.json                      the sweep's definition (a rerun must match it)
    point-000/ ...                  one ordinary experiment directory per point (resumable)
    results.json, results.md        the effect of every point's arms against scratch, as markdown()'s note defines it
    effect.png                      that effect against each swept key

Each point is an experiment: the base preset, then ``experiment`` (settings of
every point), then the point's values of the ``axes``, with the sweep's seeds.
Where every point's language stage is the same run (the axes change only the
first stage), scratch does not depend on the point: it runs once, as point 0
(arms = scratch only), and the other points leave it out. Points can run
anywhere and in any order (``--plan`` prints one command each); collecting
reads what has finished.
"""
from __future__ import annotations

import ctypes
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ncalm.atomic_json import read_json, write_json, write_text
from ncalm.eval.reasoning.sandbox_launcher import PR_SET_PDEATHSIG  # defined there: the launcher is stdlib-only
from ncalm.experiment.arms import arms_of, language_stage
from ncalm.experiment.config import SCRATCH, ExperimentConfig, _seeds
from ncalm.experiment.presets import PRESETS, preset
from ncalm.settings import (Settings, SettingError, at_least, canonical, check_same, differences, leaves, merge,
                            nested, setting)
from ncalm.train.interrupt import DeferredInterrupt

SWEEP = "sweep.json"
# Seconds a stopped point has to exit (its trainer finishes the step and writes a checkpoint) before it is
# killed; killed, it continues from its last checkpoint (every file is written whole or not at all).
STOP_GRACE_S = 10.0

# Chosen before any transfer result was seen. The bands of sweep-tiny split the 6-colour NCA's
# complexity range (rules score up to ~0.55 at 6 colours, median ~0.33: `ncalm show`) into
# low / middle / high thirds of the accepted mass (so it keeps 6 colours, which the tiny preset
# left for 4 after this sweep ran); its budgets are half the tiny preset's so
# that 3 bands x 2 arms x 2 seeds and the shared scratch fit in 20 minutes on 2 cores.
SWEEP_PRESETS: dict[str, dict] = {
    "sweep-tiny": {
        "name": "sweep-tiny", "preset": "tiny", "seeds": [0, 1], "jobs": 2,
        "experiment": {"arms": ["scratch", "nca", "nca-shuffled"],
                       "prepretrain": {"data": {"nca": {"colors": 6}}, "run": {"tokens": 150_000}},
                       "language": {"run": {"tokens": 300_000}}},
        "axes": {"bands": [[[0.1, 0.3]], [[0.3, 0.45]], [[0.45, 1.0]]]},
    },
    # Sized for about 10 minutes on one H100 (not measured there yet): scratch, NCA and its two
    # controls at two model sizes, 2 seeds, half the gpu-small preset's budgets.
    "sweep-gpu-small": {
        "name": "sweep-gpu-small", "preset": "gpu-small", "seeds": [0, 1],
        "experiment": {"arms": ["scratch", "nca", "nca-shuffled", "random-unigram"],
                       "prepretrain": {"run": {"tokens": 5_000_000}}, "language": {"run": {"tokens": 10_000_000}}},
        "axes": {"model.size": ["mini", "small"]},
    },
}


def _axes(axes: dict) -> str | None:
    for key, values in leaves(axes).items():
        if not isinstance(values, list) or not values:
            return f"{key}: must be a non-empty list of values"  # (the setting's check adds what it got)
    return None


# What the sweep sets in every point, so the points' own value would be ignored without a word: why, for the
# refusal.
OWN = {"seeds": "every point runs every seed: seeds = [...] at the sweep's top level",
       "name": "each point is named by the sweep's name and its values: name = \"...\" at the sweep's top level"}


@dataclass
class SweepConfig(Settings):
    """A sweep: the experiment of every point, the axes, the seeds and how many points run at once."""

    name: str = setting("sweep", "the sweep's name, shown in its report")
    preset: str = setting("tiny", "the experiment preset every point starts from", choices=tuple(PRESETS))
    experiment: dict = setting({}, "experiment settings of every point, over the preset (as in an experiment "
                                   "TOML), e.g. {arms = [\"scratch\", \"nca\", \"nca-shuffled\"]}",
                               tree=ExperimentConfig)
    axes: dict = setting({}, "dotted experiment key -> its values, e.g. {\"prepretrain.optim.lr\" = [1e-4, 1e-3]}",
                         check=_axes)
    grid: bool = setting(True, "every combination of the axes' values; false: a list, the i-th value of every "
                               "axis together (axes of one length)")
    seeds: list[int] = setting([0, 1], "seeds of every point (data and model initialisation)", check=_seeds,
                               one_item=False)
    jobs: int = setting(1, "points run at a time, each in its own process, on the CPU; on a GPU one at a time",
                        check=at_least(1), flags=("--jobs",))

    # What may change between invocations: how the same points are run, and more seeds (as in an experiment).
    # Axes may grow: save_definition compares the points they give.
    MAY_CHANGE = ("jobs", "name", "seeds")

    def validate(self) -> None:
        self.axes = leaves(self.axes)  # {"prepretrain": {"optim": {"lr": [..]}}} as "prepretrain.optim.lr"
        self.experiment = canonical(ExperimentConfig, self.experiment, "experiment")  # as from_dict leaves it
        if not self.axes:
            raise SettingError("axes", "a sweep needs at least one axis, e.g. axes = {\"prepretrain.optim.lr\" = "
                                       "[1e-4, 1e-3]}")
        for key, why in OWN.items():
            for where, given in (("axes", self.axes), ("experiment", self.experiment)):
                if key in given:
                    raise SettingError(f"{where}.{key}", f"{key} is the sweep's own setting ({why})")
        if not self.grid and len({len(v) for v in self.axes.values()}) > 1:
            raise SettingError("axes", "with grid = false every axis lists one value per point (same lengths)")
        arms = merge(preset(self.preset), self.experiment).get("arms", [SCRATCH])
        if SCRATCH not in arms:
            raise SettingError("experiment.arms", "a sweep measures each arm against scratch: keep scratch in arms")
        points(self)  # every point is an experiment that checks


@dataclass(frozen=True)
class Point:
    index: int
    values: dict               # swept key -> value ({} for the shared scratch point)
    config: ExperimentConfig

    @property
    def dir_name(self) -> str:
        return f"point-{self.index:03d}"


def _experiment(cfg: SweepConfig, values: dict, name: str) -> ExperimentConfig:
    """The preset, the sweep's experiment settings, then the point's values, layered as `ncalm experiment`
    layers --preset, --config and --set: each put in the tree's layout first, so that a shorthand
    (model = "small") is a table that a later layer's key (model.overrides) changes instead of replacing."""
    try:
        d: dict = {}
        for layer in (preset(cfg.preset), cfg.experiment, *(nested(k, v) for k, v in values.items())):
            d = merge(d, canonical(ExperimentConfig, layer))
        return ExperimentConfig.from_dict({**d, "seeds": cfg.seeds, "name": name})
    except SettingError as exc:
        raise SettingError(exc.key, f"{exc.message} (at the point {_where(values)})") from None


def _where(values: dict) -> str:
    """A point's swept values, as its errors name it: ``bands=[[0.22, 1.0]], model.size="mini"``."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "scratch"


def _language(cfg: ExperimentConfig) -> list:
    """What scratch computes: the language stage of every seed (and the final bits-per-byte pass)."""
    nowhere = Path("unused")
    return [cfg.bpb_bytes, cfg.precision] + [language_stage(cfg, s, nowhere, None).to_dict() for s in cfg.seeds]


def points(cfg: SweepConfig) -> list[Point]:
    """The sweep's points, in order; point 0 is the shared scratch where scratch is the same everywhere."""
    rows = itertools.product(*cfg.axes.values()) if cfg.grid else zip(*cfg.axes.values())
    values = [dict(zip(cfg.axes, row)) for row in rows]
    grid = [_experiment(cfg, v, f"{cfg.name} {json.dumps(v)}") for v in values]
    shared = all(_language(c) == _language(grid[0]) for c in grid[1:]) and len(grid) > 1
    out = []
    if shared:
        out.append(Point(0, {}, grid[0].replace(arms=[SCRATCH], ablations=[], name=f"{cfg.name} scratch")))
        for v, c in zip(values, grid):
            if c.arms == [SCRATCH]:  # left with no arm at all
                raise SettingError("arms", f"only scratch, which every point runs anyway (once, as point 0): give "
                                           f"the point an arm to compare with it (at the point {_where(v)})")
        grid = [c.replace(arms=[a for a in c.arms if a != SCRATCH]) for c in grid]
    out += [Point(i, v, c) for i, (v, c) in enumerate(zip(values, grid), start=len(out))]
    return out


def parse_points(text: str, n: int) -> list[int]:
    """'3', '2..5' (inclusive) or '0,4,7' -> point indices, each checked against the ``n`` points."""
    chosen: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("..")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"--points: expected I, I..J or a comma list, got {text!r}") from None
        if not 0 <= a <= b < n:
            raise ValueError(f"--points {text}: the sweep has points 0..{n - 1}")
        chosen += range(a, b + 1)
    return list(dict.fromkeys(chosen))


def save_definition(cfg: SweepConfig, out: Path) -> None:
    """Write sweep.json, or check that the one in ``out`` describes the same points."""
    if (out / SWEEP).exists():
        # The saved points first, with their swept values in their order, or point-NNN would hold another
        # point's runs under these labels; points after them (a value added at the end) are new folders.
        saved = load_definition(out)
        there, here = ([p.values for p in points(c)] for c in (saved, cfg))
        if here[:len(there)] != there:
            shown = [_where(v) for v in here] + ["(none)"] * len(there)  # a point saved there may be gone here
            moved = [f"point {i}: {_where(v)} there, {shown[i]} here"
                     for i, v in enumerate(there) if _where(v) != shown[i]]
            raise ValueError(f"--out {out} holds a sweep with other points: {'; '.join(moved)}; "
                             f"give the same axes to resume it, or another --out")
        try:
            check_same(saved.to_dict(), cfg.to_dict(), (*SweepConfig.MAY_CHANGE, "axes"), f"the sweep in {out}")
        except ValueError:
            if not _same_points(cfg, out):
                raise
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SWEEP, cfg.to_dict())


def _same_points(cfg: SweepConfig, out: Path) -> bool:
    """Whether the points already run in ``out`` are ``cfg``'s, setting for setting: a definition saved against
    an earlier version of its preset (sweep-tiny before it pinned 6 colours) still describes them."""
    from ncalm.experiment.config import RESUMABLE_CHANGES
    from ncalm.experiment.runner import pin_precision, saved_experiment

    ran = [(p, saved_experiment(out / p.dir_name, p.config.device)) for p in points(cfg)]
    ran = [(p, saved) for p, saved in ran if saved is not None]
    # What an experiment may change on a resume, except what the sweep sweeps (bands, arms): a point's runs
    # under another value of its own axis are another point's.
    ignore = tuple(k for k in RESUMABLE_CHANGES if k not in cfg.axes)
    return bool(ran) and not any(differences(saved, pin_precision(p.config, out / p.dir_name).to_dict(),
                                             ignore=ignore) for p, saved in ran)


def load_definition(out: Path) -> SweepConfig:
    path = out / SWEEP
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sweep here; give --preset or --config to start one")
    d = read_json(path, what="definition of `ncalm sweep`")
    # Saved before OWN was refused (ncalm band wrote the experiment's name): they were ignored then, too.
    if isinstance(d, dict) and isinstance(d.get("experiment"), dict):
        d["experiment"] = {k: v for k, v in d["experiment"].items() if k not in OWN}
    return SweepConfig.from_dict(d)


def point_command(out: Path, index: int) -> list[str]:
    """The command that runs one point (what --plan prints, and what --jobs starts)."""
    return [sys.executable, "-m", "ncalm", "sweep", "--out", str(out), "--points", str(index), "--no-progress"]


def uses_gpu(pts: list) -> bool:
    """Whether any of the points trains on CUDA; a device not on this machine is a SettingError naming
    experiment.device."""
    from ncalm.devices import torch_device

    return any(torch_device(p.config.device, key="experiment.device").type == "cuda" for p in pts)


def check_points(pts: list[Point]) -> None:
    """What `ncalm experiment` checks before it writes anything (runner.check_runnable), for every point: a
    point that cannot run (a band with no rule) is refused before the points before it train."""
    from ncalm.experiment.runner import check_runnable

    for p in pts:
        try:
            check_runnable(p.config)
        except SettingError as exc:
            raise SettingError(exc.key, f"{exc.message} (at the point {_where(p.values)})") from None
        except (ValueError, FileNotFoundError) as exc:
            raise type(exc)(f"{exc} (at the point {_where(p.values)})") from None


def run_sweep(cfg: SweepConfig, out: Path, indices: list[int] | None = None, echo=print,
              progress: bool = True) -> None:
    """Run (or resume) the chosen points: in this process, or ``cfg.jobs`` child processes at a time
    on the CPU (each its own experiment directory, so they share nothing but the machine)."""
    from ncalm.experiment.runner import run_and_report

    pts = points(cfg)
    chosen = [pts[i] for i in (range(len(pts)) if indices is None else indices)]
    gpu = uses_gpu(chosen)
    jobs = 1 if gpu else min(cfg.jobs, len(chosen))
    if gpu and cfg.jobs > 1:
        echo(f"jobs={cfg.jobs}: on a GPU the points run one after another")
    if jobs == 1:
        for k, p in enumerate(chosen):
            echo(f"point {p.index} ({k + 1}/{len(chosen)}): {json.dumps(p.values) if p.values else 'scratch'}")
            # Each point is an ordinary experiment directory with its own report.
            config = p.config if progress else p.config.replace(progress=False)
            run_and_report(config, out / p.dir_name, echo=lambda line: echo(f"[point {p.index}] {line}"))
        return
    # Children import the same ncalm as this process (installed, or a source tree on PYTHONPATH).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    dies_with_us = _dies_with_this_thread()
    waiting, failed = list(chosen), []
    running: dict[int, tuple[Point, subprocess.Popen, float]] = {}  # index -> point, process, start
    # SIGTERM, Ctrl-C or a hangup (terminal or ssh closed): stop the children (their trainers checkpoint at
    # the end of the step), not leave them running with their folders locked; a second SIGTERM or Ctrl-C
    # kills them at once. Started in sessions of their own, they never see the terminal's signals themselves.
    with DeferredInterrupt(hangup=True) as interrupt:
        try:
            while (waiting or running) and not interrupt.requested:
                while waiting and len(running) < jobs:
                    p = waiting.pop(0)
                    # Its own session: the terminal's Ctrl-C reaches this process alone, which stops each
                    # child with one signal (a second would cut its trainer's checkpoint short), and the
                    # signals reach the child's own workers too. Started from this thread, which waits for
                    # it: the parent-death signal fires when the forking thread ends, and this one ends
                    # only once the finally below has stopped every child.
                    with open(out / f"{p.dir_name}.log", "a") as log:  # only the child writes it, to its own copy
                        echo(f"point {p.index}: started (log {log.name})")
                        running[p.index] = (p, subprocess.Popen(point_command(out, p.index), stdout=log,
                                                                stderr=subprocess.STDOUT, env=env,
                                                                start_new_session=True, preexec_fn=dies_with_us),
                                            time.perf_counter())
                for index, (p, proc, t0) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[index]
                    if proc.returncode:
                        failed.append(p.index)
                    outcome = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                    echo(f"point {p.index}: {outcome} after {time.perf_counter() - t0:.0f} s; "
                         f"{len(waiting) + len(running)} to go")
                time.sleep(0.2)
        finally:  # also on a second signal, or an error here: no child outlives the sweep
            _stop([proc for _, proc, _ in running.values()])
    if interrupt.requested:  # no report: the points stopped are not finished
        stopped = ", ".join(str(i) for i, (_, proc, _) in sorted(running.items()) if proc.returncode)
        raise KeyboardInterrupt((f"stopped points {stopped}; " if stopped else "") + "rerun the same command to resume")
    if failed:  # an OSError: the command says it in one line, as other failures of the outside world
        raise ChildProcessError(f"points {', '.join(map(str, sorted(failed)))} failed: see {out}/point-NNN.log; "
                                f"rerun to continue them")


def _dies_with_this_thread() -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets SIGTERM (its trainer checkpoints at the end of the step) when the
    thread that starts it ends, also when the sweep is killed by SIGKILL or the OOM killer, where no handler
    of the sweep runs to stop it. None without Linux's prctl."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # The sweep's SIGTERM handler is inherited until the exec: a parent-death signal caught by it before
        # the exec would be lost. The default ends the child instead.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the sweep died between the fork and the prctl: no signal will come
            os._exit(128 + signal.SIGTERM)

    return preexec


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with suppress(ProcessLookupError):  # the point and its workers have all exited already
        os.killpg(proc.pid, sig)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each point's process group, up to STOP_GRACE_S for them to exit, then SIGKILL."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    with suppress(subprocess.TimeoutExpired, KeyboardInterrupt):  # KeyboardInterrupt: a second signal
        for proc in procs:
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)  # the group: also workers whose point has exited
        proc.wait()


# --- the report ----------------------------------------------------------------------------------

def _label(record: dict, swept_bands: bool) -> str:
    """An arm's name across points: without its band where the band is what the points change."""
    if not swept_bands or record["band"] is None:
        return record["arm"]
    return " ".join(x for x in (record["kind"], record.get("ablation")) if x)


def collect(cfg: SweepConfig, out: Path) -> dict:
    """Every finished run of every point, paired by seed with its scratch: the sweep's summary."""
    from ncalm.eval.stats import mean_interval
    from ncalm.experiment.report import finite
    from ncalm.experiment.runner import finished_records

    pts = points(cfg)
    shared = pts[0].values == {}
    records = {p.index: finished_records(out / p.dir_name) if (out / p.dir_name).exists() else [] for p in pts}
    rows, missing = [], []
    for p in pts:
        expected = len(cfg.seeds) * len(arms_of(p.config))
        if len({(r["arm"], r["seed"]) for r in records[p.index]}) < expected:
            missing.append(p.index)
        if shared and p.index == 0:
            continue
        arms: dict[str, list[dict]] = {}
        for r in records[p.index]:
            arms.setdefault(r["arm"], []).append(r)
        for arm, runs in arms.items():
            ppl = [r["perplexity"] for r in runs if finite(r["perplexity"])]
            row = {"point": p.index, "values": p.values, "arm": arm, "label": _label(runs[0], "bands" in cfg.axes),
                   "seeds": [r["seed"] for r in runs], "perplexity": sum(ppl) / len(ppl) if ppl else None}
            if runs[0]["kind"] != SCRATCH:  # paired by seed with its point's scratch, or the shared one
                base = {r["seed"]: r for r in records[0 if shared else p.index] if r["kind"] == SCRATCH}
                change = [100 * (r["perplexity"] / base[r["seed"]]["perplexity"] - 1) for r in runs
                          if r["seed"] in base and finite(r["perplexity"], base[r["seed"]]["perplexity"])]
                row["paired"] = len(change)  # the seeds the change is over (the seeds column says if fewer)
                if change:
                    ci = mean_interval(change)
                    half = None if ci["high"] is None else ci["high"] - ci["mean"]
                    row["change_pct"] = {"mean": ci["mean"], "ci95": half, "n": len(change), "values": change}
            rows.append(row)
    return {"name": cfg.name, "axes": cfg.axes, "seeds": cfg.seeds, "shared_scratch": shared,
            "points": [{"index": p.index, "dir": p.dir_name, "values": p.values, "arms": p.config.arms}
                       for p in pts], "missing": missing, "rows": rows}


def markdown(summary: dict) -> str:
    from ncalm.experiment.report import seeds_cell

    keys = list(summary["axes"])
    head = "| point | " + " | ".join(keys) + " | arm | seeds | perplexity | change vs scratch (%) |"
    lines = [f"# {summary['name']}", "", head, "|" + "---|" * (len(keys) + 5)]
    for r in summary["rows"]:
        c = r.get("change_pct")
        change = "-" if c is None else f"{c['mean']:+.2f}" + (f" ± {c['ci95']:.2f}" if c["ci95"] is not None else
                                                              " (1 seed)")
        ppl = "-" if r["perplexity"] is None else f"{r['perplexity']:.3f}"
        vals = " | ".join(json.dumps(r["values"].get(k)) for k in keys)
        seeds = seeds_cell(len(r["seeds"]), r.get("paired", len(r["seeds"])))
        lines.append(f"| {r['point']} | {vals} | {r['arm']} | {seeds} | {ppl} | {change} |")
    notes = ["", "Change vs scratch: 100 x (perplexity / scratch's perplexity - 1) of the language stage's final "
             "validation loss, paired by seed; mean ± the 95% t-interval half width over the paired seeds "
             "(negative: better than scratch); seeds: N (M paired) where only M have a scratch run to pair with. "
             "Perplexity: mean over seeds. The loss is the trainer's, on its validation windows "
             "(data.val_sequences); each point's own results.md reports the bits-per-byte pass over held-out text "
             "instead, so its figures differ from these."]
    if summary["shared_scratch"]:
        notes.append("Scratch is the same run at every point (the axes change only the first stage): point 0.")
    if summary["missing"]:
        notes.append(f"Not finished (yet): points {', '.join(map(str, summary['missing']))}.")
    return "\n".join(lines + notes) + "\n"


def plot_effects(summary: dict, path: Path) -> Path:
    """One panel per swept key: the change vs scratch (95% interval) against the key's values."""
    from ncalm.figures import pyplot, save_figure

    plt = pyplot()
    keys = list(summary["axes"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    rows = [r for r in summary["rows"] if "change_pct" in r]
    for ax, key in zip(axes[0], keys):
        values = summary["axes"][key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        xs = {json.dumps(v): (v if numeric else i) for i, v in enumerate(values)}
        lines: dict[str, list] = {}
        for r in rows:  # one line per arm and values of the other keys
            others = ", ".join(f"{k}={json.dumps(v)}" for k, v in r["values"].items() if k != key)
            lines.setdefault(r["label"] + (f" ({others})" if others else ""), []).append(r)
        for n, (label, rs) in enumerate(lines.items()):
            rs = sorted(rs, key=lambda r: xs[json.dumps(r["values"][key])])
            dodge = 0.0 if numeric else 0.06 * (n - (len(lines) - 1) / 2)  # side by side, not on top
            x = [xs[json.dumps(r["values"][key])] + dodge for r in rs]
            y = [r["change_pct"]["mean"] for r in rs]
            err = [r["change_pct"]["ci95"] or 0.0 for r in rs]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        if numeric and min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [json.dumps(v) for v in values])
        ax.set_xlabel(key)
        ax.set_ylabel("perplexity change vs scratch (%)")
        if lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"{summary['name']}: mean over seeds, 95% t-intervals\n(below 0: better than scratch)",
                 fontsize=10)
    return save_figure(fig, path)


def write_sweep_report(cfg: SweepConfig, out: Path) -> dict:
    """results.json, results.md and effect.png in ``out``; returns the summary."""
    summary = collect(cfg, out)
    write_text(out / "results.md", markdown(summary))
    write_json(out / "results.json", summary)
    plot_effects(summary, out / "effect.png")
    return summary
