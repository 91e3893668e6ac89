"""Write a checkpoint as a Hugging Face Llama folder: config.json, model.safetensors,
generation_config.json and, for text checkpoints, tokenizer.json and tokenizer_config.json.

    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(OUT)   # LlamaForCausalLM, same logits as ncalm's
    tokenizer = AutoTokenizer.from_pretrained(OUT)      # same ids as ncalm's tokenizer

The folder also serves as `ncalm pretrain --init OUT`.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="ncalm checkpoint (e.g. runs/pretrain/checkpoint.pt)")
    # Not required as a positional, so that --out alone works; optional with nargs="?" instead, it would be
    # matched (empty) already in `CKPT --force OUT`, and OUT then refused as an unrecognized argument.
    p.add_argument("out", help="folder to write (or --out OUT)").required = False
    p.add_argument("--out", dest="out_option", metavar="OUT", help="folder to write: OUT as the other commands take it")
    p.add_argument("--force", action="store_true", help="write into an OUT that already holds a model")


def run(args: argparse.Namespace) -> int:
    from ncalm.lm.checkpoint import load_model
    from ncalm.lm.hf import CONFIG, export_hf
    from ncalm.settings import SettingError, output_folder
    from ncalm.train.config import CHECKPOINT, METRICS
    from ncalm.train.trainer import why_no_tokenizer

    if None not in (args.out, args.out_option) and args.out != args.out_option:
        raise SettingError("out", f"two folders given, {args.out!r} and --out {args.out_option!r}: give one")
    given = args.out if args.out is not None else args.out_option
    if given is None:
        raise SettingError("out", "no folder to write given: pass it after the checkpoint, or as --out OUT")
    out = output_folder("out", given)  # before the checkpoint is read
    if (out / CHECKPOINT).exists() or (out / METRICS).exists():  # its config.json is the run's settings
        raise FileExistsError(f"{out} is a training run's folder: export to a folder of its own (--force "
                              "does not replace a run's files)")
    if (out / CONFIG).exists() and not args.force:
        raise FileExistsError(f"{out / CONFIG} exists: pass --force to replace the model in {out}")
    model, tokenizer, meta = load_model(args.checkpoint)
    export_hf(model, tokenizer, out)
    what = (f"{tokenizer.name} tokenizer" if tokenizer else
            f"no tokenizer (none was saved with the checkpoint: it {why_no_tokenizer(meta)})")
    print(f"wrote {out}: LlamaForCausalLM, {model.cfg.n_params():,} parameters, {what}")
    return 0
