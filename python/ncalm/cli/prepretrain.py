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
    from ncalm.settings import within
    from ncalm.train.sources import generator_device

    cfg = stage_config(args)
    if cfg.data.kind == "nca":
        with within("data"):  # a data.gen_device that cannot serve: refused now, not after the model is built
            generator_device(cfg.data, "cpu")
    return run_and_report(cfg, f"prepretrain ({cfg.data.kind})", force=args.force)
