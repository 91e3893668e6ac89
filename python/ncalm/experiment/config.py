"""The experiment's configuration: arms and seeds around two stage templates.

An experiment is a first-stage template (``prepretrain``), a language-stage
template (``language``), the arms, the seeds, and the settings every stage
shares (model, device, precision). Everything that shapes a result lives in
this tree, so ``experiment.json`` in the output directory pins what was run;
resuming checks that it still matches.
"""
from __future__ import annotations

from dataclasses import dataclass

from ncalm.lm.config import ModelSpec
from ncalm.nca.config import PAPER_BAND, NCAConfig, parse_band
from ncalm.settings import Settings, SettingError, at_least, positive, same_as, setting, table
from ncalm.train.config import RunConfig, StageConfig

# NCA arms and their controls (ncalm.data.controls): the arm kind -> the first stage's data.control.
NCA_ARMS = {"nca": "none", "nca-shuffled": "shuffle-frames", "nca-shuffled-tokens": "shuffle-tokens",
            "random-unigram": "unigram", "nca-fixed-rules": "fixed-rules"}
SCRATCH = "scratch"  # the arm without a first stage: every other arm's baseline
ARM_KINDS = (SCRATCH, *NCA_ARMS, "dyck", "text")
DEFAULT_ARMS = [SCRATCH, "nca", "dyck", "text"]
# Transfer ablations (the paper's): what of the NCA model the language stage starts from, as the
# language stage's model.transfer (part specs: ncalm.lm.transfer). Each adds an arm per band that
# reuses that band's NCA first stage; embeddings and head start fresh in every arm.
_NORMS = ["norm", "final_norm"]
ABLATIONS: dict[str, dict[str, list[str]]] = {
    "attn-only": {"reinit": ["mlp", *_NORMS]}, "mlp-only": {"reinit": ["attn", *_NORMS]},
    "norms-only": {"reinit": ["attn", "mlp"]}, "no-attn": {"reinit": ["attn"]}, "no-mlp": {"reinit": ["mlp"]},
    "no-norms": {"reinit": _NORMS}, "frozen-attn": {"freeze": ["attn"]}, "frozen-mlp": {"freeze": ["mlp"]},
    "frozen-all": {"freeze": ["attn", "mlp", *_NORMS]},
}
# Settings that may change between invocations of one experiment: they choose which
# runs exist or where they run, not what any run computes.
RESUMABLE_CHANGES = ("seeds", "arms", "bands", "ablations", "device", "threads", "progress", "name",
                     *(f"{stage}.{key}" for stage in ("prepretrain", "language") for key in (
                         "data.workers", "data.gen_threads", "data.gen_device", "data.text.cache", "run.compile",
                         "run.log_every")))
# Run settings every stage shares (set at the top level) and those each arm sets itself.
SHARED_RUN = ("device", "precision", "threads", "progress")
PER_ARM_RUN = ("out_dir", "seed", "resume", "steps", "stop_at")


def _seeds(seeds: list[int]) -> str | None:
    if not seeds or len(set(seeds)) != len(seeds):
        return "must be a non-empty list of distinct integers (e.g. seeds=[0,1,2])"
    if not all(0 <= s < 2**64 for s in seeds):  # what the NCA generator takes (numpy and torch take it too)
        return "each seed must be an integer in [0, 2**64)"
    return None


def _arms(arms: list[str]) -> str | None:
    if not arms or len(set(arms)) != len(arms) or not set(arms) <= set(ARM_KINDS):
        return f"must be a non-empty list of distinct arms of {', '.join(ARM_KINDS)} (e.g. arms=[\"scratch\",\"nca\"])"
    return None


def band_name(band) -> str:
    """'0.22-1' ('unfiltered' for None): a band in its arm's name and folder, so its identity in a resumed
    experiment."""
    return "unfiltered" if band is None else f"{band[0]:g}-{band[1]:g}"


def _parse_band(text: str) -> list[float] | None:
    """--bands' LOWER,UPPER or none, as a list: as TOML and experiment.json give a band (a resume compares them)."""
    band = parse_band(text)
    return None if band is None else list(band)


def _bands(bands: list[list[float] | None]) -> str | None:
    if any(b is not None and (len(b) != 2 or not 0 <= b[0] < b[1] <= 2) for b in bands):
        return "each band must be [lower, upper] with 0 <= lower < upper <= 2, or none (e.g. bands=[[0.5,1.0]])"
    names = [band_name(b) for b in bands]
    for name in names:  # the second would be skipped as already done: it has the first one's folder
        if names.count(name) > 1:
            return (f"two are named {name} (an arm and its folder name a band to 6 significant "
                    "digits): give distinct bands")
    return None


def _ablations(names: list[str]) -> str | None:
    if len(set(names)) != len(names) or not set(names) <= set(ABLATIONS):
        return f"must be distinct names of {', '.join(ABLATIONS)}"
    return None


_STAGE = dict(optim=dict(warmup_steps=10), run=dict(tokens=1_000_000, eval_every=0, ckpt_every=0))


@dataclass
class ExperimentConfig(Settings):
    name: str = setting("experiment", "the experiment's name, shown in its report")
    # No plain value: seeds=3 reads as "3 seeds" as often as "seed 3".
    seeds: list[int] = setting([0], "seeds to run (data and model initialisation)", check=_seeds, flags=("--seeds",),
                               one_item=False)
    arms: list[str] = setting(DEFAULT_ARMS, "arms to run, of scratch, nca (one per band), dyck, text and the NCA "
                                            "controls nca-shuffled (frames in random order), nca-shuffled-tokens "
                                            "(tokens shuffled within frames), random-unigram (i.i.d. tokens at the "
                                            "NCA's frequencies) and nca-fixed-rules (epoch 0's rules forever), "
                                            "one per band each", check=_arms,
                              flags=("--arms",))
    # none as in NCAConfig.band: no filter, every rule (the arm "nca unfiltered").
    bands: list[list[float] | None] = setting([list(PAPER_BAND)], "NCA complexity bands LOWER,UPPER or none (every "
                                                                 "rule), one nca arm (and control) each",
                                              check=_bands, flags=("--bands",), parse=_parse_band)
    ablations: list[str] = setting([], "transfer ablations, each an extra arm per band from that band's NCA model: "
                                      + "; ".join(k + " (" + ", ".join(f"{what} " + "+".join(parts) for what, parts
                                                                        in d.items()) + ")"
                                                  for k, d in ABLATIONS.items()),
                                   check=_ablations, flags=("--ablations",))
    model: ModelSpec = table(ModelSpec, "the model of both stages and every arm", size="tiny")
    device: str = same_as(RunConfig, "device")
    # auto: bf16 autocast on CUDA, fp32 on the CPU, resolved once when the experiment starts and
    # kept in experiment.json, so every arm and every resumed stage runs at one precision.
    precision: str = same_as(RunConfig, "precision")
    threads: int | None = same_as(RunConfig, "threads")
    progress: bool = same_as(RunConfig, "progress")
    bpb_bytes: int = setting(200_000, "held-out bytes for the final bits per byte; 0 = skip", check=at_least(0))
    icl_rules: int = setting(16, "fresh rules on which each NCA arm's first stage is scored in context against "
                                 "copying the last frame (its own outcome in the report); 0 = skip", check=at_least(0))
    transfer_checkpoint: str = setting("last", "the first stage's checkpoint each arm transfers: last, or best "
                                               "(lowest validation loss; for NCA, on held-out rules, as the "
                                               "reference keeps)", choices=("last", "best"))
    text_budget: float = setting(1.0, "the text arm's first-stage token budget as a multiple of the other arms' "
                                      "(the reference code: 10, C4 at 10x the NCA tokens); the report's "
                                      "compute-adjusted speedup counts it", check=positive)
    prepretrain: StageConfig = table(StageConfig, "first stage of every arm but scratch; data.kind is the arm's",
                                     # kind: each arm sets its own; text is the one without a check of its own
                                     data=dict(kind="text", text=dict(source="pydoc", val_percent=10.0)), **_STAGE)
    language: StageConfig = table(StageConfig, "the language stage, the same for every arm",
                                  data=dict(kind="text"), **_STAGE)

    # The flat layout of experiment.json and presets written before the config tree.
    RENAMED = {"model_overrides": "model.overrides", "nca": "prepretrain.data.nca",
               "pool_size": "prepretrain.data.pool_size", "epoch_sequences": "prepretrain.data.epoch_sequences",
               "dyck_k": "prepretrain.data.dyck.k", "dyck_depth": "prepretrain.data.dyck.depth",
               "text": "prepretrain.data.text.source", "text_max_bytes": "prepretrain.data.text.max_bytes",
               "text_val_percent": "prepretrain.data.text.val_percent", "language.bpb_bytes": "bpb_bytes",
               **{f"{stage}.{old}": f"{stage}.{new}" for stage in ("prepretrain", "language") for old, new in (
                   ("tokens", "run.tokens"), ("seq_len", "data.seq_len"), ("batch_size", "optim.batch_size"),
                   ("grad_accum", "optim.grad_accum"), ("lr", "optim.lr"), ("min_lr_ratio", "optim.min_lr_ratio"),
                   ("warmup_steps", "optim.warmup_steps"), ("weight_decay", "optim.weight_decay"),
                   ("grad_clip", "optim.grad_clip"), ("eval_every", "run.eval_every"),
                   ("eval_batches", "run.eval_batches"), ("ckpt_every", "run.ckpt_every"),
                   ("tokenizer", "data.text.tokenizer"), ("bpe_vocab", "data.text.bpe_vocab"),
                   ("val_percent", "data.text.val_percent"), ("max_bytes", "data.text.max_bytes"),
                   ("max_val_bytes", "data.text.max_val_bytes"))}}

    def validate(self) -> None:
        if self.model.init:
            raise SettingError("model.init", "every arm starts from scratch or its own first stage")
        fresh_model, fresh_run = ModelSpec(), RunConfig()
        for name in ("prepretrain", "language"):
            stage = getattr(self, name)
            if stage.model != fresh_model:
                raise SettingError(f"{name}.model", "set model at the top level: one model for every stage")
            for key in SHARED_RUN + PER_ARM_RUN:
                if getattr(stage.run, key) != getattr(fresh_run, key):
                    where = "at the top level" if key in SHARED_RUN else "by the experiment for each arm"
                    raise SettingError(f"{name}.run.{key}", f"is set {where}")
            if stage.run.tokens is None:
                raise SettingError(f"{name}.run.tokens", "an experiment's stages need a token budget")
            if stage.data.seed != 0:
                raise SettingError(f"{name}.data.seed", "is each arm's seed: set seeds")
        if self.prepretrain.data.kind != "text":
            raise SettingError("prepretrain.data.kind", "is set by each arm (see arms)")
        if self.prepretrain.data.nca.band != StageConfig().data.nca.band:
            raise SettingError("prepretrain.data.nca.band", "is set by each nca arm: set bands")
        if self.language.data.kind != "text":
            raise SettingError("language.data.kind", f"must be text, got {self.language.data.kind!r}")
        if set(NCA_ARMS) & set(self.arms) and not self.bands:
            raise SettingError("bands", "the nca arms need at least one complexity band")
        if self.ablations and "nca" not in self.arms:
            raise SettingError("ablations", "are variants of the nca arm: add nca to arms")
        if "nca-fixed-rules" in self.arms and not self.prepretrain.data.pool_size:
            raise SettingError("prepretrain.data.pool_size", "the nca-fixed-rules arm keeps epoch 0's rule pool, "
                                                             "so it needs a pool (e.g. 16000)")
        for band in self.bands:
            try:
                NCAConfig.from_dict({**self.prepretrain.data.nca.to_dict(), "band": band})
            except SettingError as exc:
                raise SettingError("prepretrain.data.nca", f"with band {band}: {exc}") from None

