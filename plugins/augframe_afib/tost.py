"""Equivalence statistics: TOST paired across folds, and per-sample paired tests on test predictions.

Two one-sided tests (Schuirmann 1987): H0 is |mean difference| >= margin. With d the paired
differences, SE = sd(d, ddof=1)/sqrt(k) and df = k - 1,

    p_lower = 1 - F_t((d_bar + margin) / SE)      (H0: d_bar <= -margin)
    p_upper = F_t((d_bar - margin) / SE)          (H0: d_bar >= +margin)
    p_TOST  = max(p_lower, p_upper)

which is how the reference computes it (margin 0.02 = 2 percentage points, absolute proportion
units). Equivalence at level alpha is the same as the (1 - 2 alpha) CI lying inside the margin.

Per-sample versions pair the two classifiers' correctness on the same test ECGs:
* :func:`tost_paired_proportions`: a z-TOST on the difference of paired accuracies with the
  paired variance (discordant counts b, c): Var(d_bar) = ((b + c) - (b - c)^2 / n) / (n (n - 1)).
* :func:`bootstrap_paired`: a seeded percentile bootstrap of the same difference;
* :func:`mcnemar`: the exact (binomial) McNemar test of *difference*, for completeness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
from scipy import stats

from augframe.errors import ValidationError
from augframe.seeding import Stream, numpy_rng

#: The reference's equivalence margin (absolute proportion units, i.e. 2 percentage points).
REFERENCE_MARGIN = 0.02


@attrs.frozen
class TOSTResult:
    """Outcome of one equivalence test; ``ci`` is the (1 - 2 alpha) confidence interval of the difference."""

    method: str
    mean_diff: float
    se: float
    df: float
    margin: float
    p_lower: float
    p_upper: float
    ci: tuple[float, float]
    alpha: float = 0.05
    n: int = 0
    note: str = ""

    @property
    def p(self) -> float:
        return max(self.p_lower, self.p_upper)

    @property
    def equivalent(self) -> bool:
        return bool(self.p < self.alpha)

    @property
    def p_noninferiority(self) -> float:
        """p of H0 'first is worse by at least the margin' (= p_lower for d = first - second)."""
        return self.p_lower

    @property
    def verdict(self) -> str:
        suffix = f" ({self.note})" if self.note else ""
        if self.equivalent:
            return f"equivalent within +-{_pp(self.margin)}{suffix}"
        if self.ci[0] > self.margin or self.ci[1] < -self.margin:
            return f"different by more than {_pp(self.margin)}{suffix}"
        return f"not shown equivalent within +-{_pp(self.margin)}{suffix}"

    def to_dict(self) -> dict[str, float | str | bool | list[float]]:
        return {
            "method": self.method, "mean_diff": self.mean_diff, "se": self.se, "df": self.df,
            "margin": self.margin, "p_lower": self.p_lower, "p_upper": self.p_upper, "p": self.p,
            "ci_low": self.ci[0], "ci_high": self.ci[1], "alpha": self.alpha, "n": self.n,
            "equivalent": self.equivalent, "verdict": self.verdict, "note": self.note,
        }


def _pp(x: float) -> str:
    return f"{100 * x:g} pp"


def _check_margin(margin: float, alpha: float) -> None:
    if not margin > 0:
        raise ValidationError(f"equivalence margin={margin} must be positive (0.02 = 2 percentage points)")
    if not 0 < alpha < 0.5:
        raise ValidationError(f"alpha={alpha} must lie in (0, 0.5)")


def tost_from_summary(mean_diff: float, se: float, df: float, margin: float = REFERENCE_MARGIN,
                      alpha: float = 0.05, method: str = "t", n: int = 0) -> TOSTResult:
    """TOST from d_bar, its standard error and degrees of freedom (``df=inf`` gives the z-test)."""
    _check_margin(margin, alpha)
    if not se >= 0 or not np.isfinite(se):
        raise ValidationError(f"standard error {se} must be finite and >= 0")
    dist = stats.norm if math.isinf(df) else stats.t(df)
    if se == 0:  # all differences identical: the test degenerates to a comparison
        p_lower = 0.0 if mean_diff > -margin else 1.0
        p_upper = 0.0 if mean_diff < margin else 1.0
        return TOSTResult(method, float(mean_diff), 0.0, float(df), margin, p_lower, p_upper,
                          (float(mean_diff), float(mean_diff)), alpha, n,
                          note="zero variance: every paired difference is the same")
    p_lower = float(dist.sf((mean_diff + margin) / se))
    p_upper = float(dist.cdf((mean_diff - margin) / se))
    q = float(dist.ppf(1 - alpha))
    ci = (float(mean_diff - q * se), float(mean_diff + q * se))
    return TOSTResult(method, float(mean_diff), float(se), float(df), margin, p_lower, p_upper, ci, alpha, n)


def tost_paired(first: Sequence[float], second: Sequence[float], margin: float = REFERENCE_MARGIN,
                alpha: float = 0.05) -> TOSTResult:
    """Paired t-TOST on per-fold values (d_i = first_i - second_i, df = k - 1): the reference's test."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError(f"paired TOST needs two equal-length 1-D sequences; got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValidationError(f"paired TOST needs at least 2 pairs (folds); got {len(a)}")
    d = a - b
    se = float(np.std(d, ddof=1) / math.sqrt(len(d)))
    return tost_from_summary(float(d.mean()), se, len(d) - 1, margin, alpha, method="paired t (folds)", n=len(d))


def _correct_pairs(correct_first: Sequence[bool], correct_second: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(correct_first, dtype=bool)
    b = np.asarray(correct_second, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValidationError(
            f"per-sample tests need two equal-length correctness vectors of >= 2 test ECGs; got {a.shape}, {b.shape}"
        )
    return a, b


def discordant(correct_first: Sequence[bool], correct_second: Sequence[bool]) -> tuple[int, int, int]:
    """(b, c, n): b = first right and second wrong, c = the reverse, n = pairs."""
    a, b = _correct_pairs(correct_first, correct_second)
    return int(np.sum(a & ~b)), int(np.sum(~a & b)), len(a)


def tost_paired_proportions(correct_first: Sequence[bool], correct_second: Sequence[bool],
                            margin: float = REFERENCE_MARGIN, alpha: float = 0.05) -> TOSTResult:
    """z-TOST on the paired accuracy difference over the same test ECGs (a McNemar-type variance)."""
    b, c, n = discordant(correct_first, correct_second)
    d_bar = (b - c) / n
    var = ((b + c) - (b - c) ** 2 / n) / (n * (n - 1))
    return tost_from_summary(d_bar, math.sqrt(max(var, 0.0)), math.inf, margin, alpha,
                             method="paired z (samples)", n=n)


def bootstrap_paired(correct_first: Sequence[bool], correct_second: Sequence[bool], *, seed: int,
                     margin: float = REFERENCE_MARGIN, alpha: float = 0.05, n_boot: int = 2000) -> TOSTResult:
    """Percentile bootstrap of the paired accuracy difference; equivalent iff the (1 - 2 alpha) CI is in the margin.

    The one-sided p-values are the bootstrap tail fractions beyond -margin and +margin.
    """
    _check_margin(margin, alpha)
    a, b = _correct_pairs(correct_first, correct_second)
    d = a.astype(np.float64) - b.astype(np.float64)
    rng = numpy_rng(seed, Stream.AFIB_BOOTSTRAP)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    p_lower = float((np.sum(means <= -margin) + 1) / (n_boot + 1))
    p_upper = float((np.sum(means >= margin) + 1) / (n_boot + 1))
    return TOSTResult("bootstrap (samples)", float(d.mean()), float(means.std(ddof=1)), math.inf, margin,
                      p_lower, p_upper, (float(lo), float(hi)), alpha, len(d))


@attrs.frozen
class McNemarResult:
    b: int
    c: int
    n: int
    p: float


def mcnemar(correct_first: Sequence[bool], correct_second: Sequence[bool]) -> McNemarResult:
    """Exact McNemar test of a difference (two-sided binomial test on the discordant pairs)."""
    b, c, n = discordant(correct_first, correct_second)
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return McNemarResult(b, c, n, p)


def paired_ttest(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """(t, two-sided p) of the plain paired t-test of a difference."""
    res = stats.ttest_rel(np.asarray(first, float), np.asarray(second, float))
    return float(res.statistic), float(res.pvalue)
