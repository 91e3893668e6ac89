"""What `ncalm prepretrain` and `ncalm pretrain` share: their options, made from the StageConfig tree,
and running a stage with a short report."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ncalm.cli.options import add_tree_arguments, tree_config
from ncalm.settings import add_flags, output_folder
from ncalm.train.config import BEST, CHECKPOINT, StageConfig

GROUPS = {"model": "model", "model.transfer": "transfer (--init)", "data": "data", "data.nca": "NCA data (--data nca)",
          "data.dyck": "Dyck data (--data dyck)", "data.text": "text data", "optim": "optimisation", "run": "run"}


def add_stage_arguments(p: argparse.ArgumentParser, base: dict, skip: tuple[str, ...] = ()) -> None:
    """Every setting of a stage as an option (``--optim.lr``, alias ``--lr``), over the command's ``base``."""
    add_tree_arguments(p, StageConfig, "stage", "optim.lr=3e-4")
    p.add_argument("--force", action="store_true",
                   help="start over in an OUT that already holds a checkpoint, replacing it and its metrics "
                        "(without --resume or --force such an OUT is refused)")
    add_flags(p, StageConfig, StageConfig.from_dict(base), skip=("data.nca.seq_len", *skip), groups=GROUPS)
    p.set_defaults(_stage_base=base)


def stage_config(args: argparse.Namespace) -> StageConfig:
    """The StageConfig that the command's base, --config, --set and the flags describe."""
    cfg = tree_config(StageConfig, args, args._stage_base)
    if cfg.run.resume and args.force:
        raise ValueError("--resume continues the run in --out and --force replaces it: pass one of them")
    return cfg


def check_out_dir(cfg: StageConfig, force: bool) -> None:
    """Refuse an out_dir that cannot be made, and to start over silently on top of a run: its checkpoint and
    metrics would be overwritten."""
    run, init = cfg.run, cfg.model.init
    out = output_folder("run.out_dir", run.out_dir)
    ckpt = out / CHECKPOINT
    replaced = (ckpt, out / BEST)  # by a new run in --out
    if init and not run.resume and any(p.exists() and p.resolve() == Path(init).resolve() for p in replaced):
        raise FileExistsError(f"--init {init} is a checkpoint this run would overwrite in --out "
                              f"{run.out_dir}; give the new stage another --out")
    if ckpt.exists() and not (run.resume or force):
        raise FileExistsError(f"--out {run.out_dir} already holds a run ({ckpt}): pass --resume to continue it, "
                              f"or --force to start over and replace it")


def warn_long_warmup(cfg: StageConfig) -> None:
    """A warmup longer than the run is legal but leaves the learning rate short of --lr, never decaying."""
    steps = cfg.total_steps(int(os.environ.get("WORLD_SIZE", 1)))  # WORLD_SIZE: torchrun's
    warmup = cfg.optim.warmup_steps
    if warmup > steps and os.environ.get("RANK", "0") == "0":
        print(f"warning: --warmup {warmup} is longer than the run's {steps} steps: the learning rate only "
              f"rises, to {steps / warmup:.0%} of --lr, and never decays", file=sys.stderr)


def run_and_report(cfg: StageConfig, label: str, force: bool = False) -> int:
    """Train, then print a short summary (rank 0 only)."""
    from ncalm.train.trainer import train

    check_out_dir(cfg, force)
    warn_long_warmup(cfg)
    result = train(cfg)  # an ImportError (an optional package missing) is a one-line error in cli.main
    if result["rank"] == 0:
        val = result["val_loss"]
        print(f"{label}: {result['step']}/{result['total_steps']} steps, {result['tokens']:,} tokens, "
              f"{result['n_params']:,} parameters")
        train_loss = result["train_loss"]  # None when the run stopped before its first log step
        if val is not None:
            print(f"  validation loss {val:.4f} nats/token (unigram entropy of the stream "
                  f"{result['val_unigram_entropy']:.4f})"
                  + (f"; train loss {train_loss:.4f}" if train_loss is not None else ""))
        if result["tokens_per_s"]:
            print(f"  {result['tokens_per_s']:,.0f} tokens/s over {result['elapsed_s']:.1f} s")
        print(f"  checkpoint {result['checkpoint']}, metrics {result['metrics']}")
    return 0
