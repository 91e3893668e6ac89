"""Arms of the comparison and the two training stages each one runs.

An arm is a first stage (none for scratch) followed by the language stage.
Every arm's language stage is the same StageConfig up to ``model.init``: same
data, data order, model shape, initialisation seed and schedule, so the first
stage is the only difference.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ncalm.experiment.config import ABLATIONS, NCA_ARMS, SCRATCH, SHARED_RUN, ExperimentConfig, band_name
from ncalm.lm.config import TransferConfig
from ncalm.train.config import StageConfig


@dataclass(frozen=True)
class Arm:
    name: str                      # shown in tables and plots
    kind: str                      # of ARM_KINDS
    band: tuple[float, float] | None = None
    ablation: str | None = None    # of ABLATIONS: how the language stage takes over the first stage's model

    @property
    def slug(self) -> str:
        """Directory name."""
        return self.name.replace(" ", "_")

    @property
    def first_slug(self) -> str:
        """Directory of the first stage: an ablation reuses its band's NCA first stage."""
        return self.slug.removesuffix(f"_{self.ablation}") if self.ablation else self.slug


def arms_of(cfg: ExperimentConfig) -> list[Arm]:
    out = []
    for kind in cfg.arms:
        if kind in NCA_ARMS:
            for b in cfg.bands:
                name, band = f"{kind} {band_name(b)}", None if b is None else (float(b[0]), float(b[1]))
                out.append(Arm(name, kind, band))
                if kind == "nca":
                    out += [Arm(f"{name} {a}", kind, band, a) for a in cfg.ablations]
        else:
            out.append(Arm(kind, kind))
    return out


def _stage(cfg: ExperimentConfig, template: StageConfig, data, out_dir: Path, seed: int,
           init: str | None = None, ablation: str | None = None, **run_changes) -> StageConfig:
    run = replace(template.run, out_dir=str(out_dir), seed=seed, **{k: getattr(cfg, k) for k in SHARED_RUN},
                  **run_changes)
    transfer = TransferConfig(**ABLATIONS[ablation]) if ablation else cfg.model.transfer
    return StageConfig(model=replace(cfg.model, init=init, transfer=transfer), data=data, optim=template.optim,
                       run=run)


def first_stage(cfg: ExperimentConfig, arm: Arm, seed: int, out_dir: Path, text_spec: str) -> StageConfig | None:
    """The arm's pre-pre-training stage (None for scratch); same budget and schedule for all."""
    if arm.kind == SCRATCH:
        return None
    data = cfg.prepretrain.data
    data = replace(data, kind="nca" if arm.kind in NCA_ARMS else arm.kind, control=NCA_ARMS.get(arm.kind, "none"),
                   seed=seed, nca=data.nca.replace(band=arm.band) if arm.kind in NCA_ARMS else data.nca,
                   text=replace(data.text, source=text_spec))
    run = {"keep_best": True} if cfg.transfer_checkpoint == "best" else {}
    if arm.kind == "text" and cfg.text_budget != 1.0:
        run["tokens"] = round(cfg.prepretrain.run.tokens * cfg.text_budget)
    return _stage(cfg, cfg.prepretrain, data, out_dir, seed, **run)


def language_stage(cfg: ExperimentConfig, seed: int, out_dir: Path, init: str | None,
                   ablation: str | None = None) -> StageConfig:
    """The language stage; ``init`` is the first stage's checkpoint (None for scratch), ``ablation`` what
    of it is re-initialised or frozen (a name of ABLATIONS; None: everything but the token space copied)."""
    return _stage(cfg, cfg.language, replace(cfg.language.data, seed=seed), out_dir, seed, init, ablation)
