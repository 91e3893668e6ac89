"""One training stage: ``model + data + optim + run`` (StageConfig), each field declared once.

`ncalm prepretrain`, `ncalm pretrain` and every stage of `ncalm experiment`
build this tree (from presets, TOML files, ``--set`` and flags); the trainer
takes it whole and saves it in every checkpoint.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ncalm.data.config import DataConfig
from ncalm.devices import DEVICE_HELP, device_setting
from ncalm.lm.config import ModelSpec
from ncalm.settings import (Settings, SettingError, at_least, canonical, folder, in_range, merge, note_renamed,
                            positive, setting, table)

PRECISIONS = ("auto", "bf16", "fp32")


def resolved_precision(precision: str, device_type: str) -> str:
    """What ``run.precision`` trains at on a device of ``device_type`` ("cuda", "cpu"): auto is bf16 on CUDA."""
    return "bf16" if precision == "bf16" or (precision == "auto" and device_type == "cuda") else "fp32"


@dataclass
class OptimConfig(Settings):
    """AdamW over batches of ``batch_size x grad_accum`` sequences per rank; linear warmup, then a
    cosine decay to ``lr * min_lr_ratio``."""

    lr: float = setting(1e-3, "peak learning rate", check=positive, flags=("--lr",))
    min_lr_ratio: float = setting(0.1, "final learning rate as a fraction of lr", check=in_range(0, 1),
                                  flags=("--min-lr-ratio",))
    warmup_steps: int = setting(100, "linear warmup steps", check=at_least(0), flags=("--warmup",))
    # A negative decay grows the weights; a negative clip norm flips the gradient (ascent).
    weight_decay: float = setting(0.1, "AdamW weight decay (matrices only)", check=at_least(0),
                                  flags=("--weight-decay",))
    beta1: float = setting(0.9, "Adam beta1", check=in_range(0, 1, open_high=True))
    beta2: float = setting(0.95, "Adam beta2", check=in_range(0, 1, open_high=True))
    grad_clip: float = setting(1.0, "max global gradient norm (0 = no clipping)", check=at_least(0),
                               flags=("--grad-clip",))
    batch_size: int = setting(8, "sequences per micro-batch per process", check=at_least(1), flags=("--batch-size",))
    grad_accum: int = setting(1, "micro-batches per optimizer step", check=at_least(1), flags=("--grad-accum",))


# What a run writes in run.out_dir, beside config.json.
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # with run.keep_best: the weights at the lowest validation loss
METRICS = "metrics.jsonl"


@dataclass
class RunConfig(Settings):
    """How long, where and at what precision the stage runs, and what it records."""

    out_dir: str = setting("runs/run", "run directory (checkpoint.pt, metrics.jsonl, config.json)",
                           check=folder, flags=("--out",))
    steps: int = setting(1000, "optimizer steps (unless tokens is set)", check=at_least(0), flags=("--steps",))
    tokens: int | None = setting(None, "token budget, e.g. 50M; set, it fixes the steps instead of steps "
                                       "(batch x accum x ranks x seq_len tokens per step); 0 or none: unset",
                                 check=at_least(0), flags=("--tokens", "--max-tokens"))
    stop_at: int = setting(0, "stop after this step with a checkpoint, to continue later with resume "
                              "(0 = run to the end)", check=at_least(0), flags=("--stop-at",))
    eval_every: int = setting(100, "steps between validation losses (0 = only at the end)", check=at_least(0),
                              flags=("--eval-every",))
    ckpt_every: int = setting(500, "steps between checkpoints (0 = only at the end)", check=at_least(0),
                              flags=("--ckpt-every",))
    log_every: int = setting(10, "steps between metrics records", check=at_least(1), flags=("--log-every",))
    seed: int = setting(0, "model initialisation seed",
                        check=in_range(-2**63, 2**64, open_high=True, shown="[-2**63, 2**64)"), flags=("--seed",))
    device: str = setting("auto", DEVICE_HELP + " (under torchrun: per local rank)", check=device_setting,
                          flags=("--device",))
    precision: str = setting("auto", "auto = bf16 autocast on CUDA, fp32 on CPU; a resume refuses another "
                                     "resolved precision", choices=PRECISIONS, flags=("--precision",))
    compile: bool | str = setting("auto", "torch.compile the model: true (--compile), false (--no-compile) or auto "
                                          "(on when training on CUDA with Triton installed, off on the CPU, where "
                                          "compiling costs more than it saves)",
                                  check=lambda v: None if v in (True, False, "auto") else "must be auto, true or false",
                                  flags=("--compile", "--no-compile"))
    activation_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass "
                                                    "instead of storing them: far less memory (a larger micro-batch, "
                                                    "e.g. for the paper shape) for about a third more compute",
                                             flags=("--activation-checkpointing",))
    threads: int | None = setting(None, "torch CPU threads; unset = torch's choice", check=at_least(1),
                                  flags=("--threads",))
    progress: bool = setting(True, "no progress bars (run.progress=false)", flags=("--no-progress",))
    keep_best: bool = setting(False, "also keep out_dir/best.pt: the weights at the lowest validation loss "
                                     "(for NCA data: on held-out rules), e.g. to transfer instead of the last",
                              flags=("--keep-best",))
    tracking: list[str] = setting([], "also send the metrics to tensorboard (event files in out_dir/tensorboard) "
                                      "and/or wandb; each needs its package", flags=("--tracking",),
                                  check=lambda v: None if set(v) <= {"tensorboard", "wandb"} and len(set(v)) == len(v)
                                  else "must be distinct names of tensorboard, wandb")
    resume: bool = setting(False, "continue from out_dir/checkpoint.pt exactly where it stopped, with the "
                                  "same settings", flags=("--resume",))

    RENAMED = {"max_tokens": "tokens"}

    def validate(self) -> None:
        if self.tokens == 0:
            self.tokens = None  # how checkpoints before the config tree wrote "no budget"
        if self.steps == 0 and self.tokens is None:  # old experiment stages: steps 0 beside their budget
            raise SettingError("steps", "must be >= 1 unless tokens is set, got 0")


@dataclass
class StageConfig(Settings):
    """One training stage."""

    model: ModelSpec = table(ModelSpec, "model")
    data: DataConfig = table(DataConfig, "data")
    optim: OptimConfig = table(OptimConfig, "optimisation")
    run: RunConfig = table(RunConfig, "run")

    # The flat TrainConfig layout of checkpoints written before the config tree.
    RENAMED = {"out_dir": "run.out_dir", "model_overrides": "model.overrides", "init": "model.init",
               "transfer": "model.transfer", "steps": "run.steps", "max_tokens": "run.tokens",
               "batch_size": "optim.batch_size", "grad_accum": "optim.grad_accum",
               **{k: f"run.{k}" for k in ("eval_every", "eval_batches", "ckpt_every", "log_every", "seed", "device",
                                          "precision", "compile", "resume", "stop_at", "threads", "progress")}}

    @classmethod
    def from_dict(cls, d, prefix: str = ""):
        d = canonical(cls, d, prefix)
        run = d.get("run") if isinstance(d, dict) else None
        if isinstance(run, dict) and "eval_batches" in run:
            # Before data.val_sequences the validation set was eval_batches batches of optim.batch_size
            # sequences, the first of the held-out ones: the same set as that many val_sequences.
            d = copy.deepcopy(d)
            batches = d["run"].pop("eval_batches")
            batch = d.get("optim", {}).get("batch_size", OptimConfig.__dataclass_fields__["batch_size"].default)
            if isinstance(batches, int) and isinstance(batch, int):
                note_renamed(f"{prefix + '.' if prefix else ''}run.eval_batches",
                             f"{prefix + '.' if prefix else ''}data.val_sequences (= batch_size x eval_batches)")
                d = merge(d, {"data": {"val_sequences": batches * batch}})
        return super().from_dict(d, prefix)

    def validate(self) -> None:
        if self.data.kind != "text" and self.model.transfer.keep_embeddings:
            raise SettingError("model.transfer.keep_embeddings", f"needs text data, not {self.data.kind}")

    def tokens_per_step(self, world: int = 1) -> int:
        return self.optim.batch_size * self.optim.grad_accum * world * self.data.seq_len

    def total_steps(self, world: int = 1) -> int:
        """Optimizer steps of the run: ``run.steps``, or ``run.tokens`` over the tokens of one step."""
        return math.ceil(self.run.tokens / self.tokens_per_step(world)) if self.run.tokens else self.run.steps
