"""Command-line options shared by `ncalm prepretrain` and `ncalm pretrain`, and their TrainConfig."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ncalm.cli.options import parse_count
from ncalm.lm.config import PRESETS
from ncalm.train.config import DataConfig, OptimConfig, TrainConfig, TransferConfig


def add_common(p: argparse.ArgumentParser, out_default: str, steps_default: int, takes_init: bool = False) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--out", default=out_default, help="run directory (checkpoint.pt, metrics.jsonl, config.json)")
    again = g.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.pt exactly where it stopped, with the same settings "
                            "(another model, model overrides, seed, tokenizer, precision or transfer setting "
                            "is refused)")
    again.add_argument("--force", action="store_true",
                       help="start over in an OUT that already holds a checkpoint, replacing it and its metrics "
                            "(without --resume or --force such an OUT is refused)")
    g.add_argument("--steps", type=int, default=steps_default, help="optimizer steps")
    g.add_argument("--stop-at", type=int, default=0,
                   help="stop after this step with a checkpoint, to continue later with --resume (0 = run to the end)")
    g.add_argument("--max-tokens", type=parse_count, default=None,
                   help="token budget (e.g. 50M); given, it sets the steps instead of --steps "
                        "(batch x accum x ranks x seq-len tokens per step)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: per local rank)")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto = bf16 autocast on CUDA, fp32 on CPU; --resume refuses another resolved precision")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--log-every", type=int, default=10, help="steps between metrics records")
    g.add_argument("--eval-every", type=int, default=100, help="steps between validation losses (0 = only at end)")
    g.add_argument("--eval-batches", type=int, default=8, help="validation batches per evaluation")
    g.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (0 = only at end)")
    g.add_argument("--seed", type=int, default=0, help="model initialisation seed")

    g = p.add_argument_group("model and optimisation")
    g.add_argument("--model", default=None, choices=list(PRESETS),
                   help="size preset (default: tiny" + (", or the --init checkpoint's shape)" if takes_init else ")"))
    g.add_argument("--batch-size", type=int, default=8, help="sequences per micro-batch per process")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--seq-len", type=int, default=256, help="tokens per training sequence")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--min-lr-ratio", type=float, default=0.1, help="final learning rate as a fraction of --lr")
    g.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    g.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = off)")

    g = p.add_argument_group("data")
    g.add_argument("--data-seed", type=int, default=0, help="data seed (rules, Dyck draws, window order)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


def add_text(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text data")
    g.add_argument("--text", default="stdlib",
                   help="stdlib (this Python's standard library), FILE/DIR/GLOB[,...], bin:DIR "
                        "(nanoGPT train.bin/val.bin) or hf:NAME[:CONFIG]")
    g.add_argument("--tokenizer", default="byte", choices=["byte", "bpe"], help="byte-level or locally trained BPE")
    g.add_argument("--bpe-vocab", type=int, default=4096, help="BPE vocabulary size")
    g.add_argument("--max-bytes", type=parse_count, default=None,
                   help="cap on training text in UTF-8 bytes, e.g. 20M (default: all)")
    g.add_argument("--val-percent", type=float, default=2.0,
                   help="percent of files held out for validation; where that is fewer than 5 files, "
                        "that percent of each file's end instead")


def train_config(args: argparse.Namespace, data: DataConfig, init: str | None = None,
                 transfer: TransferConfig | None = None) -> TrainConfig:
    """The TrainConfig the common options describe, around ``data``."""
    optim = OptimConfig(lr=args.lr, min_lr_ratio=args.min_lr_ratio, warmup_steps=args.warmup,
                        weight_decay=args.weight_decay, grad_clip=args.grad_clip)
    return TrainConfig(
        out_dir=args.out, model=args.model, data=data, optim=optim, init=init,
        transfer=transfer or TransferConfig(), steps=args.steps, max_tokens=args.max_tokens or 0,
        batch_size=args.batch_size, grad_accum=args.grad_accum, eval_every=args.eval_every,
        eval_batches=args.eval_batches, ckpt_every=args.ckpt_every, log_every=args.log_every,
        seed=args.seed, device=args.device, precision=args.precision, compile=args.compile,
        resume=args.resume, stop_at=args.stop_at, threads=args.threads, progress=not args.no_progress)


def text_data(args: argparse.Namespace) -> DataConfig:
    return DataConfig(kind="text", seq_len=args.seq_len, seed=args.data_seed, workers=args.workers,
                      text=args.text, tokenizer=args.tokenizer, bpe_vocab=args.bpe_vocab,
                      max_bytes=args.max_bytes, val_percent=args.val_percent)


def check_out_dir(cfg: TrainConfig, force: bool) -> None:
    """Refuse to start over silently on top of a run: its checkpoint and metrics would be overwritten."""
    from ncalm.train.trainer import CHECKPOINT

    ckpt = Path(cfg.out_dir) / CHECKPOINT
    if cfg.init and not cfg.resume and ckpt.exists() and ckpt.resolve() == Path(cfg.init).resolve():
        raise FileExistsError(f"--init {cfg.init} is the checkpoint this run would overwrite in --out "
                              f"{cfg.out_dir}; give the new stage another --out")
    if ckpt.exists() and not (cfg.resume or force):
        raise FileExistsError(f"--out {cfg.out_dir} already holds a run ({ckpt}): pass --resume to continue it, "
                              f"or --force to start over and replace it")


def warn_long_warmup(cfg: TrainConfig) -> None:
    """A warmup longer than the run is legal but leaves the learning rate short of --lr, never decaying."""
    steps = cfg.total_steps(int(os.environ.get("WORLD_SIZE", 1)), cfg.data.seq_len)  # WORLD_SIZE: torchrun's
    warmup = cfg.optim.warmup_steps
    if warmup > steps and os.environ.get("RANK", "0") == "0":
        print(f"warning: --warmup {warmup} is longer than the run's {steps} steps: the learning rate only "
              f"rises, to {steps / warmup:.0%} of --lr, and never decays", file=sys.stderr)


def run_and_report(cfg: TrainConfig, label: str, force: bool = False) -> int:
    """Train, then print a short summary (rank 0 only)."""
    from ncalm.cli.main import UserError
    from ncalm.train.trainer import train

    check_out_dir(cfg, force)
    warn_long_warmup(cfg)
    try:
        result = train(cfg)
    except ImportError as exc:
        raise UserError(str(exc)) from None
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
