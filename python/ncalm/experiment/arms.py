"""Arms of the comparison and the two training stages each one runs.

An arm is a first stage (none for scratch) followed by the language stage.
Every arm's language stage is the same TrainConfig up to ``init``: same data,
data order, model shape, initialisation seed and schedule, so the first stage
is the only difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ncalm.experiment.config import ExperimentConfig, Stage
from ncalm.train import DataConfig, OptimConfig, TrainConfig


@dataclass(frozen=True)
class Arm:
    name: str                      # shown in tables and plots
    kind: str                      # scratch | nca | dyck | text
    band: tuple[float, float] | None = None

    @property
    def slug(self) -> str:
        """Directory name."""
        return self.name.replace(" ", "_")


def arms_of(cfg: ExperimentConfig) -> list[Arm]:
    out = []
    for kind in cfg.arms:
        if kind == "nca":
            out += [Arm(f"nca {lo:g}-{hi:g}", "nca", (float(lo), float(hi))) for lo, hi in cfg.bands]
        else:
            out.append(Arm(kind, kind))
    return out


def _optim(stage: Stage) -> OptimConfig:
    return OptimConfig(lr=stage.lr, min_lr_ratio=stage.min_lr_ratio, warmup_steps=stage.warmup_steps,
                       weight_decay=stage.weight_decay, grad_clip=stage.grad_clip)


def _train_config(cfg: ExperimentConfig, stage: Stage, data: DataConfig, out_dir: Path, seed: int,
                  init: str | None = None) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out_dir), model=cfg.model, model_overrides=dict(cfg.model_overrides), data=data,
        optim=_optim(stage), init=init, max_tokens=stage.tokens, steps=0, batch_size=stage.batch_size,
        grad_accum=stage.grad_accum, eval_every=stage.eval_every, eval_batches=stage.eval_batches,
        ckpt_every=stage.ckpt_every, log_every=10, seed=seed, device=cfg.device, precision=cfg.precision,
        threads=cfg.threads, progress=cfg.progress)


def first_stage(cfg: ExperimentConfig, arm: Arm, seed: int, out_dir: Path, text_spec: str) -> TrainConfig | None:
    """The arm's pre-pre-training stage (None for scratch); same budget and schedule for all."""
    st = cfg.prepretrain
    if arm.kind == "scratch":
        return None
    if arm.kind == "nca":
        data = DataConfig(kind="nca", seq_len=st.seq_len, seed=seed, nca={**cfg.nca, "band": list(arm.band)},
                          pool_size=cfg.pool_size, epoch_sequences=cfg.epoch_sequences)
    elif arm.kind == "dyck":
        data = DataConfig(kind="dyck", seq_len=st.seq_len, seed=seed, dyck_k=cfg.dyck_k,
                          dyck_depth=cfg.dyck_depth)
    else:
        data = DataConfig(kind="text", seq_len=st.seq_len, seed=seed, text=text_spec, tokenizer="byte",
                          max_bytes=cfg.text_max_bytes, val_percent=cfg.text_val_percent)
    return _train_config(cfg, st, data, out_dir, seed)


def language_stage(cfg: ExperimentConfig, seed: int, out_dir: Path, init: str | None) -> TrainConfig:
    """The language stage; ``init`` is the first stage's checkpoint (None for scratch)."""
    lang = cfg.language
    data = DataConfig(kind="text", seq_len=lang.seq_len, seed=seed, text=lang.data, tokenizer=lang.tokenizer,
                      bpe_vocab=lang.bpe_vocab, val_percent=lang.val_percent, max_bytes=lang.max_bytes,
                      max_val_bytes=lang.max_val_bytes)
    return _train_config(cfg, lang, data, out_dir, seed, init)
