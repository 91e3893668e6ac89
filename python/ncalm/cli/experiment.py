"""Run the paper's comparison end to end: for each seed, the arms scratch (no first
stage), NCA pre-pre-training (one arm per complexity band), Dyck and natural text
at one matched first-stage token budget, each followed by the same language stage;
then results.json, results.md (table) and curves.png (validation loss) in --out.
Settings come from --preset, then --config (TOML, same keys), then --set KEY=VALUE
and the flags below. Rerunning into the same --out resumes: finished arms are not
redone, an interrupted stage continues from its checkpoint, and the report covers
every finished run in --out, including arms and seeds this invocation leaves out."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _preset_default(key: str, show) -> str:
    """'default: the preset's, ...' for a help text: what --preset sets ``key`` to, else the built-in default."""
    from dataclasses import MISSING, fields

    from ncalm.experiment.config import ExperimentConfig
    from ncalm.experiment.presets import PRESETS

    f = next(f for f in fields(ExperimentConfig) if f.name == key)
    builtin = f.default_factory() if f.default is MISSING else f.default
    values = {name: show(preset.get(key, builtin)) for name, preset in PRESETS.items()}
    if len(set(values.values())) == 1:
        return f"default: the preset's; {next(iter(values.values()))} in every preset"
    return "default: the preset's; " + "; ".join(f"{name}: {value}" for name, value in values.items())


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ncalm.experiment.presets import PRESETS

    def words(values) -> str:
        return " ".join(str(v) for v in values)

    p.add_argument("--preset", default="tiny", choices=list(PRESETS), help="base settings")
    p.add_argument("--config", default=None,
                   help="TOML file overriding the preset (keys as in experiment.json; default: none)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set language.tokens=2M (repeatable; default: none)")
    p.add_argument("--out", default=None, help="output directory (default: runs/experiment-PRESET)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help=f"seeds to run ({_preset_default('seeds', words)})")
    p.add_argument("--arms", nargs="+", default=None,
                   help=f"arms to run, of scratch nca dyck text ({_preset_default('arms', words)})")
    p.add_argument("--bands", nargs="+", default=None, metavar="LOWER,UPPER",
                   help="one NCA arm per band ("
                        + _preset_default("bands", lambda bands: words(f"{lo:g},{hi:g}" for lo, hi in bands)) + ")")
    p.add_argument("--device", default=None,
                   help=f"auto | cpu | cuda | cuda:N; auto = the GPU if CUDA is usable, else the CPU "
                        f"({_preset_default('device', str)})")
    p.add_argument("--precision", default=None, choices=["auto", "bf16", "fp32"],
                   help="auto = bf16 autocast on CUDA, fp32 on CPU, resolved when the experiment starts and "
                        f"kept for all its arms and resumes ({_preset_default('precision', str)})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (" + _preset_default(
                       "threads", lambda n: "torch's default" if n is None else str(n)) + ")")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and stop")


def resolve(args: argparse.Namespace):
    """The ExperimentConfig that the preset, file, --set and flags describe."""
    from ncalm.experiment.config import ExperimentConfig, load_toml, merge, parse_assignment
    from ncalm.experiment.presets import preset

    d = preset(args.preset)
    if args.config:
        d = merge(d, load_toml(args.config))
    for text in args.assignments:
        d = merge(d, parse_assignment(text))
    flags = {"seeds": args.seeds, "arms": args.arms, "device": args.device, "precision": args.precision,
             "threads": args.threads}
    d = merge(d, {k: v for k, v in flags.items() if v is not None})
    if args.bands:
        try:
            d["bands"] = [[float(x) for x in b.split(",")] for b in args.bands]
        except ValueError:
            raise ValueError(f"--bands expects LOWER,UPPER pairs, got {args.bands}") from None
    if args.no_progress:
        d["progress"] = False
    return ExperimentConfig.from_dict(d)


def run(args: argparse.Namespace) -> int:
    from ncalm.experiment import run_experiment, write_report
    from ncalm.experiment.runner import check_runnable, finished_records, pin_precision

    out = Path(args.out or f"runs/experiment-{args.preset}")
    cfg = resolve(args)
    if args.dry_run:
        check_runnable(cfg)
        cfg = pin_precision(cfg, out)  # what a run into --out would use
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    t0 = time.perf_counter()
    run_experiment(cfg, out)
    cfg = pin_precision(cfg, out)  # as run_experiment recorded it
    wall = time.perf_counter() - t0
    # Every finished run in --out, not only this invocation's --seeds and --arms.
    write_report(finished_records(out), out, cfg.to_dict(), wall_seconds=wall)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'curves.png'} ({wall:.0f} s this invocation)")
    return 0
