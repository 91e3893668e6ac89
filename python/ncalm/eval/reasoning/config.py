"""What `ncalm eval-reasoning` takes: the task, the sampling, the fine-tuning and the sandbox, declared once.
Free of torch, so that `--help` loads without it; the library functions that mirror a setting
(`finetune`, `humaneval.evaluate`) take its default from here."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ncalm.eval.config import CheckpointEval, require_checkpoint
from ncalm.eval.reasoning.sandbox import Limits
from ncalm.lm.config import SamplingConfig
from ncalm.settings import Settings, SettingError, at_least, folder, in_range, positive, same_as, setting
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

    task: str = setting("gsm8k", "benchmark to run: gsm8k = grade-school math word problems, the number answered "
                                 "is checked; humaneval = Python functions, run against their tests in a sandbox; "
                                 "bbh = BIG-Bench Hard, few-shot exact match; bbl = BIG-bench Lite, the paper's, "
                                 "multiple choice by log-probability (needs --data); all but bbl report pass@k",
                        choices=("gsm8k", "humaneval", "bbh", "bbl"))
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
    shots: int | None = setting(None, "few-shot demonstrations; unset: gsm8k 8 (0 with --finetune), bbh 3; --bbh-cot "
                                      "uses its prompts' own (3 in the published ones)",
                                check=at_least(0))
    batch_size: int = same_as(SamplingConfig, "batch_size")
    # torch takes seeds in [-2**63, 2**64); each problem adds its id's 32-bit hash to this one.
    seed: int = setting(0, "sampling seed (per problem: seed + id hash)",
                        check=in_range(-2**63, 2**64 - 2**32, open_high=True, shown="[-2**63, 2**64 - 2**32)"))
    device: str = same_as(CheckpointEval, "device")
    threads: int | None = same_as(RunConfig, "threads",
                                  help="torch CPU threads; unset: torch's choice (1 is faster on a busy machine)")
    out: str | None = setting(None, "output directory; unset: runs/reasoning-TASK", check=folder)
    progress: bool = same_as(RunConfig, "progress")
    # gsm8k fine-tuning (paper: 10 epochs, lr 1e-5)
    finetune: bool = setting(False, "fine-tune on the GSM8K train split before evaluating")
    finetune_epochs: int = setting(10, "epochs over the train split", check=at_least(1))
    finetune_lr: float = setting(1e-5, "AdamW learning rate of the fine-tuning", check=positive)
    finetune_batch_size: int = setting(8, "fine-tuning examples per step", check=at_least(1))
    finetune_limit: int | None = setting(None, "use only the first N train examples; unset: all", check=at_least(1))
    save_finetuned: str | None = setting(None, "write the fine-tuned checkpoint here; unset: not saved",
                                         check=_writable_file)
    # humaneval sandbox
    timeout: float = same_as(Limits, "timeout_s", help="wall-clock seconds per program")
    memory_mb: int = setting(Limits.memory_bytes >> 20, "address-space limit per program (MiB)", check=at_least(1))
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
        require_checkpoint(self.checkpoint)
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
        """Demonstrations per prompt: --shots, else the task's default; HumanEval takes none, and unset with
        --bbh-cot, None: its prompts' own (so that only a --shots the user gave is warned about)."""
        if self.task == "humaneval" or (self.task == "bbh" and self.bbh_cot and self.shots is None):
            return None
        return self.shots if self.shots is not None else 3 if self.task == "bbh" else 0 if self.finetune else 8

    def pass_ks(self) -> list[int]:
        """The k of pass@k: --k, or for auto 1, 2, 4, ... up to min(n, 32)."""
        if self.k == "auto":
            return [2**i for i in range(PAPER_MAX_K.bit_length()) if 2**i <= min(self.n_samples, PAPER_MAX_K)]
        return sorted({int(x) for x in self.k.split(",") if x.strip()})  # its syntax is checked by _k
