"""pass@k against hand-computed values and the binomial definition."""
from math import comb

import pytest

from ncalm.eval.reasoning.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (1, 1, 1, 1.0),
    (1, 0, 1, 0.0),
    (10, 3, 1, 0.3),                 # pass@1 is the fraction correct
    (4, 1, 2, 0.5),                  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 2, 2, 0.7),                  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 3, 0.9),                  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (5, 2, 4, 1.0),                  # fewer than 4 wrong samples: always a hit
    (10, 0, 5, 0.0),
])
def test_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [1, 7, 64, 200])
def test_matches_binomial_definition(n):
    for c in range(0, n + 1, max(1, n // 9)):
        for k in (1, 2, 5, 32, n):
            if k <= n:
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_mean_over_problems():
    got = mean_pass_at_k([(4, 1), (4, 0), (4, 4)], ks=[1, 2])
    assert got[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert got[2] == pytest.approx((0.5 + 0 + 1) / 3)


@pytest.mark.parametrize("n, c, k, word", [
    (0, 0, 1, "n=0"), (4, 5, 1, "c=5"), (4, -1, 1, "c=-1"), (4, 1, 5, "k=5"), (4, 1, 0, "k=0"),
])
def test_bad_input_names_the_value(n, c, k, word):
    with pytest.raises(ValueError, match=word):
        pass_at_k(n, c, k)


def test_mean_needs_problems():
    with pytest.raises(ValueError, match="empty"):
        mean_pass_at_k([], ks=[1])
