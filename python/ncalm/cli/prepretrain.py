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


def check_gen_device(cfg) -> None:
    """Refuse --gen-device cuda up front where the GPU backend cannot run, naming this flag in the advice."""
    if cfg.data.kind != "nca" or not cfg.data.gen_device.startswith("cuda"):  # auto falls back to the CPU
        return
    from ncalm.nca.cuda import cuda_status

    usable, why = cuda_status(cpu="--gen-device cpu")
    if not usable:
        raise ValueError(f"--gen-device {cfg.data.gen_device}: {why}")


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    check_gen_device(cfg)
    return run_and_report(cfg, f"prepretrain ({cfg.data.kind})", force=args.force)
