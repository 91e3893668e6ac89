"""Downstream reasoning evaluation of a language-stage checkpoint: GSM8K
(few-shot or fine-tuned), HumanEval (sandboxed execution) and BIG-Bench Hard
(few-shot exact match), reported as unbiased pass@k. Per-problem results go to
OUT/samples.jsonl, so an interrupted run resumes where it stopped; the table
goes to OUT/results.md and OUT/results.json."""
from __future__ import annotations

import argparse
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from ncalm.cli.main import UserError
from ncalm.cli.options import add_tree, tree_config
from ncalm.devices import DEVICE_HELP, device_setting, torch_device
from ncalm.locks import exclusive
from ncalm.settings import Settings, SettingError, at_least, in_range, same_as, setting
from ncalm.train.config import RunConfig

PAPER_MAX_K = 32  # the paper reports pass@k for k up to 32
# Named sampling setups (--sampling): (n, temperature, top-p). "paper": 64 samples at temperature 0.4, top-p 0.95;
# "reference-gsm8k" is the public reference code's GSM8K evaluation (scripts/eval/eval_gsm8k.sh).
SAMPLING = {"paper": (64, 0.4, 0.95), "reference-gsm8k": (32, 0.6, 1.0)}


def _k(text: str) -> str | None:
    if text == "auto" or all(x.strip().isdigit() for x in text.split(",") if x.strip()) and text.strip(", "):
        return None
    return "expected 'auto' or comma-separated integers"


def _writable_file(path: str | None) -> str | None:
    """Refuse a --save-finetuned path that cannot be written now, not after fine-tuning has run."""
    if path is None:
        return None
    if Path(path).is_dir():
        return f"is a directory; name the checkpoint file, e.g. {Path(path) / 'finetuned.pt'}"
    # save_checkpoint creates missing directories and renames a new file into place: the nearest
    # existing directory must take a new file (an existing read-only file is replaced all the same).
    parent = Path(path).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write there ({parent} is not a writable directory)"
    return None


@dataclass
class ReasoningConfig(Settings):
    """What `ncalm eval-reasoning` runs. Defaults are the paper's sampling setup."""

    DASHED = True  # options --n-samples, --top-p, ... named after the fields

    task: str = setting("gsm8k", "benchmark to run (bbl: BIG-bench Lite multiple choice by log-probability, the "
                                 "paper's; needs --data)", choices=("gsm8k", "humaneval", "bbh", "bbl"))
    checkpoint: str | None = setting(None, "language-stage checkpoint with a tokenizer (required, no default)")
    data: str | None = setting(None, "local data: GSM8K dir or test.jsonl, HumanEval.jsonl(.gz), BBH dir or task "
                                     ".json; unset: the Hugging Face hub (needs `datasets` and network)")
    limit: int | None = setting(None, "evaluate only the first N problems; unset: all", check=at_least(1))
    sampling: str = setting("paper", "named sampling setup: paper = 64 samples, temperature 0.4, top-p 0.95; "
                                     "reference-gsm8k = 32 samples, temperature 0.6, top-p 1.0 (the reference code's "
                                     "GSM8K); n_samples, temperature and top_p override its values",
                            choices=tuple(SAMPLING))
    n_samples: int | None = setting(None, "completions per problem (n); unset: --sampling's", check=at_least(1))
    k: str = setting("auto", "comma-separated k for pass@k; auto = 1, 2, 4, ... up to min(n, 32)", check=_k)
    temperature: float | None = setting(None, "sampling temperature, 0 = greedy; unset: --sampling's",
                                        check=in_range(0, float("inf"), open_high=True, shown="[0, inf)"))
    top_p: float | None = setting(None, "nucleus sampling mass; unset: --sampling's",
                                  check=in_range(0, 1, open_low=True))
    max_new_tokens: int | None = setting(
        None, "generation length in the checkpoint tokenizer's tokens (bytes for the byte tokenizer); unset: room "
              "for the reference answers, gsm8k 1024 bytes, humaneval 1536, bbh 256 (2048 with --bbh-cot), a "
              "quarter as many tokens for BPE, and at most half the model's context", check=at_least(1))
    shots: int | None = setting(None, "few-shot demonstrations; unset: gsm8k 8 (0 with --finetune), bbh 3",
                                check=at_least(0))
    batch_size: int = setting(16, "sequences decoded together", check=at_least(1))
    seed: int = setting(0, "sampling seed (per problem: seed + id hash)")
    device: str = setting("auto", DEVICE_HELP, check=device_setting)
    threads: int | None = setting(None, "torch CPU threads; unset: torch's choice (1 is faster on a busy machine)",
                                  check=at_least(1))
    out: str | None = setting(None, "output directory; unset: runs/reasoning-TASK")
    progress: bool = same_as(RunConfig, "progress")
    # gsm8k fine-tuning (paper: 10 epochs, lr 1e-5)
    finetune: bool = setting(False, "fine-tune on the GSM8K train split before evaluating")
    finetune_epochs: int = setting(10, "epochs over the train split", check=at_least(1))
    finetune_lr: float = setting(1e-5, "AdamW learning rate of the fine-tuning")
    finetune_batch_size: int = setting(8, "fine-tuning examples per step", check=at_least(1))
    finetune_limit: int | None = setting(None, "use only the first N train examples; unset: all", check=at_least(1))
    save_finetuned: str | None = setting(None, "write the fine-tuned checkpoint here; unset: not saved",
                                         check=_writable_file)
    # humaneval sandbox
    timeout: float = setting(5.0, "wall-clock seconds per program", check=in_range(0, float("inf"), open_low=True,
                                                                                  shown="(0, inf)"))
    memory_mb: int = setting(1024, "address-space limit per program (MiB)", check=at_least(1))
    workers: int = setting(4, "programs run in parallel", check=at_least(1))
    sandbox_python: str | None = setting(None, "interpreter for generated code; unset: this one, or a system "
                                               "python3 if the sandbox user cannot read this one's library")
    # bbh
    bbh_tasks: str | None = setting(None, "comma-separated subtasks; unset: all in --data")
    bbh_cot: bool = setting(False, "use the published chain-of-thought prompts (DATA/cot-prompts/TASK.txt)")
    # bbl
    bbl_prompts: str | None = setting(None, "few-shot demonstrations per task, {task: [rows]} (the reference's "
                                            "bbl_prompts.json); unset: zero-shot")

    def validate(self) -> None:
        n, temperature, top_p = SAMPLING[self.sampling]  # the named setup, where not set one by one
        self.n_samples = n if self.n_samples is None else self.n_samples
        self.temperature = temperature if self.temperature is None else self.temperature
        self.top_p = top_p if self.top_p is None else self.top_p
        if self.checkpoint is None:
            raise SettingError("checkpoint", "required: the checkpoint to evaluate (--checkpoint PATH)")
        if self.temperature == 0 and self.n_samples > 1:
            raise SettingError("n_samples", f"{self.n_samples} with temperature 0: greedy samples are identical; "
                                            "use --n-samples 1 or a temperature > 0")
        if self.finetune and self.task != "gsm8k":
            raise SettingError("finetune", "applies to --task gsm8k only")
        if self.save_finetuned and not self.finetune:
            raise SettingError("save_finetuned", "needs --finetune (nothing is fine-tuned without it)")
        if not all(1 <= k <= self.n_samples for k in self.pass_ks()):
            raise SettingError("k", f"each k must be in [1, n_samples={self.n_samples}], got {self.k!r}")

    def n_shots(self) -> int | None:
        """Demonstrations per prompt: --shots, else the task's default; HumanEval takes none."""
        if self.task == "humaneval":
            return None
        return self.shots if self.shots is not None else 3 if self.task == "bbh" else 0 if self.finetune else 8

    def pass_ks(self) -> list[int]:
        """The k of pass@k: --k, or for auto 1, 2, 4, ... up to min(n, 32)."""
        if self.k == "auto":
            return [2**i for i in range(PAPER_MAX_K.bit_length()) if 2**i <= min(self.n_samples, PAPER_MAX_K)]
        return sorted({int(x) for x in self.k.split(",") if x.strip()})  # its syntax is checked by _k


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_tree(p, ReasoningConfig, ReasoningConfig(checkpoint="CKPT"), "eval-reasoning")


def _task(args):
    from ncalm.eval.reasoning import tasks
    from ncalm.eval.reasoning.sandbox import Limits

    if args.task == "gsm8k":
        return tasks.gsm8k_task(args.data, args.n_shots(), args.limit)
    if args.task == "humaneval":
        limits = Limits(timeout_s=args.timeout, memory_bytes=args.memory_mb << 20)
        return tasks.humaneval_task(args.data, args.limit, limits, args.workers, args.sandbox_python)
    names = [t.strip() for t in args.bbh_tasks.split(",")] if args.bbh_tasks else None
    return tasks.bbh_task(args.data, names, args.n_shots(), args.bbh_cot, args.limit)


def _finetune(args, model, tokenizer) -> None:
    from tqdm import tqdm

    from ncalm.eval.reasoning import gsm8k
    from ncalm.eval.reasoning.finetune import finetune

    train = gsm8k.load(gsm8k.train_path(args.data), "train")
    if args.finetune_limit:
        train = train[:args.finetune_limit]
    steps = args.finetune_epochs * -(-len(train) // args.finetune_batch_size)
    bar = tqdm(total=steps, desc="fine-tune gsm8k", unit="step", disable=not args.progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    losses = finetune(model, tokenizer, gsm8k.training_pairs(train), args.finetune_epochs,
                      args.finetune_lr, args.finetune_batch_size, args.seed, on_step)
    bar.close()
    print(f"fine-tuned on {len(train)} GSM8K train examples: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if args.save_finetuned:
        from ncalm.lm.checkpoint import save_checkpoint

        save_checkpoint(args.save_finetuned, {
            "model": model.state_dict(), "model_config": model.cfg.to_dict(),
            "tokenizer": tokenizer.to_dict(), "finetuned_from": str(args.checkpoint),
            "finetune": {"task": "gsm8k", "epochs": args.finetune_epochs, "lr": args.finetune_lr,
                         "examples": len(train)}})
        print(f"wrote {args.save_finetuned}")


# What changes a task's samples or scores, beyond the common settings.
_TASK_KEYS = {"gsm8k": (), "humaneval": ("timeout", "memory_mb"), "bbh": ("bbh_tasks", "bbh_cot")}


def _config(args, max_new_tokens: int, stop, device_type: str = "cpu") -> dict:
    from ncalm.lm.checkpoint import file_sha256

    # Everything that changes the samples (--batch-size does: rows of a batch share
    # one random stream) and only that: --limit, --workers, --threads and the
    # settings of other tasks do not, so changing them does not block a resume.
    keys = ("task", "n_samples", "temperature", "top_p", "seed", "batch_size", "finetune", *_TASK_KEYS[args.task])
    config = {k: getattr(args, k) for k in keys}
    config["shots"] = args.n_shots()
    config["data"] = str(Path(args.data).resolve()) if args.data else None
    config["checkpoint"] = str(Path(args.checkpoint).resolve())
    # The same path may hold other weights later: results of two models must not mix.
    config["checkpoint_sha256"] = file_sha256(args.checkpoint).hexdigest()
    if args.finetune:
        config.update({k: getattr(args, k) for k in
                       ("finetune_epochs", "finetune_lr", "finetune_batch_size", "finetune_limit")})
    config.update(max_new_tokens=max_new_tokens, stop=list(stop))
    if device_type != "cpu":
        # CPU and CUDA generators draw different samples from one seed: a resume on the other
        # device would mix two streams. Absent for the CPU, so CPU runs made before this key resume.
        config["sampling_device"] = device_type
    return config


def _default_max_new(args, spec, tokenizer, context: int) -> int:
    """The task's default generation length, capped at half the context (so the prompt keeps the rest)."""
    default = spec.default_max_new_tokens(tokenizer)
    if default <= context // 2:
        return default
    unit = "bytes" if tokenizer.kind == "byte" else "tokens"
    # Said once, up front: a silently short budget would read as a weak model.
    print(f"warning: the {args.task} default generation length of {default} {unit} is cut to {context // 2}, "
          f"half the model's context of {context}: longer answers are cut off "
          f"(--max-new-tokens sets the length)", file=sys.stderr)
    return context // 2


def _run_bbl(args) -> int:
    """BIG-bench Lite: accuracy of the most likely choice letter, per task (ncalm.eval.reasoning.bbl)."""
    import json

    from ncalm.atomic_json import write_json, write_text
    from ncalm.eval.reasoning import bbl

    if args.data is None:
        raise UserError("--task bbl reads local files: pass --data (a folder of BIG-bench task.json folders or "
                        "tasksource/bigbench TASK.jsonl files)")
    tasks = bbl.load(args.data)
    shots = json.loads(Path(args.bbl_prompts).read_text(encoding="utf-8")) if args.bbl_prompts else None
    shots = {name: bbl._rows(rows, args.bbl_prompts) for name, rows in (shots or {}).items()}
    model, tokenizer, device = _load_model(args, "BIG-bench Lite")
    result = bbl.evaluate(model, tokenizer, tasks, shots, args.limit, device, progress=args.progress)
    out = Path(args.out or "runs/reasoning-bbl")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"checkpoint": str(args.checkpoint), "data": args.data,
                                      "prompts": args.bbl_prompts, **result})
    table = bbl.markdown_table(result)
    write_text(out / "results.md", table)
    print(table)
    return 0


def _load_model(args, what: str):
    """(model, tokenizer, device) of --checkpoint, on --device ("auto" and "cuda" become the device the
    sampling generators need), with --threads; refuses a checkpoint without a tokenizer."""
    import torch

    from ncalm.lm.checkpoint import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    model, tokenizer, _ = load_model(args.checkpoint, device=device)
    if tokenizer is None:
        raise UserError(f"--checkpoint {args.checkpoint} was trained on NCA/Dyck tokens only: "
                        f"{what} needs a language-stage checkpoint with a tokenizer")
    return model, tokenizer, device


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ncalm.eval.reasoning.results import ResultsStore, summarize, write_standard_samples, write_tables
    from ncalm.lm.sampling import SamplingConfig, generate

    args = tree_config(ReasoningConfig, args)  # the settings, as the helpers above take them
    if args.task == "bbl":
        return _run_bbl(args)
    spec = _task(args)
    if not spec.items:
        raise UserError("no problems to evaluate (check --data and --limit)")
    model, tokenizer, device = _load_model(args, "reasoning evaluation")
    context = model.cfg.max_seq_len
    max_new = args.max_new_tokens or _default_max_new(args, spec, tokenizer, context)
    if max_new >= context:
        raise UserError(f"--max-new-tokens {max_new}: must be < the model's context {context}")
    keep = context - max_new
    cut = sum(len(tokenizer.encode(item.prompt)) > keep for item in spec.items)
    if cut:  # sampling keeps a long prompt's last tokens: its first demonstrations are silently lost
        print(f"warning: {cut} of {len(spec.items)} prompts are longer than the model's context {context} minus "
              f"{max_new} new tokens; they keep their last {keep} tokens (lower --shots or --max-new-tokens)",
              file=sys.stderr)
    out = Path(args.out or f"runs/reasoning-{args.task}")
    config = _config(args, max_new, spec.stop, device.type)
    with exclusive(out):
        store = ResultsStore(out, config)
        rescored = store.rescore({item.id: item for item in spec.items}, spec.score)
        if rescored:  # the stored scores were edited, or came from another scorer
            print(f"warning: {rescored} stored problem records in {store.samples} scored otherwise now; "
                  f"their new scores are used", file=sys.stderr)
        todo = [item for item in spec.items if item.id not in store]
        if args.finetune and todo:
            _finetune(args, model, tokenizer)
        sampling = SamplingConfig(args.temperature, args.top_p, max_new, spec.stop, args.batch_size)
        bar = tqdm(todo, desc=f"{args.task}", unit="problem", initial=len(spec.items) - len(todo),
                   total=len(spec.items), disable=not args.progress)
        solved = sum(r["c"] / r["n"] for r in store.records.values())
        for item in bar:
            # A generator per problem, seeded from its id: resumed and uninterrupted
            # runs draw the same samples.
            gen = torch.Generator(device=device).manual_seed(args.seed + zlib.crc32(item.id.encode()))
            [completions] = generate(model, tokenizer, [item.prompt], sampling, args.n_samples, gen)
            record = store.add(item.id, item.group, spec.score(item, completions))
            solved += record["c"] / record["n"]
            bar.set_postfix(pass1=f"{solved / len(store.records):.3f}")
        records = [store.records[item.id] for item in spec.items]
        summary = summarize(records, args.pass_ks())
        title = f"{args.task}: {Path(args.checkpoint).name}"
        json_path, md_path = write_tables(out, title, summary, config)
        standard = write_standard_samples(out, args.task, spec.items, store.records)
    print(md_path.read_text(), end="")
    print(f"wrote {md_path}, {json_path} and {store.samples}" + (f" ({standard.name}: every sample in the "
                                                                   f"standard layout)" if standard else ""))
    return 0
