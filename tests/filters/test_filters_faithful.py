"""Faithful mode reproduces the DiffStyleTS reference validator fixture check by check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from augframe_plausibility.peakpick import find_peaks_batch
from augframe_plausibility.validator import PlausibilityFilter


# Values the reference computes in float32 from the 2,500-sample signals (scipy's pearsonr, np.std).
# Their reductions run in CPU-specific SIMD/BLAS kernels, so the last bits differ between CPU kinds
# (7.5e-9 on r measured on an AMD EPYC vs the Intel fixture). Each float32 sum of n = 2,500 terms errs
# by <= log2(n) eps32 relative to the sum of |terms|, which r and a std ratio are normalised by: two
# kernels differ by <= 2 * 12 * eps32 = 2.9e-6; 1e-5 leaves room for the mean subtraction and division.
FLOAT32_KEYS = {"correlation", "std_ratio"}
FLOAT32_TOL = 1e-5


def _same(got, want, path=""):
    """Booleans and counts exactly; float64 values to 1e-12 relative (batched sums add in another
    order); float32-derived values to FLOAT32_TOL (relative to 1)."""
    if isinstance(want, dict):
        assert set(got) == set(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, bool) or isinstance(want, int):
        assert got == want and type(got) is type(want), f"{path}: {got!r} != {want!r}"
    elif path.rsplit(".", 1)[-1] in FLOAT32_KEYS:
        assert got == pytest.approx(want, rel=FLOAT32_TOL, abs=FLOAT32_TOL), f"{path}: {got!r} != {want!r}"
    else:
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), f"{path}: {got!r} != {want!r}"


@pytest.mark.parametrize("with_source", [True, False])
def test_faithful_matches_reference_fixture(validator_fixture, with_source, batch_of):
    fx = validator_fixture
    cand = batch_of(fx["candidates"], labels=fx["target"])
    src = batch_of(fx["sources"], labels=fx["original"]) if with_source else None
    rep = PlausibilityFilter(mode="faithful").evaluate(cand, src)
    key = "result" if with_source else "result_candidate_only"
    raw = rep.raw["faithful"]
    for i, pair in enumerate(fx["pairs"]):
        want = pair[key]
        _same(rep.details(i), want["details"], f"pair {i}")
        assert rep.result.scores[i] == pytest.approx(want["score"], abs=1e-15)
        assert bool(rep.result.accept[i]) == want["valid"]
        assert rep.result.checks["morphology_score"][i] == want["morphology_score"]
        assert rep.result.checks["physiology_score"][i] == want["physiology_score"]
        assert rep.result.checks["clinical_score"][i] == pytest.approx(want["clinical_score"], abs=1e-15)
        assert raw["peaks"].row(i).tolist() == pair["r_peaks_candidate"]
        if with_source:
            assert raw["source_peaks"].row(i).tolist() == pair["r_peaks_source"]
        if not want["valid"]:
            assert rep.result.reasons[i], f"pair {i} rejected without a reason"


def test_batched_find_peaks_equals_scipy():
    rng = np.random.default_rng(3)
    x = np.abs(np.concatenate([
        rng.standard_normal((60, 700)),
        np.cumsum(rng.standard_normal((20, 700)), axis=1),
        np.round(rng.standard_normal((20, 700)) * 2),  # plateaus and equal heights -> scipy path
        np.zeros((2, 700)),
    ]))
    h = x.mean(axis=1) + x.std(axis=1)
    for distance in (1, 7, 75, 300):
        got = find_peaks_batch(x, h, distance)
        for i in range(len(x)):
            want = find_peaks(x[i], height=h[i], distance=distance)[0]
            assert got.row(i).tolist() == want.tolist(), (distance, i)


def test_faithful_bad_input_scores_zero(validator_fixture, batch_of):
    x = validator_fixture["candidates"][:3].copy()
    b = batch_of(x.copy(), labels=[1, 1, 0])
    b.signals[1, 0, 100] = np.nan  # ECGBatch checks at construction; data can still go bad later
    res = PlausibilityFilter(mode="faithful").score(b)
    assert res.scores[1] == 0 and not res.accept[1]
    assert any("NaN" in r for r in res.reasons[1])
    assert res.scores[0] > 0.7
    wrong_fs = PlausibilityFilter(mode="faithful").score(batch_of(x, labels=[1, 1, 0], fs=500.0))
    assert (wrong_fs.scores == 0).all() and "250" in wrong_fs.reasons[0][0]
    short = PlausibilityFilter(mode="faithful").score(batch_of(x[:, :100], labels=[1, 1, 0]))
    assert (short.scores == 0).all() and "too short" in short.reasons[0][0]
