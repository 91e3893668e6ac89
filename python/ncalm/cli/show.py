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
from dataclasses import dataclass

import numpy as np

from ncalm.cli.generate import GenerateConfig
from ncalm.cli.options import add_tree, tree_config
from ncalm.memory import check_fits
from ncalm.nca.config import NCAConfig, check_seed
from ncalm.nca.cpu import find_rules, in_band, rollout, score_rules, workspace_bytes
from ncalm.nca.pictures import SCALE, accepted_fraction, save_complexity_histogram, save_gif, save_strip, strip_bytes
from ncalm.settings import Settings, at_least, folder, output_folder, same_as, setting


@dataclass
class ShowConfig(Settings):
    """What `ncalm show` draws. nca.seq_len plays no part: the pictures are `frames` frames long."""

    DASHED = True  # options --rules, --frames, ... named after the fields

    seed: int = setting(0, "generator seed", check=check_seed)
    rules: int = setting(8, "rules to draw (one row each)", check=at_least(1))
    frames: int = setting(20, "frames per rule", check=at_least(1))
    candidates: int = setting(2000, "candidate rules scored for the histogram", check=at_least(1))
    scale: int = setting(SCALE, "pixels per cell", check=at_least(1))
    threads: int = same_as(GenerateConfig, "threads", help="generator threads (0 = all cores)")
    out: str = setting("show", "output directory", check=folder)
    nca: NCAConfig = same_as(GenerateConfig, "nca")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_tree(p, ShowConfig, ShowConfig(), "show", "nca.colors=6", skip=("nca.seq_len",), groups=True)


def _check_memory(opts: ShowConfig) -> None:
    """Refuse before any work a drawing that cannot fit, naming the options of its largest need."""
    cfg = opts.nca
    # The candidates' ids, scores, masks and sorted copies; the simulators; the grids and their strip (the GIF and
    # the rejected rules' strip come after it, and need less).
    needs = {
        f"--candidates {opts.candidates:,}": 40 * opts.candidates,
        f"--grid {cfg.grid}, --patch {cfg.patch}, --nca.score_frames {cfg.score_frames} (per thread)":
            workspace_bytes(cfg, opts.threads, max(opts.candidates, opts.rules)),
        f"--rules {opts.rules:,} x --frames {opts.frames:,} of --grid {cfg.grid} at --scale {opts.scale:,}":
            opts.rules * opts.frames * cfg.grid**2 + strip_bytes(opts.rules, opts.frames, cfg.grid, opts.scale),
    }
    check_fits(sum(needs.values()), max(needs, key=needs.__getitem__))


def run(args: argparse.Namespace) -> int:
    opts = tree_config(ShowConfig, args)
    out = output_folder("out", opts.out)
    _check_memory(opts)
    cfg = opts.nca
    threads = opts.threads or None

    # The histogram comes first: when the band selects nothing it is the plot that shows why.
    # Attempt 0 of each candidate stream is an unfiltered random rule: the band's input distribution.
    ratios = score_rules(cfg, opts.seed, np.arange(opts.candidates, dtype=np.uint64), threads=threads)
    hist = save_complexity_histogram(ratios, cfg.band, out / "complexity.png")

    ids = np.arange(opts.rules, dtype=np.uint64)
    try:
        rule_ids, _ = find_rules(cfg, opts.seed, ids, threads=threads)
    except ValueError as exc:
        if cfg.band is None:
            raise
        raise ValueError(f"--band {cfg.band[0]:g},{cfg.band[1]:g}: {exc}; "
                         f"{hist} shows the scores of {opts.candidates} candidates") from None
    grids = rollout(cfg, opts.seed, rule_ids, ids, opts.frames, threads=threads)
    strip = save_strip(grids, out / "trajectories.png", cfg.colors, opts.scale)
    gif = save_gif(grids, out / "trajectories.gif", cfg.colors, opts.scale)
    rejected_path = None
    if cfg.band is not None:
        # The rules the band throws away, drawn the same way, for comparison.
        rejected = np.flatnonzero(~in_band(ratios, cfg.band))[: opts.rules].astype(np.uint64)
        if rejected.size:
            sims = np.arange(rejected.size, dtype=np.uint64)
            rejected_path = save_strip(rollout(cfg, opts.seed, rejected, sims, opts.frames, threads=threads),
                                       out / "rejected.png", cfg.colors, opts.scale)
    stale = out / "rejected.png"
    if rejected_path is None and stale.exists():
        stale.unlink()  # an earlier run's picture, of another band or config, must not pass for this one's
        print(f"removed {stale} of an earlier run: this run rejects no rule to draw")

    print(f"{opts.rules} rules x {opts.frames} frames ({cfg.grid}x{cfg.grid}, {cfg.colors} colours): {strip}, {gif}")
    print(f"complexity of {opts.candidates} candidate rules: median {np.median(ratios):.3f}, "
          f"range [{ratios.min():.3f}, {ratios.max():.3f}]: {hist}")
    if cfg.band is not None:
        print(f"accepted by band ({cfg.band[0]:g}, {cfg.band[1]:g}): "
              f"{accepted_fraction(ratios, cfg.band):.1%} of candidates"
              + (f"; rejected rules: {rejected_path}" if rejected_path else ""))
    return 0
