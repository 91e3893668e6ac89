"""Unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language
Models Trained on Code", eq. 1)."""
from __future__ import annotations

import math
from typing import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement
    from n samples, c of them correct, is correct: 1 - C(n-c, k) / C(n, k).

    Uses the product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), which stays
    accurate where the binomial coefficients would overflow floats (n = 200).
    """
    if n < 1:
        raise ValueError(f"n={n}: the number of samples must be >= 1")
    if not 0 <= c <= n:
        raise ValueError(f"c={c}: the number of correct samples must be in [0, n={n}]")
    if not 1 <= k <= n:
        raise ValueError(f"k={k}: must be in [1, n={n}] (pass@k needs at least k samples)")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[int, float]:
    """Average pass@k over problems given (n, c) per problem, for each k.

    Raises ValueError if some k exceeds some problem's n.
    """
    counts = list(counts)
    if not counts:
        raise ValueError("counts is empty: pass@k needs at least one problem")
    return {k: sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks}
