"""Render NCA trajectories (PNG strip, animated GIF) and the complexity histogram.

Shows --rules rules that pass the complexity band, each from a fresh initial
grid, for --frames frames (after burn-in), one row per rule (trajectories.png,
trajectories.gif), a histogram of the gzip scores of --candidates freshly
sampled candidate rules with the band marked (complexity.png), and rules the
band rejects (rejected.png), so you can see what the band selects before
paying for training.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ncalm.cli.options import add_nca_arguments, nca_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    # No --seq-len: the pictures are --frames frames long, whatever a training sequence holds.
    add_nca_arguments(p, skip=("nca.seq_len",))
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--rules", type=int, default=8, help="rules to draw (one row each)")
    p.add_argument("--frames", type=int, default=20, help="frames per rule")
    p.add_argument("--candidates", type=int, default=2000, help="candidate rules scored for the histogram")
    p.add_argument("--scale", type=int, default=8, help="pixels per cell")
    p.add_argument("--threads", type=int, default=0, help="generator threads (0 = all cores)")
    p.add_argument("--out", default="show", help="output directory")


def _positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")


def run(args: argparse.Namespace) -> int:
    from ncalm import find_rules, rollout, score_rules
    from ncalm.nca.cpu import in_band
    from ncalm.nca.pictures import accepted_fraction, save_complexity_histogram, save_gif, save_strip

    _positive(rules=args.rules, frames=args.frames, candidates=args.candidates, scale=args.scale)
    cfg = nca_config(args)
    out = Path(args.out)
    threads = args.threads or None

    # The histogram comes first: when the band selects nothing it is the plot that shows why.
    # Attempt 0 of each candidate stream is an unfiltered random rule: the band's input distribution.
    ratios = score_rules(cfg, args.seed, np.arange(args.candidates, dtype=np.uint64), threads=threads)
    hist = save_complexity_histogram(ratios, cfg.band, out / "complexity.png")

    ids = np.arange(args.rules, dtype=np.uint64)
    try:
        rule_ids, _ = find_rules(cfg, args.seed, ids, threads=threads)
    except ValueError as exc:
        if cfg.band is None:
            raise
        raise ValueError(f"--band {cfg.band[0]:g},{cfg.band[1]:g}: {exc}; "
                         f"{hist} shows the scores of {args.candidates} candidates") from None
    grids = rollout(cfg, args.seed, rule_ids, ids, args.frames, threads=threads)
    strip = save_strip(grids, out / "trajectories.png", cfg.colors, args.scale)
    gif = save_gif(grids, out / "trajectories.gif", cfg.colors, args.scale)
    rejected_path = None
    if cfg.band is not None:
        # The rules the band throws away, drawn the same way, for comparison.
        rejected = np.flatnonzero(~in_band(ratios, cfg.band))[: args.rules].astype(np.uint64)
        if rejected.size:
            sims = np.arange(rejected.size, dtype=np.uint64)
            rejected_path = save_strip(rollout(cfg, args.seed, rejected, sims, args.frames, threads=threads),
                                       out / "rejected.png", cfg.colors, args.scale)
    stale = out / "rejected.png"
    if rejected_path is None and stale.exists():
        stale.unlink()  # an earlier run's picture, of another band or config, must not pass for this one's
        print(f"removed {stale} of an earlier run: this run rejects no rule to draw")

    print(f"{args.rules} rules x {args.frames} frames ({cfg.grid}x{cfg.grid}, {cfg.colors} colours): {strip}, {gif}")
    print(f"complexity of {args.candidates} candidate rules: median {np.median(ratios):.3f}, "
          f"range [{ratios.min():.3f}, {ratios.max():.3f}]: {hist}")
    if cfg.band is not None:
        print(f"accepted by band ({cfg.band[0]:g}, {cfg.band[1]:g}): "
              f"{accepted_fraction(ratios, cfg.band):.1%} of candidates"
              + (f"; rejected rules: {rejected_path}" if rejected_path else ""))
    return 0
