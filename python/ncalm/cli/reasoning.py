"""Downstream reasoning evaluation of a language-stage checkpoint: GSM8K
(few-shot or fine-tuned), HumanEval (sandboxed execution) and BIG-Bench Hard
(few-shot exact match), reported as unbiased pass@k, and BIG-bench Lite
(multiple choice by log-probability, accuracy). Per-problem results go to
OUT/samples.jsonl, so an interrupted run resumes where it stopped; the table
goes to OUT/results.md and OUT/results.json."""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

from ncalm.cli.options import add_tree, tree_config
from ncalm.devices import torch_device
from ncalm.eval.reasoning.config import ReasoningConfig
from ncalm.locks import exclusive
from ncalm.settings import output_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_tree(p, ReasoningConfig, ReasoningConfig(checkpoint="CKPT"), "eval-reasoning", "top_p=0.9")


def _task(opts):
    from ncalm.eval.reasoning import tasks
    from ncalm.eval.reasoning.sandbox import Limits

    if opts.task == "gsm8k":
        return tasks.gsm8k_task(opts.data, opts.n_shots(), opts.limit)
    if opts.task == "humaneval":
        limits = Limits(timeout_s=opts.timeout, memory_bytes=opts.memory_mb << 20)
        return tasks.humaneval_task(opts.data, opts.limit, limits, opts.workers, opts.sandbox_python)
    names = [t.strip() for t in opts.bbh_tasks.split(",")] if opts.bbh_tasks else None
    return tasks.bbh_task(opts.data, names, opts.n_shots(), opts.bbh_cot, opts.limit)


def _finetune(opts, model, tokenizer) -> None:
    from tqdm import tqdm

    from ncalm.eval.reasoning import gsm8k
    from ncalm.eval.reasoning.finetune import finetune

    train = gsm8k.load(gsm8k.train_path(opts.data), "train")
    if opts.finetune_limit:
        train = train[:opts.finetune_limit]
    steps = opts.finetune_epochs * -(-len(train) // opts.finetune_batch_size)
    bar = tqdm(total=steps, desc="fine-tune gsm8k", unit="step", disable=not opts.progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    losses = finetune(model, tokenizer, gsm8k.training_pairs(train), opts.finetune_epochs,
                      opts.finetune_lr, opts.finetune_batch_size, opts.seed, on_step)
    bar.close()
    print(f"fine-tuned on {len(train)} GSM8K train examples: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if opts.save_finetuned:
        from ncalm.lm.checkpoint import save_checkpoint

        save_checkpoint(opts.save_finetuned, {
            "model": model.state_dict(), "model_config": model.cfg.to_dict(),
            "tokenizer": tokenizer.to_dict(), "finetuned_from": str(opts.checkpoint),
            "finetune": {"task": "gsm8k", "epochs": opts.finetune_epochs, "lr": opts.finetune_lr,
                         "examples": len(train)}})
        print(f"wrote {opts.save_finetuned}")


# What changes a task's samples or scores, beyond the common settings.
_TASK_KEYS = {"gsm8k": (), "humaneval": ("timeout", "memory_mb"), "bbh": ("bbh_tasks", "bbh_cot")}


def _config(opts, spec, max_new_tokens: int, device_type: str = "cpu") -> dict:
    from ncalm.lm.checkpoint import weights_sha256

    # Everything that changes the samples (--batch-size does: rows of a batch share
    # one random stream) and only that: --limit, --workers, --threads and the
    # settings of other tasks do not, so changing them does not block a resume.
    keys = ("task", "n_samples", "temperature", "top_p", "seed", "batch_size", "finetune", *_TASK_KEYS[opts.task])
    config = {k: getattr(opts, k) for k in keys}
    config["shots"] = spec.shots  # those the prompts hold: a small pool or --bbh-cot can make them differ from --shots
    config["data"] = str(Path(opts.data).resolve()) if opts.data else None
    config["checkpoint"] = str(Path(opts.checkpoint).resolve())
    # The same path may hold other weights later: results of two models must not mix.
    config["checkpoint_sha256"] = weights_sha256(opts.checkpoint)
    if opts.finetune:
        config.update({k: getattr(opts, k) for k in
                       ("finetune_epochs", "finetune_lr", "finetune_batch_size", "finetune_limit")})
    config.update(max_new_tokens=max_new_tokens, stop=list(spec.stop))
    if device_type != "cpu":
        # CPU and CUDA generators draw different samples from one seed: a resume on the other
        # device would mix two streams. Absent for the CPU, so CPU runs made before this key resume.
        config["sampling_device"] = device_type
    return config


def _default_max_new(opts, spec, tokenizer, context: int) -> int:
    """The task's default generation length, capped at half the context (so the prompt keeps the rest)."""
    default = spec.default_max_new_tokens(tokenizer)
    if default <= context // 2:
        return default
    unit = "bytes" if tokenizer.kind == "byte" else "tokens"
    # Said once, up front: a silently short budget would read as a weak model.
    print(f"warning: the {opts.task} default generation length of {default} {unit} is cut to {context // 2}, "
          f"half the model's context of {context}: longer answers are cut off "
          f"(--max-new-tokens sets the length)", file=sys.stderr)
    return context // 2


def _run_bbl(opts, out: Path) -> int:
    """BIG-bench Lite: accuracy of the most likely choice letter, per task (ncalm.eval.reasoning.bbl)."""
    import json

    from ncalm.atomic_json import json_safe, write_json, write_text
    from ncalm.eval.reasoning import bbl
    from ncalm.eval.reasoning.results import ResultsStore
    from ncalm.lm.checkpoint import weights_sha256

    if opts.data is None:
        raise ValueError("--task bbl reads local files: pass --data (a folder of BIG-bench task.json folders or "
                         "tasksource/bigbench TASK.jsonl files)")
    tasks = bbl.load(opts.data)
    shots = json.loads(Path(opts.bbl_prompts).read_text(encoding="utf-8")) if opts.bbl_prompts else None
    shots = {name: bbl._rows(rows, opts.bbl_prompts) for name, rows in (shots or {}).items()}
    model, tokenizer, device = _load_model(opts, "BIG-bench Lite")
    # What changes an example's answer, as _config says it for the other tasks (--limit does not).
    config = {"task": "bbl", "data": str(Path(opts.data).resolve()),
              "prompts": str(Path(opts.bbl_prompts).resolve()) if opts.bbl_prompts else None,
              "checkpoint": str(Path(opts.checkpoint).resolve()), "checkpoint_sha256": weights_sha256(opts.checkpoint)}
    with exclusive(out), ResultsStore(out, config) as store:
        result = bbl.evaluate(model, tokenizer, tasks, shots, opts.limit, device, opts.progress, store)
        # A task with no scored example has no accuracy (NaN in the table, null in the JSON).
        json_path = write_json(out / "results.json", json_safe({"checkpoint": str(opts.checkpoint), "data": opts.data,
                                                                "prompts": opts.bbl_prompts, **result}))
        md_path = write_text(out / "results.md", bbl.markdown_table(result, f"bbl: {opts.checkpoint}"))
    print(md_path.read_text(), end="")
    print(f"wrote {md_path}, {json_path} and {store.samples}")
    return 0


def _load_model(opts, what: str):
    """(model, tokenizer, device) of --checkpoint, on --device ("auto" and "cuda" become the device the
    sampling generators need), with --threads; refuses a checkpoint without a tokenizer."""
    import torch

    from ncalm.lm.checkpoint import load_model

    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch_device(opts.device)
    model, tokenizer, _ = load_model(opts.checkpoint, device=device)
    if tokenizer is None:
        raise ValueError(f"--checkpoint {opts.checkpoint} was trained on NCA/Dyck tokens only: "
                         f"{what} needs a language-stage checkpoint with a tokenizer")
    return model, tokenizer, device


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ncalm.eval.reasoning.results import ResultsStore, summarize, write_standard_samples, write_tables
    from ncalm.lm.sampling import SamplingConfig, generate

    opts = tree_config(ReasoningConfig, args)
    out = output_folder("out", opts.out or f"runs/reasoning-{opts.task}")  # before the model is loaded
    if opts.task == "bbl":
        return _run_bbl(opts, out)
    spec = _task(opts)
    if not spec.items:
        raise ValueError("no problems to evaluate (check --data and --limit)")
    model, tokenizer, device = _load_model(opts, "reasoning evaluation")
    context = model.cfg.max_seq_len
    max_new = opts.max_new_tokens or _default_max_new(opts, spec, tokenizer, context)
    if max_new >= context:
        raise ValueError(f"--max-new-tokens {max_new}: must be < the model's context {context}")
    keep = context - max_new
    cut = sum(len(tokenizer.encode(item.prompt)) > keep for item in spec.items)
    if cut:  # sampling keeps a long prompt's last tokens: its first demonstrations are silently lost
        print(f"warning: {cut} of {len(spec.items)} prompts are longer than the model's context {context} minus "
              f"{max_new} new tokens; they keep their last {keep} tokens (lower --shots or --max-new-tokens)",
              file=sys.stderr)
    config = _config(opts, spec, max_new, device.type)
    with exclusive(out), ResultsStore(out, config) as store:
        rescored = store.rescore({item.id: item for item in spec.items}, spec.score)
        if rescored:  # the stored scores were edited, or came from another scorer
            print(f"warning: {rescored} stored problem records in {store.samples} scored otherwise now; "
                  f"their new scores are used", file=sys.stderr)
        todo = [item for item in spec.items if item.id not in store]
        if opts.finetune and todo:
            _finetune(opts, model, tokenizer)
        sampling = SamplingConfig(opts.temperature, opts.top_p, max_new, spec.stop, opts.batch_size)
        bar = tqdm(todo, desc=f"{opts.task}", unit="problem", initial=len(spec.items) - len(todo),
                   total=len(spec.items), disable=not opts.progress)
        solved = sum(r["c"] / r["n"] for r in store.records.values())
        for item in bar:
            # A generator per problem, seeded from its id: resumed and uninterrupted
            # runs draw the same samples.
            gen = torch.Generator(device=device).manual_seed(opts.seed + zlib.crc32(item.id.encode()))
            [completions] = generate(model, tokenizer, [item.prompt], sampling, opts.n_samples, gen)
            record = store.add(item.id, item.group, spec.score(item, completions))
            solved += record["c"] / record["n"]
            bar.set_postfix(pass1=f"{solved / len(store.records):.3f}")
        records = [store.records[item.id] for item in spec.items]
        summary = summarize(records, opts.pass_ks())
        # The path as given: every run's file is checkpoint.pt, and its folders tell the arms apart.
        title = f"{opts.task}: {opts.checkpoint}"
        json_path, md_path = write_tables(out, title, summary, config)
        standard = write_standard_samples(out, opts.task, spec.items, store.records)
    print(md_path.read_text(), end="")
    print(f"wrote {md_path}, {json_path} and {store.samples}" + (f" ({standard.name}: every sample in the "
                                                                   f"standard layout)" if standard else ""))
    return 0
