"""Evaluate checkpoints and runs: bits per byte on held-out text (bpb), NCA
in-context accuracy (icl), convergence speedup between runs' validation curves
(speedup). Run `ncalm eval MODE --help` for each mode's options."""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from ncalm.atomic_json import read_json, write_json
from ncalm.cli.options import add_tree, tree_config
from ncalm.data.config import DataConfig, TextConfig
from ncalm.data.corpus import resolved_spec
from ncalm.eval.config import BpbConfig, IclConfig, SpeedupConfig
from ncalm.settings import SettingError, quietly

DEFAULT_MAX_VAL_BYTES = TextConfig.max_val_bytes  # the trainer's default, declared once there

# mode: (its settings, whose docstring says what each number means; one-line help; an example of --set)
MODES = {"bpb": (BpbConfig, "perplexity and bits per byte on held-out text", "seq_len=512"),
         "icl": (IclConfig, "NCA in-context accuracy vs k frames of context", "k=[1,2,4]"),
         "speedup": (SpeedupConfig, "convergence speedup of --run over --baseline", "x=step")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode, (cls, help_text, example) in MODES.items():
        s = sub.add_parser(mode, help=help_text, description=inspect.cleandoc(cls.__doc__),
                           formatter_class=p.formatter_class)  # the CLI's, which a subparser does not inherit
        add_tree(s, cls, cls(baseline="BASE", run=["RUN"]) if cls is SpeedupConfig else cls(checkpoint="CKPT"),
                 f"eval {mode}", example)


def _validation_cap(cfg: BpbConfig, data, spec: str) -> int | None:
    """max_bytes, else what the checkpoint's own evaluation used: for the language checkpoint of an
    `ncalm experiment`, its bpb_bytes, as its table; then the stage's max_val_bytes (None: no cap; token
    files: all of val.bin, as the trainer) for its own corpus, else 1M."""
    from ncalm.data.tokens import is_bin_spec

    if cfg.max_bytes is not None:
        return cfg.max_bytes
    if cfg.data is not None and resolved_spec(cfg.data) != resolved_spec(data.text.source):  # however spelled
        return DEFAULT_MAX_VAL_BYTES
    base = None if is_bin_spec(spec) else data.text.max_val_bytes
    stage = Path(cfg.checkpoint).resolve().parent  # an experiment's language stage is OUT/seedS/ARM/language/
    try:
        saved = read_json(stage.parents[2] / "experiment.json").get("bpb_bytes")
        experiment = int(saved or 0) or None if stage.name == "language" else None
    except (OSError, IndexError, ValueError, TypeError, AttributeError):  # not an experiment's
        experiment = None
    return experiment if base is None else min(base, experiment or base)


def _load(cfg: BpbConfig | IclConfig):
    """(model, tokenizer, the DataConfig it was trained with (older ones: their train_config's; None where none
    is recorded, as in an HF folder), device, the identity of its data as the run recorded it (its spec's "data";
    older ones: {}))."""
    from ncalm.devices import torch_device
    from ncalm.lm.checkpoint import load_model

    device = torch_device(cfg.device)  # "auto" means nothing to torch: resolve it once, for every use
    model, tokenizer, meta = load_model(cfg.checkpoint, device=device)
    saved = meta["spec"]["config"]["data"] if "spec" in meta else (meta.get("train_config") or {}).get("data")
    with quietly():
        data = None if saved is None else DataConfig.from_dict(saved)
    return model, tokenizer, data, device, meta.get("spec", {}).get("data") or {}


def run_bpb(cfg: BpbConfig) -> dict:
    from ncalm.data.tokens import FILES, files_digest, is_bin_spec
    from ncalm.eval.bpb import evaluate_bin, evaluate_text

    model, tokenizer, data, device, trained = _load(cfg)
    if data is None:  # an HF folder: a default corpus would be a number about data the model never saw
        if cfg.data is None:
            raise SettingError("data", f"{cfg.checkpoint} records no training data (an HF folder holds only the "
                                       "model and tokenizer): name the corpus to evaluate with --data")
        data = DataConfig(kind="text")
    if tokenizer is None:
        if data.kind == "text":  # token shards without a tokenizer.json
            raise SettingError("checkpoint", f"{cfg.checkpoint} was trained on {data.text.source!r} without a "
                                             "tokenizer: bits per byte needs one to count bytes")
        raise SettingError("checkpoint", f"{cfg.checkpoint} was trained on NCA/Dyck tokens: "
                                         "bits per byte needs a language-stage checkpoint")
    if (cfg.seq_len or 0) > model.cfg.max_seq_len:  # before any work, and not blamed on the data
        raise SettingError("seq_len", f"must be in [1, {model.cfg.max_seq_len}] (the model's max_seq_len), "
                                      f"got {cfg.seq_len}")
    spec = cfg.data or data.text.source
    # The files' names and sizes, as the run recorded them (files_digest): an edited or replaced corpus under
    # the same name would give another split and tokens, and a number that is no longer the checkpoint's.
    try:
        files = files_digest(spec)
    except FileNotFoundError as exc:
        if cfg.data is not None:
            raise
        # The path as the training command was given it: a relative one names a file from where it was trained.
        relative = any(not Path(part.strip()).expanduser().is_absolute()
                       for part in spec.removeprefix("bin:").split(",") if part.strip())
        raise SettingError("data", f"{exc} here ({Path.cwd()}): it is the data path {cfg.checkpoint} recorded" +
                           (", relative to the folder it was trained in" if relative else "") +
                           "; pass --data with its path from here") from None
    same = None if FILES not in trained else files == trained[FILES]
    if same is False and cfg.data is None:
        where = ",".join(resolved_spec(spec))  # a relative path is another file from another working directory
        what = "train.bin's and val.bin's sizes or val.bin's content" if is_bin_spec(spec) else "files' names or sizes"
        raise SettingError("data", f"{spec}{f' ({where})' if where != spec else ''} changed since training: its "
                                   f"{what} differ from those {cfg.checkpoint} recorded; "
                                   f"pass --data {spec} to evaluate on it as it is now")
    # The user's choice, but said where it shows (resolved: the same corpus however its paths are spelled).
    if same is False and resolved_spec(spec) == resolved_spec(data.text.source):
        print(f"note: {spec} changed since {cfg.checkpoint} was trained on it; evaluating it as it is now",
              file=sys.stderr)
    val_percent = cfg.val_percent if cfg.val_percent is not None else data.text.val_percent
    # The cap is applied once, by the split itself, so that the checkpoint's own
    # cap selects exactly the trainer's validation documents; a larger one only adds
    # documents the split also held out.
    cap = _validation_cap(cfg, data, spec)
    options = dict(seq_len=cfg.seq_len, batch_size=cfg.batch_size, device=device, progress=cfg.progress)
    if is_bin_spec(spec):  # read as text, a shard directory would be its tokenizer.json
        try:
            r = evaluate_bin(model, tokenizer, spec, max_bytes=cap, **options)
        except ValueError as exc:
            raise SettingError("data", f"{exc}; give a text corpus or token files made with the checkpoint's "
                                       "tokenizer") from None
        val_percent = None  # the shards were split when they were made
    else:
        text = data.text.replace(source=spec, val_percent=val_percent)  # the training run's token cache, if it fits
        r = evaluate_text(model, tokenizer, text, max_bytes=cap, **options)
    print(f"{spec} (validation, {r.documents:,} document{'s' * (r.documents != 1)}, {r.bytes:,} bytes, "
          f"{r.tokens:,} tokens): loss {r.loss:.4f} nats/token, perplexity {r.perplexity:.3f}, "
          f"{r.bits_per_byte:.4f} bits/byte")
    # Which data: where from here, and its files' digest (same_data_as_training: null when none were recorded).
    return {"data": spec, "data_path": ",".join(resolved_spec(spec)), "data_files": files,
            "same_data_as_training": same, "val_percent": val_percent, "max_bytes": cap, **r.to_dict()}


def run_icl(cfg: IclConfig) -> dict:
    from ncalm.eval.icl import (copy_last_frame_predictor, greedy_predictor, icl_accuracy, icl_bytes, icl_sequences,
                                max_context_frames)
    from ncalm.memory import check_fits

    model, _, data, device, _ = _load(cfg)
    if data is None:
        raise SettingError("checkpoint", f"{cfg.checkpoint} records no NCA settings (an HF folder holds only the "
                                         "model): icl needs the ncalm checkpoint of an NCA stage")
    if data.kind != "nca":
        raise SettingError("checkpoint", f"{cfg.checkpoint} was not trained on NCA data (data kind {data.kind!r}); "
                                         "icl needs an NCA-stage checkpoint")
    nca = data.nca_config()
    max_k = max_context_frames(model.cfg.max_seq_len, nca.frame_len)
    ks = cfg.k or [k for k in (1, 2, 4, 8, 16, 32) if k <= max_k]
    if max_k == 0:
        raise SettingError("checkpoint", f"{cfg.checkpoint}'s context of {model.cfg.max_seq_len} tokens cannot hold "
                                         f"one frame of context plus the predicted frame ({2 * nca.frame_len} "
                                         "tokens): icl needs a model trained on longer sequences")
    if not ks or max(ks) > max_k or min(ks) < 1:
        raise SettingError("k", f"must lie in [1, {max_k}] for this model's context of {model.cfg.max_seq_len} "
                                "tokens")
    # Before any band's rules are made (the generator would otherwise blame the first band).
    check_fits(icl_bytes(nca, cfg.rules, max(ks) + 1, cfg.batch_size),
               f"rules: {cfg.rules:,} test rules of {max(ks) + 1} frames (k up to {max(ks)})")
    bands = {"train " + ("none" if nca.band is None else "%g-%g" % tuple(nca.band)): nca.band}
    for band in cfg.bands:
        lo, hi = band or (0.0, 2.0)
        bands["%g-%g" % (lo, hi)] = (lo, hi)
    predictors = {"model": greedy_predictor(model),
                  "copy-last-frame": copy_last_frame_predictor(nca.frame_len)}
    result = {name: {} for name in predictors}
    for band_name, band in bands.items():  # one set of test sequences per band, shared by the predictors
        try:
            tokens = icl_sequences(nca, cfg.seed, cfg.rules, max(ks) + 1, band)
        except ValueError as exc:  # the generator found no rule inside the band
            raise SettingError("bands", f"{band_name}: {exc}") from None
        for name, predict in predictors.items():
            slow = name == "model"  # the copy baseline is instant: a bar for it would only flash by
            result[name][band_name] = icl_accuracy(predict, tokens, nca.frame_len, nca.colors, nca.patch, ks,
                                                   cfg.batch_size, progress=slow and cfg.progress,
                                                   desc=f"icl {band_name}")
    print(f"{'band':>14} {'k':>3}  {'cell acc':>8} {'frame acc':>9}   (copy last frame: cell, frame)")
    for band in bands:
        for row, base in zip(result["model"][band], result["copy-last-frame"][band]):
            print(f"{band:>14} {row['k']:>3}  {row['cell_acc']:8.3f} {row['frame_acc']:9.3f}   "
                  f"({base['cell_acc']:.3f}, {base['frame_acc']:.3f})")
    return {"nca": nca.to_dict(), "seed": cfg.seed, "rules": cfg.rules, "ks": ks, **result}


def run_speedup(cfg: SpeedupConfig) -> dict:
    from ncalm.eval.speedup import MEASURED, read_curve, speedup

    base = read_curve(cfg.baseline, cfg.x, cfg.y)
    result = {"baseline": cfg.baseline, "runs": {}}
    for path in cfg.run:
        try:
            s = speedup(base, read_curve(path, cfg.x, cfg.y))
        except ValueError as exc:  # "baseline: ..." / "run: ...": say which files
            raise ValueError(f"baseline {cfg.baseline}, run {path}: {exc}") from None
        result["runs"][path] = s.to_dict()
        timed = f" ({s.run_tokens:,.0f} vs {s.baseline_tokens:,.0f} {cfg.x})" if s.status == MEASURED else ""
        change = (f" (change {100 * (s.run_final / s.baseline_final - 1):+.2f}%, negative = better)"  # as tables
                  if s.improvement_pct is not None else "")
        print(f"{path}: {s.describe()}{timed}; final {cfg.y} {s.run_final:.4f} vs {s.baseline_final:.4f}{change}")
    return result


def run(args: argparse.Namespace) -> int:
    cfg = tree_config(MODES[args.mode][0], args)
    result = {"bpb": run_bpb, "icl": run_icl, "speedup": run_speedup}[args.mode](cfg)
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(cfg.json, result)
    return 0
