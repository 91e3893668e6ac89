import importlib.util
import math

import pytest

from ncalm.eval.stats import betainc, mean_interval, paired_t_test, t_cdf, t_quantile


@pytest.mark.parametrize("df, q", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423),
                                   (1000, 1.9623)])
def test_t_quantile_matches_printed_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)


def test_t_cdf_known_values():
    assert t_cdf(0.0, 5) == 0.5
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(2.0, 2) == pytest.approx(0.5 + 2 / (2 * math.sqrt(2 + 4)))  # closed form for df 2
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248)  # 1 - sum_{j<2} C(4,j) .4^j .6^(4-j)


def test_interval_and_paired_test():
    r = mean_interval([1.0, 2.0, 3.0])
    assert r["mean"] == 2 and r["high"] - 2 == pytest.approx(4.3027 * 1 / math.sqrt(3), abs=1e-4)
    assert mean_interval([5.0])["low"] is None
    # Student's sleep data (paired): t = -4.0621, df 9, p = 0.002833.
    a = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    b = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    r = paired_t_test(a, b)
    assert r["t"] == pytest.approx(-4.0621, abs=1e-4) and r["p"] == pytest.approx(0.002833, abs=1e-6)
    assert paired_t_test([1.0], [2.0])["p"] is None and paired_t_test([1, 2], [0, 1])["p"] == 0.0


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed")
def test_against_scipy():
    from scipy import stats

    for df in (1, 2, 3, 7.5, 29, 200):
        for t in (-30, -3.1, -0.4, 0.2, 1.7, 12):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-9, abs=1e-14)
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
