"""Equivalence statistics: the reference's figure, and agreement with statsmodels / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from augframe.errors import ValidationError

from augframe_afib import tost


def test_reproduces_reference_p_from_its_per_fold_summary():
    # spec section 9: d_bar = 0.00574, SE = 0.00343, df = 4, margin 0.02 -> p_TOST = 0.0071
    res = tost.tost_from_summary(0.00574, 0.00343, 4, margin=0.02)
    assert round(res.p, 4) == 0.0071
    assert res.p == res.p_upper  # the binding side is the upper bound
    assert res.equivalent and res.verdict.startswith("equivalent")
    # the non-inferiority p is the one-sided test against A being worse by 2 pp
    assert res.p_noninferiority == pytest.approx(stats.t(4).sf((0.00574 + 0.02) / 0.00343))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paired_tost_matches_statsmodels(seed):
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(seed)
    a = rng.normal(0.95, 0.01, 5)
    b = a - rng.normal(0.004 * seed, 0.01, 5)
    ours = tost.tost_paired(a, b, margin=0.02)
    p, lower, upper = ttost_paired(a, b, -0.02, 0.02)
    assert ours.p == pytest.approx(float(p), rel=1e-10)
    assert ours.p_lower == pytest.approx(float(lower[1]), rel=1e-10)
    assert ours.p_upper == pytest.approx(float(upper[1]), rel=1e-10)
    assert ours.df == 4
    # equivalence at alpha <=> the 90% CI lies inside the margin
    assert ours.equivalent == (ours.ci[0] > -0.02 and ours.ci[1] < 0.02)


def test_z_tost_on_paired_proportions_matches_hand_computation():
    rng = np.random.default_rng(5)
    a = rng.random(400) < 0.9
    b = a.copy()
    flip = rng.choice(400, 30, replace=False)
    b[flip] = ~b[flip]
    res = tost.tost_paired_proportions(a, b, margin=0.03)
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert res.se == pytest.approx(se, rel=1e-12)
    assert res.p_upper == pytest.approx(stats.norm.cdf((d.mean() - 0.03) / se))
    assert res.p_lower == pytest.approx(stats.norm.sf((d.mean() + 0.03) / se))
    bb, cc, n = tost.discordant(a, b)
    assert bb + cc == 30 and n == 400


def test_bootstrap_is_seeded_and_agrees_with_z_test():
    rng = np.random.default_rng(9)
    a = rng.random(600) < 0.92
    b = np.where(rng.random(600) < 0.05, ~a, a)
    r1 = tost.bootstrap_paired(a, b, seed=4, margin=0.03)
    r2 = tost.bootstrap_paired(a, b, seed=4, margin=0.03)
    z = tost.tost_paired_proportions(a, b, margin=0.03)
    assert r1 == r2
    assert r1.mean_diff == pytest.approx(z.mean_diff)
    assert r1.ci[0] == pytest.approx(z.ci[0], abs=0.006) and r1.ci[1] == pytest.approx(z.ci[1], abs=0.006)
    assert r1.equivalent == z.equivalent


def test_mcnemar_matches_statsmodels_exact():
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(2)
    a = rng.random(200) < 0.8
    b = np.where(rng.random(200) < 0.1, ~a, a)
    ours = tost.mcnemar(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert ours.p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-10)


def test_clear_difference_and_zero_variance():
    far = tost.tost_paired([0.95] * 4 + [0.96], [0.80, 0.81, 0.80, 0.79, 0.80], margin=0.02)
    assert not far.equivalent and far.verdict.startswith("different")
    same = tost.tost_paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same.equivalent and "zero variance" in same.verdict


def test_bad_inputs():
    with pytest.raises(ValidationError, match="at least 2"):
        tost.tost_paired([0.9], [0.8])
    with pytest.raises(ValidationError, match="equal-length"):
        tost.tost_paired([0.9, 0.8], [0.8])
    with pytest.raises(ValidationError, match="margin"):
        tost.tost_from_summary(0.0, 0.01, 4, margin=0.0)
