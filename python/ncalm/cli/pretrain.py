"""Language stage: train on text, from scratch or from a pre-pre-trained checkpoint (--init).

With --init, the checkpoint's transformer layers and norms are copied and the
embedding and output head start fresh for the text vocabulary; --reinit and
--freeze select further parts (attn, mlp, norm, block, optionally :A or :A-B
layer ranges, or final_norm/embed/head) for ablations. Every option is a
setting of the stage's config tree (saved in OUT/config.json).
"""
from __future__ import annotations

import argparse

from ncalm.cli.train_options import add_stage_arguments, run_and_report, stage_config

BASE = {"run": {"out_dir": "runs/pretrain"}, "data": {"kind": "text"}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_stage_arguments(p, BASE, skip=("data.kind", "data.nca", "data.dyck", "data.pool_size", "data.epoch_sequences",
                                       "data.control", "data.gen_threads", "data.gen_device"))


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    if cfg.data.kind != "text":
        raise ValueError(f"data.kind: pretrain trains on text, got {cfg.data.kind!r}")
    return run_and_report(cfg, "pretrain", force=args.force)
