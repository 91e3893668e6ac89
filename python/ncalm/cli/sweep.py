"""Run a sweep: one `ncalm experiment` per point of a grid (or list) over dotted keys of the experiment's
settings, with seeds, then a report of each arm's effect against scratch at every point: results.md
(table), results.json and effect.png (perplexity change vs scratch with 95% t-intervals over seeds,
against each swept key) in --out.

A sweep is declared by --preset (sweep-tiny, sweep-gpu-small, ...), --config (TOML with the keys name,
preset, experiment, axes, grid, seeds, jobs) and --set, e.g.

  ncalm sweep --preset sweep-tiny
  ncalm sweep --out runs/lr --set 'axes={"prepretrain.optim.lr"=[3e-4,1e-3,3e-3]}' --set seeds=[0,1,2]

Each point is an ordinary experiment directory (--out/point-NNN), so a rerun resumes: finished points
and arms are not redone. Points can run elsewhere: --plan prints one command per point (for a job
array, or `ncalm sweep --plan --out D | xargs -P 2 -I{} sh -c {}`), --points I..J runs a slice, and
--collect writes the report from whatever has finished. Once started, --out alone names the sweep."""
from __future__ import annotations

import argparse
import shlex

from ncalm.cli.options import add_tree_arguments, tree_config
from ncalm.experiment.sweep import (SWEEP, SWEEP_PRESETS, SweepConfig, check_points, load_definition, parse_points,
                                    point_command, points, run_sweep, save_definition, uses_gpu, write_sweep_report)
from ncalm.settings import add_flags, output_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, choices=list(SWEEP_PRESETS),
                   help="base sweep (default: none; the one saved in --out, when it holds a sweep)")
    add_tree_arguments(p, SweepConfig, "sweep", "seeds=[0,1,2]")
    p.add_argument("--out", default=None, help="output directory (default: runs/PRESET)")
    p.add_argument("--plan", action="store_true", help="save the sweep, print one command per point and stop")
    p.add_argument("--points", default=None, metavar="I..J",
                   help="run only these points (I, I..J inclusive, or I,J,K); no report (run --collect after)")
    p.add_argument("--collect", action="store_true", help="only write the report of what has finished")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (default: shown)")
    add_flags(p, SweepConfig, SweepConfig(axes={"bands": [[[0.5, 1.0]]]}), only=("jobs",))


def run(args: argparse.Namespace) -> int:
    # The sweep that --preset/--config/--set describe (saved into --out), else the one --out holds:
    # layered over the preset, else over the sweep --out holds (a change to it is refused by name).
    out = output_folder("--out", args.out or f"runs/{args.preset or 'sweep'}")  # every path below writes in it
    base = (SWEEP_PRESETS[args.preset] if args.preset
            else load_definition(out).to_dict() if (out / SWEEP).exists() else {})
    if not (args.preset or args.config or args.assignments or base):
        load_definition(out)  # no sweep given or saved: says how to start one
    cfg = tree_config(SweepConfig, args, base)
    pts = points(cfg)
    chosen = parse_points(args.points, len(pts)) if args.points else None
    if not (args.plan or args.collect):  # (a plan may be for another machine)
        # Refused before the sweep is saved into --out (which would then refuse other points) and before any
        # point trains: a device not on this machine, or a point that cannot run.
        uses_gpu(pts)
        check_points(pts if chosen is None else [pts[i] for i in chosen])
    if args.preset or args.config or args.assignments:
        save_definition(cfg, out)
    if args.plan:
        for p in pts:
            print(shlex.join(point_command(out, p.index)))
        return 0
    if not args.collect:
        run_sweep(cfg, out, chosen, progress=args.progress)
        if chosen is not None:
            return 0  # slices may run side by side: the report is --collect's
    write_sweep_report(cfg, out)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'effect.png'}")
    return 0
