"""Run every (seed, arm) of an experiment, resumably.

Layout of the output directory::

    experiment.json                 the resolved config (a resume must match it)
    data.json                       the corpora's files_digest (a resume must match it)
    events.jsonl                    what each invocation started, resumed, skipped and finished
    seed{S}/{arm}/prepretrain/      first stage (trainer output: checkpoint, metrics)
    seed{S}/{arm}/language/         language stage
    seed{S}/{arm}/result.json       written last: the run is finished

A stage is done when its ``done.json`` exists; a stage with a checkpoint but
no ``done.json`` was interrupted and continues from that checkpoint; a run
with ``result.json`` is never touched again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

from ncalm.atomic_json import read_json, write_json
from ncalm.devices import torch_device
from ncalm.experiment.arms import Arm, arms_of, first_stage, language_stage
from ncalm.experiment.config import ARM_KINDS, NCA_ARMS, RESUMABLE_CHANGES, ExperimentConfig
from ncalm.experiment.corpora import PYDOC, resolve_text
from ncalm.eval.stats import perplexity
from ncalm.locks import exclusive
from ncalm.settings import SettingError, check_same, quietly, within
from ncalm.train.config import CHECKPOINT, resolved_precision

DONE, RESULT, CONFIG, EVENTS, DATA = "done.json", "result.json", "experiment.json", "events.jsonl", "data.json"
# What the report reads of each result.json.
RESULT_KEYS = ("arm", "kind", "band", "seed", "prepretrain", "language", "final_val_loss", "perplexity",
               "train_seconds", "wall_seconds")
# Printed by the trainer on Ctrl-C: `ncalm experiment` has no --resume, a rerun resumes.
RESUME_HINT = "rerun the same ncalm experiment command to continue"


def run_stage(train_cfg, log) -> dict:
    """Train a stage to completion, continuing an interrupted one; cached once done."""
    from ncalm.train import train

    out = Path(train_cfg.run.out_dir)
    done = out / DONE
    if done.exists():
        record = verified_stage(out)
        log("skip", stage=str(out))
        return record
    resume = (out / CHECKPOINT).exists()
    log("resume" if resume else "start", stage=str(out))
    t0 = time.perf_counter()
    result = train(replace(train_cfg, run=replace(train_cfg.run, resume=resume)), resume_hint=RESUME_HINT)
    # Wall time of this call only: an interrupted earlier attempt is not counted.
    result["wall_s"] = time.perf_counter() - t0
    if not result.get("finished"):
        raise RuntimeError(f"stage {out} stopped at step {result.get('step')} of {result.get('total_steps')}")
    from ncalm.lm.checkpoint import verify_checkpoint

    result["checkpoint_sha256"] = verify_checkpoint(result["checkpoint"])[0]
    write_json(done, result)
    log("finish", stage=str(out), seconds=result.get("elapsed_s"), val_loss=result.get("val_loss"))
    return result


def _interrupted(stages: dict[str, Path]) -> dict:
    """The first of ``stages`` (name -> folder) that an earlier invocation left unfinished with a checkpoint,
    as the log's fields ``resumes`` (its name) and ``step`` (its checkpoint's); {} when there is none."""
    from ncalm.lm.checkpoint import load_checkpoint

    for name, folder in stages.items():
        if (folder / CHECKPOINT).exists() and not (folder / DONE).exists():
            # Only the step: the tensors stay unread (the trainer loads them; the file is verified once).
            state = load_checkpoint(folder / CHECKPOINT, skip=("model", "optimizer", "rng"))
            return {"resumes": name, "step": state.get("step")}
    return {}


def verified_stage(out: Path) -> dict:
    """A finished stage's record, once its checkpoint is verified whole and the one it finished with."""
    from ncalm.lm.checkpoint import CheckpointError, verify_checkpoint

    record = read_json(out / DONE, ("checkpoint",), "record of a finished stage")
    try:
        digest = verify_checkpoint(out / CHECKPOINT)[0]
        if record.get("checkpoint_sha256", digest) != digest:  # records from before the hash was kept: whole only
            raise CheckpointError(f"checkpoint {out / CHECKPOINT} is not the one the stage finished with")
    except CheckpointError as exc:
        raise CheckpointError(f"finished stage {out}: {exc}; delete {out} to train the stage again") from None
    return record


def bits_per_byte(cfg: ExperimentConfig, checkpoint: str) -> dict | None:
    """Bits per byte of the finished language model on the language stage's held-out text."""
    if not cfg.bpb_bytes:
        return None
    from ncalm.lm.checkpoint import load_model
    from ncalm.data.tokens import is_bin_spec
    from ncalm.eval.bpb import evaluate_bin, evaluate_text

    lang = cfg.language
    text = lang.data.text
    device = torch_device(cfg.device)
    model, tokenizer, _ = load_model(checkpoint, device=device)
    options = dict(seq_len=lang.data.seq_len, batch_size=lang.optim.batch_size, device=device)
    if is_bin_spec(text.source):  # token files: their val.bin, bytes as `ncalm tokenize` stored them
        return evaluate_bin(model, tokenizer, text.source, max_bytes=cfg.bpb_bytes, **options).to_dict()
    # The stage's held-out documents up to max_val_bytes, then whole documents up to bpb_bytes: from its token cache.
    cap = cfg.bpb_bytes if text.max_val_bytes is None else min(cfg.bpb_bytes, text.max_val_bytes)
    return evaluate_text(model, tokenizer, text, max_bytes=cap, **options).to_dict()


def first_stage_icl(cfg: ExperimentConfig, arm: Arm, seed: int, checkpoint: str) -> dict | None:
    """An NCA arm's first stage in context: cell accuracy of its greedy next frame, with as many frames of
    context as fit, on ``icl_rules`` fresh rules of its band, beside copying the last frame."""
    if arm.kind != "nca" or not cfg.icl_rules:
        return None
    from ncalm.eval.icl import (copy_last_frame_predictor, greedy_predictor, icl_accuracy, icl_sequences,
                                max_context_frames)
    from ncalm.lm.checkpoint import load_model

    nca = cfg.prepretrain.data.nca_config().replace(band=arm.band)
    model, _, _ = load_model(checkpoint, device=torch_device(cfg.device))
    k = max_context_frames(model.cfg.max_seq_len, nca.frame_len)
    if k < 1:
        return None
    tokens = icl_sequences(nca, seed, cfg.icl_rules, k + 1, nca.band)
    model_acc, copy_acc = (icl_accuracy(predict, tokens, nca.frame_len, nca.colors, nca.patch, [k])[0]["cell_acc"]
                           for predict in (greedy_predictor(model), copy_last_frame_predictor(nca.frame_len)))
    return {"k": k, "rules": cfg.icl_rules, "cell_acc": model_acc, "copy_cell_acc": copy_acc}


def run_arm(cfg: ExperimentConfig, arm: Arm, seed: int, out: Path, log) -> dict:
    """Both stages of one arm for one seed; returns (and stores) its result record."""
    run_dir = out / f"seed{seed}" / arm.slug
    result_path = run_dir / RESULT
    if result_path.exists():
        for stage in ("prepretrain", "language"):  # a result stands only on checkpoints that verify
            if (run_dir / stage / DONE).exists():
                verified_stage(run_dir / stage)
        log("skip", arm=arm.name, seed=seed)
        return read_json(result_path, RESULT_KEYS, "result of a finished run")
    resumes = _interrupted({"prepretrain": out / f"seed{seed}" / arm.first_slug / "prepretrain",
                            "language": run_dir / "language"})
    log("resume" if resumes else "start", arm=arm.name, seed=seed, **resumes)
    text = cfg.prepretrain.data.text.source
    text = resolve_text(text, out) if arm.kind == "text" else text  # only the text arm reads it
    first_cfg = first_stage(cfg, arm, seed, out / f"seed{seed}" / arm.first_slug / "prepretrain", text)
    with within("prepretrain"):  # a stage's setting named as the experiment has it: prepretrain.data.text...
        first = run_stage(first_cfg, log) if first_cfg is not None else None
    init = None if first is None else first["best_checkpoint"] if cfg.transfer_checkpoint == "best" \
        else first["checkpoint"]
    with within("language"):
        lang = run_stage(language_stage(cfg, seed, run_dir / "language", init, arm.ablation), log)
    t0 = time.perf_counter()
    bpb = bits_per_byte(cfg, lang["checkpoint"])
    icl = first_stage_icl(cfg, arm, seed, first["checkpoint"]) if first else None
    record = {
        "arm": arm.name, "kind": arm.kind, "band": arm.band, "ablation": arm.ablation, "seed": seed,
        "prepretrain": None if first is None else {
            k: first.get(k) for k in ("tokens", "val_loss", "val_unigram_entropy", "elapsed_s", "n_params",
                                      "best_val_loss")} | {"icl": icl},
        "language": {k: lang[k] for k in ("tokens", "val_loss", "elapsed_s", "n_params", "val_curve")},
        "final_val_loss": lang["val_loss"],
        "perplexity": perplexity(lang["val_loss"]),
        "bpb": bpb,
        "train_seconds": lang["elapsed_s"] + (first["elapsed_s"] if first else 0.0),
        "wall_seconds": lang["wall_s"] + (first["wall_s"] if first else 0.0) + time.perf_counter() - t0,
    }
    write_json(result_path, record)
    log("finish", arm=arm.name, seed=seed, final_val_loss=record["final_val_loss"])
    return record


def pin_precision(cfg: ExperimentConfig, out_dir: str | Path) -> ExperimentConfig:
    """``cfg`` with precision "auto" resolved: to the one ``out_dir``'s experiment.json pins, else
    to bf16 when the device is a GPU and fp32 on the CPU (the trainer's auto).

    Resolved once for the experiment, not per stage, so that a resume on another
    kind of device does not run the remaining arms at another precision.
    """
    if cfg.precision != "auto":
        return cfg
    saved = saved_experiment(out_dir, cfg.device)
    pinned = saved["precision"] if saved is not None and saved["precision"] != "auto" else None
    return replace(cfg, precision=pinned or resolved_precision("auto", torch_device(cfg.device).type))


def saved_experiment(out_dir: str | Path, device: str) -> dict | None:
    """``out_dir``'s experiment.json, or None. One written before precision was
    pinned ran its stages at auto: taken as what auto means on ``device`` (as the
    trainer takes such a stage checkpoint)."""
    path = Path(out_dir) / CONFIG
    if not path.exists():
        return None
    saved = read_json(path, what="config of `ncalm experiment`")
    if "precision" not in saved:
        saved["precision"] = resolved_precision("auto", torch_device(device).type)
    with quietly():  # one written before the config tree, in today's layout
        return ExperimentConfig.from_dict(saved).to_dict()


def check_runnable(cfg: ExperimentConfig, unset_corpus: bool = False) -> None:
    """Raise ValueError (FileNotFoundError for missing local data) for what a stage would reject later.

    ExperimentConfig checks its own settings; this builds every stage's TrainConfig
    (optimizer and schedule values) and tries each NCA band. Nothing is written.
    ``unset_corpus``: let the language corpus be unset (a dry run, which says so).
    """
    from ncalm.data.cache import check_tokenizer_files
    from ncalm.data.tokens import check_corpus, is_bin_spec
    from ncalm.nca.cpu import check_band

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        # Every rank would write the shared files and the ranks other than 0 have no
        # validation loss; data-parallel stages are run one by one instead.
        raise ValueError(f"ncalm experiment runs in one process, not under torchrun (WORLD_SIZE={world}); "
                         f"for data-parallel training run the stages with `torchrun ... -m ncalm prepretrain` "
                         f"and `torchrun ... -m ncalm pretrain --init ...`")
    nowhere = Path("unused")  # the configs are built, never run
    first_text = cfg.prepretrain.data.text.source
    texts = {} if unset_corpus and cfg.language.data.text.source is None else {"language": cfg.language.data.text}
    if "text" in cfg.arms:
        texts["prepretrain"] = cfg.prepretrain.data.text
    for stage, text in texts.items():
        with within(f"{stage}.data.text"):
            if not (stage == "prepretrain" and text.source == PYDOC):  # the text arm's built-in prose
                check_corpus(text.corpus())
            if not is_bin_spec(text.source):  # token files bring their own tokenizer
                check_tokenizer_files(text)
    for arm in arms_of(cfg):
        try:
            first_stage(cfg, arm, cfg.seeds[0], nowhere, first_text)  # None for scratch
        except ValueError as exc:
            raise ValueError(f"prepretrain: {exc}") from None
    try:
        language_stage(cfg, cfg.seeds[0], nowhere, None)
    except ValueError as exc:
        raise ValueError(f"language: {exc}") from None
    # An NCA band that holds no rules fails now, not when the generator gives up mid-run.
    for band in dict.fromkeys(arm.band for arm in arms_of(cfg) if arm.kind in NCA_ARMS):
        try:
            check_band(cfg.prepretrain.data.nca.replace(band=band), cfg.seeds[0])
        except SettingError as exc:
            raise SettingError("bands", f"{list(band)}: {exc.message}") from None


def finished_records(out_dir: str | Path) -> list[dict]:
    """The result record of every finished run in ``out_dir``, by seed, then arm.

    An invocation may name fewer seeds or arms than an earlier one into the same
    directory; its report still covers them all, so scratch stays the baseline.
    """
    order = {kind: i for i, kind in enumerate(ARM_KINDS)}
    records = [read_json(p, RESULT_KEYS, "result of a finished run") for p in Path(out_dir).glob(f"seed*/*/{RESULT}")]
    return sorted(records, key=lambda r: (r["seed"], order[r["kind"]], r["band"] or [], r.get("ablation") or ""))


def _check_data(cfg: ExperimentConfig, out: Path) -> None:
    """Pin the corpora's digests in ``out``/data.json: runs trained on an edited or replaced corpus (or on
    another file by the same relative name) would otherwise be reported, and paired, as one experiment."""
    from ncalm.data.tokens import files_digest

    now = {"language.data.text.source": files_digest(cfg.language.data.text.source)}
    if "text" in cfg.arms and cfg.prepretrain.data.text.source != PYDOC:  # pydoc is written once, into out
        now["prepretrain.data.text.source"] = files_digest(cfg.prepretrain.data.text.source)
    saved = read_json(out / DATA) if (out / DATA).exists() else {}
    changed = [k for k in now if k in saved and saved[k] != now[k]]
    if changed:
        raise ValueError(f"{', '.join(changed)}: the corpus changed since the runs in {out} were trained on it "
                         f"(its files' names or sizes differ); restore it, or use another --out")
    write_json(out / DATA, {**saved, **now})


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path, echo=print) -> list[dict]:
    """Run (or resume) every seed x arm; returns their result records in a stable order."""
    out = Path(out_dir)
    check_runnable(cfg)  # before anything is written: a bad setting must not pin this --out
    cfg = pin_precision(cfg, out)
    with exclusive(out):
        saved = saved_experiment(out, cfg.device)
        if saved is not None:
            check_same(saved, cfg.to_dict(), RESUMABLE_CHANGES, f"the experiment in {out}")
        write_json(out / CONFIG, cfg.to_dict())
        _check_data(cfg, out)

        def log(event: str, **fields) -> None:
            with open(out / EVENTS, "a") as f:
                f.write(json.dumps({"time": time.time(), "pid": os.getpid(), "event": event, **fields}) + "\n")
            if "arm" in fields:
                extra = f" (final val loss {fields['final_val_loss']:.4f})" if "final_val_loss" in fields else \
                    f" ({fields['resumes']} stage from step {fields['step']})" if "resumes" in fields else ""
                echo(f"[seed {fields['seed']}] {fields['arm']}: {event}{extra}")

        return [run_arm(cfg, arm, seed, out, log) for seed in cfg.seeds for arm in arms_of(cfg)]


def run_and_report(cfg: ExperimentConfig, out_dir: str | Path, echo=print) -> float:
    """:func:`run_experiment`, then the report (results.json, results.md, curves.png) of every finished run
    in ``out_dir``, not only this invocation's seeds and arms; returns this invocation's wall seconds."""
    from ncalm.experiment.report import write_report

    out, t0 = Path(out_dir), time.perf_counter()
    run_experiment(cfg, out, echo)
    wall = time.perf_counter() - t0
    write_report(finished_records(out), out, pin_precision(cfg, out).to_dict(), wall_seconds=wall)  # as it ran
    return wall
