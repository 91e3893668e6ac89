"""Small statistics over seeds: a mean with its t-distribution confidence interval, a paired t-test."""
from __future__ import annotations

import math
from typing import Sequence


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of the two-sided ``level`` interval for the mean, from the t-distribution
    with ``n - 1`` degrees of freedom; the half width is NaN for fewer than two values."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("mean_ci: no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def paired_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``(t, p)`` of the two-sided paired t-test that ``a - b`` has mean zero (NaN for fewer than two pairs)."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired_t: {len(a)} values against {len(b)}")
    if len(a) < 2:
        return math.nan, math.nan
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)
