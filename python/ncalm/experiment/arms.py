"""Arms of the comparison and the two training stages each one runs.

An arm is a first stage (none for scratch) followed by the language stage.
Every arm's language stage is the same StageConfig up to ``model.init``: same
data, data order, model shape, initialisation seed and schedule, so the first
stage is the only difference.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ncalm.experiment.config import NCA_ARMS, ExperimentConfig
from ncalm.train.config import StageConfig


@dataclass(frozen=True)
class Arm:
    name: str                      # shown in tables and plots
    kind: str                      # of ARM_KINDS
    band: tuple[float, float] | None = None

    @property
    def slug(self) -> str:
        """Directory name."""
        return self.name.replace(" ", "_")


def arms_of(cfg: ExperimentConfig) -> list[Arm]:
    out = []
    for kind in cfg.arms:
        if kind in NCA_ARMS:
            out += [Arm(f"{kind} {lo:g}-{hi:g}", kind, (float(lo), float(hi))) for lo, hi in cfg.bands]
        else:
            out.append(Arm(kind, kind))
    return out


def _stage(cfg: ExperimentConfig, template: StageConfig, data, out_dir: Path, seed: int,
           init: str | None = None) -> StageConfig:
    run = replace(template.run, out_dir=str(out_dir), seed=seed, device=cfg.device, precision=cfg.precision,
                  threads=cfg.threads, progress=cfg.progress)
    return StageConfig(model=replace(cfg.model, init=init), data=data, optim=template.optim, run=run)


def first_stage(cfg: ExperimentConfig, arm: Arm, seed: int, out_dir: Path, text_spec: str) -> StageConfig | None:
    """The arm's pre-pre-training stage (None for scratch); same budget and schedule for all."""
    if arm.kind == "scratch":
        return None
    data = cfg.prepretrain.data
    data = replace(data, kind="nca" if arm.kind in NCA_ARMS else arm.kind, control=NCA_ARMS.get(arm.kind, "none"),
                   seed=seed, nca=data.nca.replace(band=arm.band) if arm.band else data.nca,
                   text=replace(data.text, source=text_spec, tokenizer="byte"))
    return _stage(cfg, cfg.prepretrain, data, out_dir, seed)


def language_stage(cfg: ExperimentConfig, seed: int, out_dir: Path, init: str | None) -> StageConfig:
    """The language stage; ``init`` is the first stage's checkpoint (None for scratch)."""
    return _stage(cfg, cfg.language, replace(cfg.language.data, seed=seed), out_dir, seed, init)
