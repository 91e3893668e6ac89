"""Language stage: train on text, from scratch or from a pre-pre-trained checkpoint (--init).

With --init, the checkpoint's transformer layers and norms are copied and the
embedding and output head start fresh for the text vocabulary; --reinit and
--freeze select further parts (attn, mlp, norm, block, optionally :A or :A-B
layer ranges, or final_norm/embed/head) for ablations.
"""
from __future__ import annotations

import argparse

from ncalm.train.config import TransferConfig
from ncalm.train.options import add_common, add_text, run_and_report, text_data, train_config

def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, out_default="runs/pretrain", steps_default=1000, takes_init=True)
    add_text(p)
    g = p.add_argument_group("transfer (--init)")
    g.add_argument("--init", default=None, help="checkpoint to start from (e.g. runs/prepretrain/checkpoint.pt), or a Hugging Face "
                        "Llama folder (config.json, model.safetensors)")
    g.add_argument("--reinit", action="append", default=[], metavar="PART",
                   help="also re-initialise PART (repeatable), e.g. attn, mlp:0-3, norm")
    g.add_argument("--freeze", action="append", default=[], metavar="PART",
                   help="keep PART fixed during training (repeatable), e.g. attn:0-11")
    g.add_argument("--keep-embeddings", action="store_true",
                   help="copy embedding and head too; the text is then tokenized with the --init checkpoint's "
                        "tokenizer (a text checkpoint; --tokenizer and --bpe-vocab must name it)")


def run(args: argparse.Namespace) -> int:
    if (args.reinit or args.freeze or args.keep_embeddings) and not args.init:
        raise ValueError("--reinit, --freeze and --keep-embeddings need --init CHECKPOINT")
    transfer = TransferConfig(reinit=args.reinit, freeze=args.freeze, keep_embeddings=args.keep_embeddings)
    cfg = train_config(args, text_data(args), init=args.init, transfer=transfer)
    return run_and_report(cfg, "pretrain", force=args.force)
