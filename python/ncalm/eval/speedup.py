"""Convergence speedup between two validation curves.

A curve is a sequence of ``(tokens, loss)`` evaluation points with strictly
increasing ``tokens``. The speedup of a run over a baseline is

    tokens the baseline needs to reach its final loss
    -------------------------------------------------
    tokens the run needs to reach that same loss

where "needs to reach" is the first crossing of the target, linearly
interpolated between the two evaluation points around it. Only such a
crossing is a measurement; every other case gets a ``status`` and no invented
number (see :func:`speedup`). A loss that is not finite (a diverged run logs
NaN) is a status too, not an error, so one bad run cannot hide the others.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ncalm.atomic_json import json_records, json_safe
from ncalm.eval.config import SpeedupConfig
from ncalm.train.config import METRICS

Curve = Sequence[tuple[float, float]]


def _check_curve(curve: Curve, name: str, finite_loss: bool = True) -> None:
    if len(curve) == 0:
        raise ValueError(f"{name}: the curve is empty; need at least one (tokens, loss) point")
    prev = -math.inf
    for i, (t, loss) in enumerate(curve):
        if not (math.isfinite(t) and (math.isfinite(loss) or not finite_loss)):
            raise ValueError(f"{name}: point {i} = ({t}, {loss}) is not finite")
        if t < 0:
            raise ValueError(f"{name}: point {i} has tokens={t}; token counts are >= 0")
        if t <= prev:
            raise ValueError(f"{name}: tokens must increase strictly; point {i} has {t} after {prev}")
        prev = t


def tokens_to_reach(curve: Curve, target: float) -> float | None:
    """Tokens at which ``curve`` first reaches ``loss <= target`` (interpolated), or None.

    If the very first evaluation point is already at or below the target, its
    token count is returned: nothing before the first measurement is known.
    """
    _check_curve(curve, "curve")
    prev_t, prev_l = curve[0]
    if prev_l <= target:
        return float(prev_t)
    for t, loss in curve[1:]:
        if loss <= target:
            # prev_l > target >= loss, so the fraction lies in (0, 1].
            frac = (prev_l - target) / (prev_l - loss)
            return float(prev_t + frac * (t - prev_t))
        prev_t, prev_l = t, loss
    return None


# Speedup.status: how (and whether) the crossing of the baseline's final loss was measured.
MEASURED = "measured"
AT_START = "at start"
NOT_REACHED = "not reached"
NOT_MEASURABLE = "n/a"
DIVERGED = "diverged"


@dataclass
class Speedup:
    target_loss: float          # the baseline's final validation loss
    baseline_tokens: float      # tokens the baseline needs to reach it
    run_tokens: float | None    # tokens the run needs to reach it (None: never)
    speedup: float | None       # baseline_tokens / run_tokens; see speedup() for each status
    status: str                 # MEASURED | AT_START | NOT_REACHED | NOT_MEASURABLE | DIVERGED
    baseline_final: float
    run_final: float
    improvement_pct: float | None  # (baseline_final - run_final) / baseline_final * 100; None if either is not finite

    def to_dict(self) -> dict:
        """JSON-able: an infinite lower bound (AT_START at 0 tokens) or a NaN loss becomes None, the status says why."""
        return json_safe(asdict(self))

    def describe(self) -> str:
        """The status in words, with the speedup or its bound: 'speedup 1.50x', 'already at ... (speedup >= 2.00x)'."""
        if self.status == MEASURED:
            return f"speedup {self.speedup:.2f}x"
        if self.status == AT_START:
            bound = f">= {self.speedup:.2f}x" if math.isfinite(self.speedup) else "unbounded: before any training"
            return f"already at the baseline's final loss at its first evaluation (speedup {bound})"
        if self.status == NOT_REACHED:
            return "never reaches the baseline's final loss"
        if self.status == DIVERGED:
            return "speedup n/a: diverged (a validation loss of the run or the baseline is not finite)"
        return "speedup n/a: a curve has one evaluation, or the baseline ends no lower than it starts"


def speedup(baseline: Curve, run: Curve) -> Speedup:
    """Convergence speedup of ``run`` over ``baseline`` and the final-loss improvement.

    ``status`` says what ``speedup`` means:

    - ``MEASURED``: the run crosses the target after its first evaluation;
      ``speedup = baseline_tokens / run_tokens``, a finite number.
    - ``AT_START``: the run is already at or below the target at its first
      evaluation, so it crossed at or before ``run_tokens`` and ``speedup`` is
      only a lower bound: ``baseline_tokens / run_tokens``, or ``math.inf``
      when that evaluation is at 0 tokens (before any training).
    - ``NOT_REACHED``: the run never gets down to the target; ``speedup`` is None.
    - ``NOT_MEASURABLE``: a curve has a single point, or the baseline is
      already at its final loss at its first evaluation, so no crossing can be
      timed; ``speedup`` is None.
    - ``DIVERGED``: a loss of either curve is not finite (NaN or inf), so
      neither the target nor the run's progress means anything; ``speedup``
      and ``run_tokens`` are None.

    The improvement in final loss is reported whenever both final losses are finite.
    """
    _check_curve(baseline, "baseline", finite_loss=False)
    _check_curve(run, "run", finite_loss=False)
    target, run_final = float(baseline[-1][1]), float(run[-1][1])
    if target == 0:
        raise ValueError("baseline: final loss is 0; the improvement in percent is undefined")
    finite_base = all(math.isfinite(loss) for _, loss in baseline)
    base_tokens = tokens_to_reach(baseline, target) if finite_base else math.nan
    run_tokens = value = None
    if not finite_base or not all(math.isfinite(loss) for _, loss in run):
        status = DIVERGED
    else:
        assert base_tokens is not None  # the last point always reaches its own loss
        run_tokens = tokens_to_reach(run, target)
        if len(baseline) < 2 or len(run) < 2 or baseline[0][1] <= target:
            status = NOT_MEASURABLE
        elif run_tokens is None:
            status = NOT_REACHED
        elif run[0][1] <= target:
            status = AT_START
            value = base_tokens / run_tokens if run_tokens > 0 else math.inf
        else:
            status = MEASURED
            value = base_tokens / run_tokens  # run_tokens > run[0][0] >= 0: interpolated past the first point
    improvement = (target - run_final) / target * 100.0 if math.isfinite(target + run_final) else None
    return Speedup(target_loss=target, baseline_tokens=base_tokens, run_tokens=run_tokens, speedup=value,
                   status=status, baseline_final=target, run_final=run_final, improvement_pct=improvement)


def read_curve(path: str | Path, x: str = SpeedupConfig.x, y: str = SpeedupConfig.y) -> list[tuple[float, float]]:
    """The ``(x, y)`` points of a metrics JSONL file (or a run directory's metrics.jsonl),
    from the lines that have both keys."""
    if Path(path).is_dir():
        path = Path(path) / METRICS
    if not Path(path).is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    records = json_records(path, "a metrics file is JSON lines, one object per line (a run's metrics.jsonl)",
                           log=True)  # a killed run's torn last line is dropped
    points = [(float(rec[x]), float(rec[y])) for _, rec in records if rec.get(x) is not None and rec.get(y) is not None]
    if not points:
        raise ValueError(f"{path}: no line has both {x!r} and {y!r}")
    return points
