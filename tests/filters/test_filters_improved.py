"""Improved validator on real CinC windows, implausible inputs, bad input, units and the detector."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe_plausibility.agreement import f1, match_counts, xqrs_reference
from augframe_plausibility.apex import detect
from augframe_plausibility.classes import targets
from augframe_plausibility.realdata import implausible
from augframe_plausibility.validator import PlausibilityFilter


@pytest.fixture(scope="module")
def scored(cinc_small):
    return PlausibilityFilter().score(cinc_small)


def test_real_windows_are_accepted(cinc_small, scored):
    assert len(cinc_small) > 60
    for c in (0, 1):
        m = cinc_small.labels == c
        assert scored.accept[m].mean() >= 0.85, (c, scored.accept[m].mean())
    assert ((scored.scores >= 0) & (scored.scores <= 1)).all()
    rejected = np.flatnonzero(~scored.accept)
    assert all(scored.reasons[i] for i in rejected)
    assert set(scored.checks) >= {"noise", "clipping", "amplitude", "qrs_width", "rhythm_matches_label"}


@pytest.mark.parametrize("kind", ["flat", "white_noise", "random_walk", "clipped", "amplitude_x20"])
def test_implausible_inputs_are_rejected(cinc_small, kind, batch_of):
    x = cinc_small.numpy()[:, 0, :].astype(np.float64)
    bad = implausible(kind, x, 250.0, np.random.default_rng(0))
    res = PlausibilityFilter().score(batch_of(bad, labels=cinc_small.labels))
    assert (~res.accept).mean() >= 0.9, (kind, (~res.accept).mean())


def test_label_contradicting_rhythm_loses(cinc_small):
    """AF windows labelled N are rejected more often than when labelled A (the gate is loose by design: see docs)."""
    af = cinc_small.select(cinc_small.labels == 1)
    as_af = PlausibilityFilter().score(af).accept.mean()
    as_n = PlausibilityFilter().score(af.with_signals(af.signals, labels=np.zeros(len(af), int))).accept.mean()
    assert as_n <= as_af - 0.1


def test_bad_input_gets_zero_and_a_reason(cinc_small, batch_of):
    x = cinc_small.numpy()[:4, 0, :].copy()
    b = batch_of(x.copy(), labels=[0, 0, 0, 1])
    b.signals[0, 0, 10] = np.nan
    b.signals[1, 0, :] = 0.3
    res = PlausibilityFilter().score(b)
    assert res.scores[0] == 0 and any("NaN" in r for r in res.reasons[0])
    assert res.scores[1] == 0 and any("flat" in r for r in res.reasons[1])
    assert res.accept[2]
    low = PlausibilityFilter().score(batch_of(x[:, ::5], labels=[0, 0, 0, 1], fs=50.0))
    assert (low.scores == 0).all() and "sampling rate" in low.reasons[0][0]
    short = PlausibilityFilter().score(batch_of(x[:, :500], labels=[0, 0, 0, 1]))
    assert (short.scores == 0).all() and "too short" in short.reasons[0][0]


def test_units(cinc_small, batch_of):
    x = cinc_small.numpy()[:20, 0, :].astype(np.float64)
    z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    lab = cinc_small.labels[:20]
    with pytest.raises(ValidationError, match="units"):
        PlausibilityFilter().score(batch_of(z, labels=lab, units="normalised"))
    ok = PlausibilityFilter(units="zscore").score(batch_of(z, labels=lab, units="normalised"))
    big = PlausibilityFilter(units="zscore").score(batch_of(20 * z, labels=lab, units="normalised"))
    assert ok.accept.mean() >= 0.8 and not big.accept.any()
    # linearly scaled data: mv_per_unit brings it back to mV
    scaled = PlausibilityFilter(mv_per_unit=0.25).score(batch_of(4 * x, labels=lab, units="normalised"))
    assert (scaled.accept == PlausibilityFilter().score(batch_of(x, labels=lab)).accept).all()


def test_sources_add_soft_checks(cinc_small):
    b = cinc_small.select(np.arange(10))
    res = PlausibilityFilter().score(b, b)
    assert res.checks["source_std_ratio"].min() == 1.0
    assert "source_direction" in res.checks


def test_detector_agrees_with_wfdb_xqrs(cinc_small):
    x = cinc_small.numpy()[::6, 0, :].astype(np.float64)
    peaks, _, _ = detect(x, 250.0)
    counts = [match_counts(xqrs_reference(x[i], 250.0), peaks.row(i), x.shape[1], 250.0) for i in range(len(x))]
    assert f1(np.array(counts)) >= 0.9


def test_class_names_map_to_rhythms():
    af, normal = targets(np.array([0, 1, 2, -1]), ("NORM", "AFIB", "MI"))
    assert af.tolist() == [False, True, False, False]
    assert normal.tolist() == [True, False, False, False]
    af, normal = targets(np.array([[1, 0], [1, 1], [0, 0]], np.float32), ("SR", "AF"))
    assert af.tolist() == [False, True, False] and normal.tolist() == [True, False, False]
    af, _ = targets(np.array([0]), ("Flutter",), {"flutter": "af"})
    assert af.tolist() == [True]


def test_shipped_demo_windows_are_accepted():
    """The demo sample is stored at 1 uV resolution: quantisation must not read as clipping."""
    from augframe.data import demo_windows

    b = demo_windows(normalise=None)
    res = PlausibilityFilter().score(b)
    assert res.checks["clipping"].min() == 1.0
    for c in (0, 1):
        assert res.accept[b.labels == c].mean() >= 0.88
