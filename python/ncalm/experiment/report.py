"""Summaries of an experiment's runs: results.json, a markdown table and the loss-curve plot.

Per arm, over seeds: the final language-stage validation loss (mean, sample
standard deviation, min, max), perplexity, bits per byte, the improvement
over scratch and the convergence speedup over scratch. The last two are
paired by seed (same language data order and initialisation) and then
averaged. The speedup mean covers only the seeds where it was measured; the
others are counted by status (see ncalm.eval.speedup): "not reached"
(never down to scratch's final loss), "at start" (already there at its first
evaluation: the speedup is only a lower bound), "n/a" (no crossing to time,
e.g. one evaluation per curve with eval_every=0) and "diverged" (a NaN or
infinite validation loss in the arm's or scratch's curve).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ncalm.atomic_json import write_json
from ncalm.eval.plots import plot_loss_curves
from ncalm.eval.speedup import AT_START, DIVERGED, MEASURED, NOT_MEASURABLE, NOT_REACHED, speedup

SCRATCH = "scratch"


def _stats(values: list[float | None]) -> dict | None:
    """Mean, sample std, min, max over the finite values; ``diverged`` counts the others (NaN, inf, None)."""
    if not values:
        return None
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    diverged = {"diverged": len(values) - len(finite)} if len(finite) < len(values) else {}
    if not finite:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0, **diverged}
    a = np.asarray(finite)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size), **diverged}


def _finite(obj):
    """obj with NaN and inf as None: results.json stays strict JSON when a run diverged."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def summarize(records: list[dict]) -> dict:
    """``{arm: summary}`` in first-seen order (see module docstring)."""
    by_arm: dict[str, list[dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], []).append(r)
    scratch = {r["seed"]: r for r in by_arm.get(SCRATCH, [])}
    out = {}
    for arm, runs in by_arm.items():
        s = {
            "kind": runs[0]["kind"], "band": runs[0]["band"], "seeds": [r["seed"] for r in runs],
            "final_val_loss": _stats([r["final_val_loss"] for r in runs]),
            "perplexity": _stats([r["perplexity"] for r in runs]),
            "bpb": _stats([r["bpb"]["bits_per_byte"] for r in runs if r.get("bpb")]),
            "prepretrain_tokens": runs[0]["prepretrain"]["tokens"] if runs[0]["prepretrain"] else 0,
            "language_tokens": runs[0]["language"]["tokens"],
            "train_seconds": _stats([r["train_seconds"] for r in runs]),
            "wall_seconds": _stats([r["wall_seconds"] for r in runs]),
        }
        paired = [(scratch[r["seed"]], r) for r in runs if r["seed"] in scratch and arm != SCRATCH]
        if paired:
            sp = [speedup(b["language"]["val_curve"], r["language"]["val_curve"]) for b, r in paired]
            s["improvement_pct"] = _stats([x.improvement_pct for x in sp])
            s["speedup"] = _stats([x.speedup for x in sp if x.status == MEASURED])
            s["speedup_not_reached"] = sum(x.status == NOT_REACHED for x in sp)
            s["speedup_at_start"] = sum(x.status == AT_START for x in sp)
            s["speedup_not_measurable"] = sum(x.status == NOT_MEASURABLE for x in sp)
            s["speedup_diverged"] = sum(x.status == DIVERGED for x in sp)
        out[arm] = s
    return out


def _pm(stats: dict | None, fmt: str, unit: str = "") -> str:
    """'2.3500 ± 0.0100', '+1.20 %', '2.35 (1 diverged)', 'diverged'."""
    if stats is None:
        return "-"
    if stats["n"] == 0:
        return "diverged"
    text = format(stats["mean"], fmt) + (f" ± {format(stats['std'], fmt.replace('+', ''))}" if stats["n"] > 1 else "")
    return text + unit + (f" ({stats['diverged']} diverged)" if stats.get("diverged") else "")


def _speedup_cell(s: dict) -> str:
    """'1.50x', '1.50x (1 seed(s) not reached)', 'at start', 'n/a', ..."""
    others = [(s[key], label) for key, label in (("speedup_not_reached", NOT_REACHED),
                                                   ("speedup_at_start", AT_START),
                                                   ("speedup_not_measurable", NOT_MEASURABLE),
                                                   ("speedup_diverged", DIVERGED)) if s.get(key)]
    if s["speedup"] is None and len(others) == 1:
        return others[0][1]  # every seed alike
    notes = ", ".join(f"{n} seed(s) {label}" for n, label in others)
    if s["speedup"] is None:
        return notes
    measured = _pm(s["speedup"], ".2f") + "x"
    return f"{measured} ({notes})" if notes else measured


def markdown_table(summary: dict) -> str:
    head = ("| arm | seeds | first-stage tokens | language tokens | final val loss | perplexity "
            "| bits/byte | vs scratch | speedup | train time (s) | wall time (s) |")
    lines = [head, "|" + "---|" * 11]
    for arm, s in summary.items():
        if "improvement_pct" in s:
            imp = _pm(s["improvement_pct"], "+.2f", " %")
            sp = _speedup_cell(s)
        else:
            imp = sp = "-"
        lines.append(
            f"| {arm} | {len(s['seeds'])} | {s['prepretrain_tokens']:,} | {s['language_tokens']:,} "
            f"| {_pm(s['final_val_loss'], '.4f')} | {_pm(s['perplexity'], '.3f')} | {_pm(s['bpb'], '.4f')} "
            f"| {imp} | {sp} | {_pm(s['train_seconds'], '.0f')} | {_pm(s['wall_seconds'], '.0f')} |")
    return "\n".join(lines) + "\n"


def write_report(records: list[dict], out_dir: str | Path, config: dict, wall_seconds: float | None = None) -> dict:
    """results.json, results.md and curves.png in ``out_dir``; returns the summary."""
    out = Path(out_dir)
    summary = summarize(records)
    table = markdown_table(summary)
    note = ("Mean ± sample std over seeds; a seed whose loss is NaN or infinite is counted as diverged instead. 'vs scratch': final validation loss improvement, paired by seed. "
            "'speedup': language tokens scratch needs to reach its final validation loss / tokens this arm "
            "needs (interpolated); 'at start': the arm was already at or below that loss at its first "
            "evaluation; 'n/a': no crossing to time (a curve with a single evaluation, as with eval_every=0, "
            "or a scratch run no lower at the end than at its first evaluation); 'diverged': a validation "
            "loss of the arm or of scratch is NaN or infinite. "
            "Train time: optimizer steps of both stages; wall time: both stages with "
            "evaluations, data loading and the bits-per-byte pass (for a resumed stage, its last attempt only).")
    (out / "results.md").write_text(f"# {config.get('name', 'experiment')}\n\n{table}\n{note}\n")
    arms = {arm: [r["language"]["val_curve"] for r in records if r["arm"] == arm] for arm in summary}
    plot_loss_curves(arms, out / "curves.png", title=f"{config.get('name', 'experiment')}: language stage")
    write_json(out / "results.json", _finite({"config": config, "summary": summary, "runs": records,
                                              "wall_seconds": wall_seconds}))
    return summary
