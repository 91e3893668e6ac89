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
    p.add_argument("out", help="folder to write")
    p.add_argument("--force", action="store_true", help="write into an OUT that already holds a model")


def run(args: argparse.Namespace) -> int:
    from ncalm.lm.checkpoint import load_model
    from ncalm.lm.hf import CONFIG, export_hf
    from ncalm.settings import output_folder
    from ncalm.train.config import CHECKPOINT, METRICS
    from ncalm.train.trainer import why_no_tokenizer

    out = output_folder("out", args.out)  # before the checkpoint is read
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
