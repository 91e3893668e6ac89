"""First stage: train a transformer on NCA token streams (default), Dyck sequences or text.

The checkpoint it writes (OUT/checkpoint.pt) is what `ncalm pretrain --init`
carries into language pre-training. Under `torchrun --nproc_per_node N -m
ncalm prepretrain ...` it trains data-parallel.
"""
from __future__ import annotations

import argparse

from ncalm.cli.options import add_nca_arguments, nca_fields
from ncalm.train.config import DataConfig
from ncalm.cli.train_options import add_common, add_text, run_and_report, text_data, train_config

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="nca", choices=["nca", "dyck", "text"], help="what the first stage trains on")
    add_common(p, out_default="runs/prepretrain", steps_default=300)
    g = add_nca_arguments(p, title="NCA data (--data nca)", seq_len=False)
    g.add_argument("--pool-size", type=int, default=0,
                   help="rules per epoch (paper: 16000); 0 = a fresh rule for every sequence")
    g.add_argument("--epoch-sequences", type=int, default=0,
                   help="sequences per rule-pool epoch, at least --pool-size; 0 = --pool-size (each pool rule "
                        "makes one sequence per epoch); unused without --pool-size")
    g.add_argument("--gen-threads", type=int, default=None, help="generator threads (default: all cores)")
    g.add_argument("--gen-device", default="auto",
                   help="where NCA data is generated: cpu, cuda, or auto (the GPU backend when training on a "
                        "GPU with --workers 0; same data either way)")
    g = p.add_argument_group("Dyck data (--data dyck)")
    g.add_argument("--dyck-k", type=int, default=4, help="bracket types")
    g.add_argument("--dyck-depth", type=int, default=16, help="maximum nesting depth")
    add_text(p)


def data_config(args: argparse.Namespace) -> DataConfig:
    if args.data == "text":
        return text_data(args)
    nca = {**nca_fields(args), "band": list(args.band) if args.band else None}  # JSON-ready for the checkpoint
    if args.pool_size and not args.epoch_sequences:
        args.epoch_sequences = args.pool_size
    return DataConfig(kind=args.data, seq_len=args.seq_len, seed=args.data_seed, workers=args.workers,
                      nca=nca if args.data == "nca" else {}, pool_size=args.pool_size,
                      epoch_sequences=args.epoch_sequences, gen_threads=args.gen_threads,
                      gen_device=args.gen_device,
                      dyck_k=args.dyck_k, dyck_depth=args.dyck_depth)


def check_gen_device(args: argparse.Namespace) -> None:
    """Refuse --gen-device cuda up front where the GPU backend cannot run, naming this flag in the advice."""
    if args.data != "nca" or not args.gen_device.startswith("cuda"):  # auto falls back; others DataConfig refuses
        return
    from ncalm.nca.cuda import cuda_status

    usable, why = cuda_status(cpu="--gen-device cpu")
    if not usable:
        raise ValueError(f"--gen-device {args.gen_device}: {why}")


def run(args: argparse.Namespace) -> int:
    check_gen_device(args)
    return run_and_report(train_config(args, data_config(args)), f"prepretrain ({args.data})", force=args.force)
