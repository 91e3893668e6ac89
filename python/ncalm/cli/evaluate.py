"""Evaluate checkpoints and runs: bits per byte on held-out text (bpb), NCA
in-context accuracy (icl), convergence speedup between runs' validation curves
(speedup). Run `ncalm eval MODE --help` for each mode's options."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ncalm.nca.config import parse_band
from ncalm.settings import parse_count
from ncalm.devices import DEVICE_HELP

DEFAULT_MAX_VAL_BYTES = 1_000_000  # the trainer's default max_val_bytes

# What each number means, for `ncalm eval MODE --help` (the modules' docstrings say it at length).
BPB_DESCRIPTION = """\
Perplexity and bits per byte of a language-stage checkpoint on held-out text.

The documents become one stream EOS d1 EOS d2 ..., cut into windows of
--seq-len predictions with no overlap, so every token is predicted once:
  loss          mean next-token cross-entropy, nats/token
  perplexity    exp(loss)
  bits/byte     total nats / (ln 2 x UTF-8 bytes of the documents)
Bits per byte does not depend on the tokenizer: byte-level and BPE models compare."""

ICL_DESCRIPTION = """\
In-context learning on NCA: can an NCA-stage model infer an unseen rule from
k frames of its trajectory?

For each band, --rules fresh rules (never in training) are simulated; the
model sees k frames plus the next frame's START and greedily decodes that
frame. Tokens are decoded back to cells:
  cell acc      fraction of cells right
  frame acc     fraction of frames with every cell right
The baseline in parentheses copies the last frame it was shown: what a model
blind to the rule scores. The training band is always evaluated."""

SPEEDUP_DESCRIPTION = """\
Convergence speedup of each --run over --baseline, from their metrics.jsonl
validation curves (the same language data and schedule, e.g. an NCA arm vs
scratch):
  speedup = tokens the baseline needs to reach its final loss
            / tokens the run needs to reach that loss
each "needs" the first crossing, linearly interpolated between evaluations.
Without such a crossing the run gets a status instead:
  already at the baseline's final loss at its first evaluation
                the speedup shown is only a lower bound
  never reaches, n/a (a curve with one evaluation, or a baseline ending no
  lower than it starts), diverged (a NaN or infinite loss)
                no speedup number
The final-loss improvement in percent is printed whenever both final losses
are finite."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ncalm.cli.main import HelpFormatter as fmt  # the CLI's: no "(default: None)" after "default: ..."

    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)

    b = sub.add_parser("bpb", help="perplexity and bits per byte on held-out text", formatter_class=fmt,
                       description=BPB_DESCRIPTION)
    b.add_argument("--checkpoint", required=True, help="language-stage checkpoint")
    b.add_argument("--data", default=None,
                   help="corpus spec (stdlib, files/dirs/globs, hf:NAME), or token shards (bin:DIR, or a DIR "
                        "holding train.bin and val.bin: val.bin is evaluated, and DIR must hold the "
                        "checkpoint's tokenizer.json); default: the checkpoint's")
    b.add_argument("--val-percent", type=float, default=None,
                   help="validation share of the split; default: the checkpoint's, else 2")
    b.add_argument("--max-bytes", type=parse_count, default=None,
                   help="cap on validation text, e.g. 500k, applied as the trainer applies max_val_bytes: "
                        "documents are added in the split's order until their total UTF-8 bytes reach it, "
                        "the last one kept whole (val.bin: tokens until their bytes reach it); default, when "
                        "--data is the checkpoint's corpus: what its own report used (an experiment's "
                        "bpb_bytes, within the stage's max_val_bytes; token files: all of val.bin), else 1M")
    b.add_argument("--seq-len", type=int, default=None, help="window length; default: the model's max_seq_len")
    b.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    b.add_argument("--device", default="auto", help=DEVICE_HELP)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--json", default=None, help="also write the result to this JSON file")

    i = sub.add_parser("icl", help="NCA in-context accuracy vs k frames of context", formatter_class=fmt,
                       description=ICL_DESCRIPTION)
    i.add_argument("--checkpoint", required=True, help="NCA-stage checkpoint")
    i.add_argument("--k", type=int, nargs="+", default=None,
                   help="frames of context; default: 1, 2, 4, ... up to what fits the model's context")
    i.add_argument("--rules", type=int, default=64, help="fresh rules per band")
    i.add_argument("--bands", nargs="*", type=parse_band, default=[(0.0, 0.3), (0.3, 0.5)],
                   help="other complexity bands 'LOWER,UPPER' besides the training band ('none': unfiltered); "
                        "default: 0.0,0.3 0.3,0.5")
    i.add_argument("--seed", type=int, default=0, help="generator seed of the test rules")
    i.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    i.add_argument("--device", default="auto", help=DEVICE_HELP)
    i.add_argument("--no-progress", action="store_true", help="no progress bars")
    i.add_argument("--json", default=None, help="also write the result to this JSON file")

    s = sub.add_parser("speedup", help="convergence speedup of --run over --baseline", formatter_class=fmt,
                       description=SPEEDUP_DESCRIPTION)
    s.add_argument("--baseline", required=True, help="metrics JSONL of the baseline (e.g. scratch), or its run directory")
    s.add_argument("--run", required=True, nargs="+", help="metrics JSONL (or run directory) of one or more other runs")
    s.add_argument("--x", default="tokens", help="JSONL key of the token count")
    s.add_argument("--y", default="val_loss", help="JSONL key of the validation loss")
    s.add_argument("--json", default=None, help="also write the result to this JSON file")


def _write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2) + "\n")


def _train_data(meta: dict):
    """The DataConfig a checkpoint was trained with (older checkpoints: their saved train_config's)."""
    from ncalm.data.config import DataConfig
    from ncalm.settings import quietly

    saved = meta["spec"]["config"]["data"] if "spec" in meta else (meta.get("train_config") or {}).get("data")
    with quietly():
        return DataConfig.from_dict(saved or {"kind": "text"})


def _same_corpus(a: str, b: str) -> bool:
    """Whether two corpus specs name the same data, however their paths are spelled."""
    def parts(spec: str) -> list[str]:
        if spec == "stdlib" or spec.startswith("hf:"):
            return [spec]
        # bin:DIR and DIR (holding train.bin) are the same shards.
        return [str(Path(p.strip()).expanduser().resolve())
                for p in spec.removeprefix("bin:").split(",") if p.strip()]
    return parts(a) == parts(b)


def _validation_cap(args, data, spec: str) -> int | None:
    """--max-bytes, else what the checkpoint's own evaluation used: for the language checkpoint of an
    `ncalm experiment`, its bpb_bytes, as its table; then the stage's max_val_bytes (None: no cap; token
    files: all of val.bin, as the trainer) for its own corpus, else 1M."""
    from ncalm.data.tokens import is_bin_spec

    if args.max_bytes is not None:
        return args.max_bytes
    own = args.data is None or _same_corpus(args.data, data.text.source)
    if not own:
        return DEFAULT_MAX_VAL_BYTES
    base = None if is_bin_spec(spec) else data.text.max_val_bytes
    experiment = _experiment_bpb_bytes(Path(args.checkpoint))
    return experiment if base is None else min(base, experiment or base)


def _experiment_bpb_bytes(checkpoint: Path) -> int | None:
    """bpb_bytes of the experiment whose language stage wrote ``checkpoint`` (OUT/seedS/ARM/language/), or None."""
    path = checkpoint.resolve().parent.parent.parent.parent / "experiment.json"
    if checkpoint.resolve().parent.name != "language" or not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text()).get("bpb_bytes") or 0) or None
    except (ValueError, TypeError, AttributeError):
        return None


def _bin_eval(args, model, tokenizer, spec: str, cap: int | None, device):
    """Bits per byte on the val.bin of token files (bytes from meta.json, else from the tokenizer's vocabulary)."""
    from ncalm.eval.bpb import evaluate_bin

    try:
        return evaluate_bin(model, tokenizer, spec, seq_len=args.seq_len, batch_size=args.batch_size,
                            device=device, max_bytes=cap, progress=not args.no_progress)
    except ValueError as exc:
        raise ValueError(f"--data {exc}; pass --data with a text corpus or token files made with the "
                         "checkpoint's tokenizer") from None


def _load(args):
    """(model, tokenizer, training data settings, device) of --checkpoint, after the options both modes share."""
    from ncalm.lm.checkpoint import load_model
    from ncalm.devices import torch_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = torch_device(args.device)  # "auto" means nothing to torch: resolve it once, for every use
    model, tokenizer, meta = load_model(args.checkpoint, device=device)
    return model, tokenizer, _train_data(meta), device


def run_bpb(args) -> dict:
    from ncalm.data.tokens import is_bin_spec
    from ncalm.eval.bpb import evaluate_text

    if args.val_percent is not None and not 0 < args.val_percent < 100:
        raise ValueError(f"--val-percent must be in (0, 100), got {args.val_percent:g}")
    model, tokenizer, data, device = _load(args)
    if tokenizer is None:
        if data.kind == "text":  # token shards without a tokenizer.json
            raise ValueError(f"--checkpoint {args.checkpoint} was trained on {data.text.source!r} without a "
                             "tokenizer: bits per byte needs one to count bytes")
        raise ValueError(f"--checkpoint {args.checkpoint} was trained on NCA/Dyck tokens: "
                         "bits per byte needs a language-stage checkpoint")
    max_len = model.cfg.max_seq_len
    if args.seq_len is not None and not 1 <= args.seq_len <= max_len:
        raise ValueError(f"--seq-len must be in [1, {max_len}] (the model's max_seq_len), got {args.seq_len}")
    spec = args.data or data.text.source
    val_percent = args.val_percent if args.val_percent is not None else data.text.val_percent
    # The cap is applied once, by the split itself, so that the checkpoint's own
    # cap selects exactly the trainer's validation documents; a larger one only adds
    # documents the split also held out.
    cap = _validation_cap(args, data, spec)
    if is_bin_spec(spec):  # read as text, a shard directory would be its tokenizer.json
        r = _bin_eval(args, model, tokenizer, spec, cap, device)
        val_percent = None  # the shards were split when they were made
    else:
        text = data.text.replace(source=spec, val_percent=val_percent)  # the training run's token cache, if it fits
        r = evaluate_text(model, tokenizer, text, seq_len=args.seq_len, batch_size=args.batch_size,
                          device=device, max_bytes=cap, progress=not args.no_progress)
    print(f"{spec} (validation, {r.documents} documents, {r.bytes:,} bytes, {r.tokens:,} tokens): "
          f"loss {r.loss:.4f} nats/token, perplexity {r.perplexity:.3f}, {r.bits_per_byte:.4f} bits/byte")
    return {"data": spec, "val_percent": val_percent, "max_bytes": cap, **r.to_dict()}


def run_icl(args) -> dict:
    from ncalm.eval.icl import (copy_last_frame_predictor, greedy_predictor, icl_accuracy, icl_sequences,
                                      max_context_frames)
    # Checked here, before any work, so that the band loop below only reports band errors.
    if not 1 <= args.rules <= 2**32:  # the ids from ICL_OFFSET up
        raise ValueError(f"--rules must be in [1, 2**32], got {args.rules}")
    if not 0 <= args.seed < 2**64:
        raise ValueError(f"--seed must be in [0, 2**64), got {args.seed}")
    model, _, data, device = _load(args)
    if data.kind != "nca":
        raise ValueError(f"--checkpoint {args.checkpoint} was not trained on NCA data "
                         f"(data kind {data.kind!r}); icl needs an NCA-stage checkpoint")
    cfg = data.nca_config()
    max_k = max_context_frames(model.cfg.max_seq_len, cfg.frame_len)
    ks = args.k or [k for k in (1, 2, 4, 8, 16, 32) if k <= max_k]
    if not ks or max(ks) > max_k or min(ks) < 1:
        raise ValueError(f"--k must lie in [1, {max_k}] for this model's context of {model.cfg.max_seq_len} tokens")
    bands = {"train " + ("none" if cfg.band is None else "%g-%g" % tuple(cfg.band)): cfg.band}
    for band in args.bands:
        lo, hi = band or (0.0, 2.0)
        bands["%g-%g" % (lo, hi)] = (lo, hi)
    predictors = {"model": greedy_predictor(model, device),
                  "copy-last-frame": copy_last_frame_predictor(cfg.frame_len)}
    result = {name: {} for name in predictors}
    for band_name, band in bands.items():  # one set of test sequences per band, shared by the predictors
        try:
            tokens = icl_sequences(cfg, args.seed, args.rules, max(ks) + 1, band)
        except ValueError as exc:  # the generator found no rule inside the band
            raise ValueError(f"--bands {band_name}: {exc}") from None
        for name, predict in predictors.items():
            slow = name == "model"  # the copy baseline is instant: a bar for it would only flash by
            result[name][band_name] = icl_accuracy(predict, tokens, cfg.frame_len, cfg.colors, cfg.patch, ks,
                                                   args.batch_size, progress=slow and not args.no_progress,
                                                   desc=f"icl {band_name}")
    print(f"{'band':>14} {'k':>3}  {'cell acc':>8} {'frame acc':>9}   (copy last frame: cell, frame)")
    for band in bands:
        for row, base in zip(result["model"][band], result["copy-last-frame"][band]):
            print(f"{band:>14} {row['k']:>3}  {row['cell_acc']:8.3f} {row['frame_acc']:9.3f}   "
                  f"({base['cell_acc']:.3f}, {base['frame_acc']:.3f})")
    return {"nca": cfg.to_dict(), "seed": args.seed, "rules": args.rules, "ks": ks, **result}


def run_speedup(args) -> dict:
    from ncalm.eval.speedup import MEASURED, read_curve, speedup

    base = read_curve(args.baseline, args.x, args.y)
    result = {"baseline": args.baseline, "runs": {}}
    for path in args.run:
        try:
            s = speedup(base, read_curve(path, args.x, args.y))
        except ValueError as exc:  # "baseline: ..." / "run: ...": say which files
            raise ValueError(f"--baseline {args.baseline}, --run {path}: {exc}") from None
        result["runs"][path] = s.to_dict()
        timed = f" ({s.run_tokens:,.0f} vs {s.baseline_tokens:,.0f} {args.x})" if s.status == MEASURED else ""
        change = f" ({s.improvement_pct:+.2f}%)" if s.improvement_pct is not None else ""
        print(f"{path}: {s.describe()}{timed}; final {args.y} {s.run_final:.4f} vs {s.baseline_final:.4f}{change}")
    return result


def run(args: argparse.Namespace) -> int:
    result = {"bpb": run_bpb, "icl": run_icl, "speedup": run_speedup}[args.mode](args)
    _write_json(args.json, result)
    return 0
