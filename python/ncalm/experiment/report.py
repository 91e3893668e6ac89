"""Summaries of an experiment's runs: results.json, a markdown table and the loss-curve plot.

Per arm over seeds, in the paper's terms (its headline: perplexity 14.66 -> 13.82 = -5.7% against
scratch); what each column is and how it is measured is said once, in NOTE, printed under the table.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ncalm.atomic_json import json_safe, write_json, write_text
from ncalm.eval.plots import plot_loss_curves
from ncalm.eval.speedup import AT_START, DIVERGED, MEASURED, NOT_MEASURABLE, NOT_REACHED, speedup
from ncalm.eval.stats import mean_interval, paired_t_test, perplexity
from ncalm.experiment.config import SCRATCH


def finite(*xs: float | None) -> bool:
    """Whether every x is a number: not None, NaN or infinite (a diverged run's loss is one of these)."""
    return all(x is not None and math.isfinite(x) for x in xs)


def _stats(values: list[float | None]) -> dict | None:
    """Mean, sample std, 95% t interval (low, high), min, max over the finite values; ``diverged`` counts
    the others (NaN, inf, None)."""
    if not values:
        return None
    kept = [float(v) for v in values if finite(v)]
    diverged = {"diverged": len(values) - len(kept)} if len(kept) < len(values) else {}
    if not kept:
        return {"mean": None, "std": None, "low": None, "high": None, "min": None, "max": None, "n": 0, **diverged}
    a = np.asarray(kept)
    ci = mean_interval(kept)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "low": ci["low"],
            "high": ci["high"], "min": float(a.min()), "max": float(a.max()), "n": int(a.size), **diverged}


def _eval_loss(r: dict) -> float | None:
    """The run's validation loss from the bits-per-byte pass (one validation set for every column)."""
    bpb = r.get("bpb")
    return bpb["loss"] if bpb and bpb.get("loss") is not None else r["final_val_loss"]


def _seed_speedups(sp: list, first_tokens: list[float], language_tokens: list[float]) -> list[dict]:
    """Per seed: status, speedup (or bound) and the compute-adjusted one that adds the first stage's tokens."""
    rows = []
    for x, first, budget in zip(sp, first_tokens, language_tokens):
        row = {"status": x.status, "speedup": None, "adjusted": None}
        if x.status in (MEASURED, AT_START):  # at start: run_tokens is an upper bound, so these are lower bounds
            row["speedup"] = x.speedup
            row["adjusted"] = x.baseline_tokens / (x.run_tokens + first) if x.run_tokens + first > 0 else math.inf
        elif x.status == NOT_REACHED:  # it would need more than its whole budget: upper bounds
            row["speedup"] = x.baseline_tokens / budget
            row["adjusted"] = x.baseline_tokens / (budget + first)
        rows.append(row)
    return rows


def summarize(records: list[dict]) -> dict:
    """``{arm: summary}`` in first-seen order (NOTE says what each entry is)."""
    by_arm: dict[str, list[dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], []).append(r)
    scratch = {r["seed"]: r for r in by_arm.get(SCRATCH, [])}
    out = {}
    for arm, runs in by_arm.items():
        losses = [_eval_loss(r) for r in runs]
        first = runs[0]["prepretrain"]
        firsts = [r["prepretrain"] or {} for r in runs]
        icls = [f.get("icl") or {} for f in firsts]
        s = {
            "kind": runs[0]["kind"], "band": runs[0]["band"], "seeds": [r["seed"] for r in runs],
            "final_val_loss": _stats(losses),
            "perplexity": _stats([math.inf if v is None else perplexity(v) for v in losses]),
            "bpb": _stats([r["bpb"]["bits_per_byte"] for r in runs if r.get("bpb")]),
            "prepretrain_tokens": first["tokens"] if first else 0,
            "language_tokens": runs[0]["language"]["tokens"],
            "first_stage_loss": _stats([f.get("val_loss") for f in firsts]) if first else None,
            "first_stage_unigram_entropy": _stats([f.get("val_unigram_entropy") for f in firsts]) if first else None,
            "first_stage_icl": _stats([i.get("cell_acc") for i in icls]) if any(icls) else None,
            "first_stage_icl_copy": _stats([i.get("copy_cell_acc") for i in icls]) if any(icls) else None,
            "train_seconds": _stats([r["train_seconds"] for r in runs]),
            "wall_seconds": _stats([r["wall_seconds"] for r in runs]),
        }
        paired = [(scratch[r["seed"]], r) for r in runs if r["seed"] in scratch and arm != SCRATCH]
        if paired:
            s["paired_seeds"] = [r["seed"] for _, r in paired]  # what every column against scratch is over
            pairs = [(_eval_loss(b), _eval_loss(r)) for b, r in paired]  # (scratch, arm) per seed
            ok = [(b, a) if finite(b, a) else None for b, a in pairs]
            s["loss_change_pct"] = _stats([(p[1] / p[0] - 1) * 100 if p else None for p in ok])
            s["perplexity_change_pct"] = _stats([math.expm1(p[1] - p[0]) * 100 if p else None for p in ok])
            ok_pairs = [p for p in ok if p]
            s["paired_t"] = paired_t_test([a for _, a in ok_pairs], [b for b, _ in ok_pairs])
            sp = [speedup(b["language"]["val_curve"], r["language"]["val_curve"]) for b, r in paired]
            s["improvement_pct"] = _stats([x.improvement_pct for x in sp])  # of the curves' last points
            s["speedup"] = _stats([x.speedup for x in sp if x.status == MEASURED])
            s["speedup_seeds"] = _seed_speedups(sp, [(r["prepretrain"] or {}).get("tokens", 0) for _, r in paired],
                                                [r["language"]["tokens"] for _, r in paired])
            for name, status in (("not_reached", NOT_REACHED), ("at_start", AT_START),
                                 ("not_measurable", NOT_MEASURABLE), ("diverged", DIVERGED)):
                s[f"speedup_{name}"] = sum(x.status == status for x in sp)
        out[arm] = s
    return out


def _pm(stats: dict | None, fmt: str, unit: str = "", interval: bool = True) -> str:
    """'2.3500 [2.3400, 2.3600]' (mean and 95% interval), '+1.20 %', '2.35 (1 diverged)', 'diverged'."""
    if stats is None:
        return "-"
    if stats["n"] == 0:
        return "diverged"
    text = format(stats["mean"], fmt) + unit
    if stats["n"] > 1 and interval:
        text += f" [{format(stats['low'], fmt)}, {format(stats['high'], fmt)}]"
    return text + (f" ({stats['diverged']} diverged)" if stats.get("diverged") else "")


def _speedup_cell(s: dict, key: str = "speedup") -> str:
    """'1.50x', '1.50x [1.20, 1.80]' when every seed was measured; else each seed's value or bound:
    '1.50x, not reached (< 0.95x)', 'at start (>= 2.00x)', 'n/a', 'diverged'."""
    rows = s["speedup_seeds"]
    if all(r["status"] == MEASURED for r in rows):
        return _pm(_stats([r[key] for r in rows]), ".2f", "x")
    if len({r["status"] for r in rows}) == 1 and rows[0]["status"] in (NOT_MEASURABLE, DIVERGED):
        return rows[0]["status"]  # every seed alike
    cells = []
    for r in rows:
        value = r[key]
        if r["status"] == MEASURED:
            cells.append(f"{value:.2f}x")
        elif r["status"] == AT_START:
            cells.append("at start" + (f" (>= {value:.2f}x)" if math.isfinite(value) else ""))
        elif r["status"] == NOT_REACHED:
            cells.append(f"not reached (< {value:.2f}x)")
        else:
            cells.append(r["status"])
    return ", ".join(cells)


def _first_stage_cell(s: dict) -> str:
    loss, entropy = s["first_stage_loss"], s["first_stage_unigram_entropy"]
    if loss is None or entropy is None or entropy["n"] == 0:
        return "-"
    text = f"{_pm(loss, '.3f')} / {entropy['mean']:.3f}"
    icl, copy = s.get("first_stage_icl"), s.get("first_stage_icl_copy")
    if icl and icl["n"]:
        text += f"; in context {_pm(icl, '.3f', interval=False)} vs copy {copy['mean']:.3f}"
    return text


def seeds_cell(n: int, paired: int) -> str:
    """'3', or '3 (2 paired)' where only 2 of an arm's 3 seeds have a scratch run to compare with."""
    return str(n) if paired == n else f"{n} ({paired} paired)"


def markdown_table(summary: dict) -> str:
    head = ("| arm | seeds | first-stage tokens "
            "| first stage: val loss / unigram entropy (NCA: in-context cell accuracy vs copy) | language tokens "
            "| val loss | perplexity | bits/byte | perplexity change | loss change | paired t p | speedup "
            "| compute-adjusted speedup | train time (s) | wall time (s) |")
    lines = [head, "|" + "---|" * 15]
    for arm, s in summary.items():
        seeds = seeds_cell(len(s["seeds"]), len(s.get("paired_seeds", s["seeds"])))
        if "speedup_seeds" in s:
            ppl, loss = _pm(s["perplexity_change_pct"], "+.2f", " %"), _pm(s["loss_change_pct"], "+.2f", " %")
            p = s["paired_t"]["p"]
            pval = "-" if p is None else f"{p:.3f}"
            sp, adj = _speedup_cell(s), _speedup_cell(s, "adjusted")
        else:
            ppl = loss = pval = sp = adj = "-"
        lines.append(
            f"| {arm} | {seeds} | {s['prepretrain_tokens']:,} | {_first_stage_cell(s)} "
            f"| {s['language_tokens']:,} | {_pm(s['final_val_loss'], '.4f')} | {_pm(s['perplexity'], '.3f')} "
            f"| {_pm(s['bpb'], '.4f')} | {ppl} | {loss} | {pval} | {sp} | {adj} "
            f"| {_pm(s['train_seconds'], '.0f', interval=False)} | {_pm(s['wall_seconds'], '.0f', interval=False)} |")
    return "\n".join(lines) + "\n"


NOTE = ("Mean over seeds, with the 95% t interval in brackets where there are several; a seed whose loss is NaN "
        "or infinite is counted as diverged instead. Val loss, perplexity and bits/byte: one pass over the "
        "language stage's validation split (`ncalm eval bpb` on the language checkpoint reproduces it; the "
        "trainer's last validation loss when bpb_bytes is 0). Perplexity and loss change: against scratch, "
        "paired by seed (seeds 'N (M paired)': only M have a scratch run), negative = better; paired t p: two-sided paired t-test of the arm's loss against "
        "scratch's. Speedup: language tokens scratch needs to reach its final validation loss / tokens this "
        "arm needs (interpolated on the trainer's validation curves); compute-adjusted: the same with the "
        "first stage's tokens added to the arm's. When a seed was not measured, every seed is listed: 'not "
        "reached' (never down to scratch's final loss: below scratch's tokens / the arm's budget), 'at start' "
        "(already there at its first evaluation: a lower bound), 'n/a' (no crossing to time, e.g. one "
        "evaluation per curve), 'diverged'. First stage: its final validation loss against the unigram "
        "entropy of its validation data (what ignoring the context scores), and for NCA its cell accuracy "
        "predicting the next frame of fresh rules in context (icl_rules of them, as many frames as fit) against "
        "copying the last frame. Train time: optimizer steps of "
        "both stages; wall time: both stages with evaluations, data loading and the bits-per-byte pass (for "
        "a resumed stage, its last attempt only).")


def write_report(records: list[dict], out_dir: str | Path, config: dict, wall_seconds: float | None = None) -> dict:
    """results.json, results.md and curves.png in ``out_dir``; returns the summary."""
    out = Path(out_dir)
    summary = summarize(records)
    name = config.get("name", "experiment")
    write_text(out / "results.md", f"# {name}\n\n{markdown_table(summary)}\n{NOTE}\n")
    arms = {arm: [r["language"]["val_curve"] for r in records if r["arm"] == arm] for arm in summary}
    plot_loss_curves(arms, out / "curves.png", title=f"{name}: language stage")
    write_json(out / "results.json", json_safe({"config": config, "summary": summary, "runs": records,
                                                 "wall_seconds": wall_seconds}))
    return summary
