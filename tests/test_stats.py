import math

import pytest

from ncalm.eval.stats import mean_ci, paired_t


def test_mean_ci_uses_the_t_distribution():
    # n = 5, sd = sqrt(2.5), t_{0.975, 4} = 2.7764451: half width 2.7764451 * sqrt(2.5 / 5).
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and half == pytest.approx(2.7764451 * math.sqrt(0.5), rel=1e-6)
    assert mean_ci([1.0, 3.0])[1] == pytest.approx(12.7062047 * 1.0, rel=1e-6)  # df 1: sd sqrt(2), /sqrt(2)
    assert mean_ci([1.0, 2.0, 3.0], level=0.9)[1] == pytest.approx(2.9199856 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_ci([4.0])[1])
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_t():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt(3)); two-sided p with 2 df.
    t, p = paired_t([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert t == pytest.approx(2 * math.sqrt(3)) and p == pytest.approx(0.0741799, rel=1e-5)
    assert all(math.isnan(x) for x in paired_t([1.0], [2.0]))
    with pytest.raises(ValueError):
        paired_t([1.0, 2.0], [1.0])
