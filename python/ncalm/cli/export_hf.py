"""Write a checkpoint as a Hugging Face Llama folder: config.json, model.safetensors,
generation_config.json and, for text checkpoints, tokenizer.json and tokenizer_config.json.

    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(OUT)   # LlamaForCausalLM, same logits as ncalm's
    tokenizer = AutoTokenizer.from_pretrained(OUT)      # same ids as ncalm's tokenizer

The folder also serves as `ncalm pretrain --init OUT`.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Neither positional is required, so that --checkpoint and --out alone work; optional with nargs="?" instead,
    # OUT would be matched (empty) already in `CKPT --force OUT`, and then refused as an unrecognized argument.
    p.add_argument("checkpoint", help="ncalm checkpoint, e.g. runs/pretrain/checkpoint.pt (or --checkpoint "
                                      "CKPT)").required = False
    p.add_argument("out", help="folder to write (or --out OUT)").required = False
    p.add_argument("--checkpoint", dest="checkpoint_option", metavar="CKPT",
                   help="ncalm checkpoint: CKPT as the other commands take it")
    p.add_argument("--out", dest="out_option", metavar="OUT", help="folder to write: OUT as the other commands take it")
    p.add_argument("--force", action="store_true", help="write into an OUT that already holds a model")


def run(args: argparse.Namespace) -> int:
    from ncalm.lm.checkpoint import load_model
    from ncalm.lm.hf import CONFIG, export_hf
    from ncalm.settings import SettingError, output_folder
    from ncalm.train.config import CHECKPOINT, METRICS
    from ncalm.train.trainer import why_no_tokenizer

    paths = [path for path in (args.checkpoint, args.out) if path is not None]  # the positionals, in order
    if args.checkpoint_option is not None:  # then a single positional is OUT
        if paths and args.out_option is not None:
            raise SettingError("checkpoint", f"{paths[0]!r} given beside --checkpoint {args.checkpoint_option!r} "
                                             f"and --out {args.out_option!r}: drop it")
        if len(paths) == 2 or paths and Path(paths[0]).is_file():  # not a folder to write: a second checkpoint
            raise SettingError("checkpoint", f"two checkpoints given, {paths[0]!r} and --checkpoint "
                                             f"{args.checkpoint_option!r}: give one")
        paths.insert(0, args.checkpoint_option)
    if not paths:
        raise SettingError("checkpoint", "required: the checkpoint to export (--checkpoint CKPT)")
    args.checkpoint, args.out = paths + [None] * (2 - len(paths))
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
