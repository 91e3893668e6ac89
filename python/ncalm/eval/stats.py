"""Across-seed statistics with the Student t distribution: 95% intervals and paired tests; perplexity.

Plain ``math`` (scipy is not a dependency): the t CDF from the regularized
incomplete beta function (Lentz's continued fraction, as in Numerical Recipes
6.4), its quantile by bisection. tests/test_stats.py checks both against
printed table values and, where installed, scipy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def perplexity(loss: float) -> float:
    """exp(loss), inf where that is beyond a float (a loss past ~709.78 nats, as a run blown up by a huge
    learning rate has): a number to report as diverged, never an OverflowError that loses the run."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def _betacf(a: float, b: float, x: float) -> float:
    tiny, fpmin = 1e-15, 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > fpmin else fpmin)
    h = d
    for m in range(1, 1000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > fpmin else fpmin)
            c = 1.0 + num / c
            c = c if abs(c) > fpmin else fpmin
            h *= d * c
        if abs(d * c - 1.0) < tiny:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # where the continued fraction converges fast
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with ``t_cdf(t, df) == p``, for 0 < p < 1."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return (lo + hi) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """``{"mean", "low", "high", "n"}``: the mean and its two-sided t interval (None bounds for n < 2)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided paired t-test of ``mean(a - b) == 0``: ``{"t", "df", "p"}`` (None for fewer than 2 pairs;
    p 0 or 1 when every difference is the same nonzero value or zero)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    if n < 2:
        return {"t": None, "df": n - 1, "p": None}
    mean = math.fsum(d) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in d) / (n - 1))
    if sd == 0:
        return {"t": None, "df": n - 1, "p": 1.0 if mean == 0 else 0.0}
    t = mean / (sd / math.sqrt(n))
    return {"t": t, "df": n - 1, "p": 2 * t_cdf(-abs(t), n - 1)}
