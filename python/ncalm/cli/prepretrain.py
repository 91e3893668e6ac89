"""First stage: train a transformer on NCA token streams (default), Dyck sequences or text.

The checkpoint it writes (OUT/checkpoint.pt) is what `ncalm pretrain --init`
carries into language pre-training. Under `torchrun --nproc_per_node N -m
ncalm prepretrain ...` it trains data-parallel. Every option is a setting of
the stage's config tree (saved in OUT/config.json): the dotted form
(--optim.lr) and --set KEY=VALUE reach every setting, the short form (--lr)
the common ones.
"""
from __future__ import annotations

import argparse

from ncalm.cli.train_options import add_stage_arguments, run_and_report, stage_config

BASE = {"run": {"out_dir": "runs/prepretrain", "steps": 300}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_stage_arguments(p, BASE, skip=("model.init", "model.transfer"))


def run(args: argparse.Namespace) -> int:
    from ncalm.nca.cpu import check_band
    from ncalm.settings import within
    from ncalm.train.sources import generator_device

    cfg = stage_config(args)
    if cfg.data.kind == "nca":
        # A data.gen_device that cannot serve, or a data.nca.band that holds no rule: refused now,
        # before anything is written in --out, not after the model is built.
        with within("data"):
            generator_device(cfg.data, "cpu")
            with within("nca"):
                check_band(cfg.data.nca_config(), cfg.data.seed, cfg.data.gen_threads)
    return run_and_report(cfg, f"prepretrain ({cfg.data.kind})", force=args.force)
