"""The ``rhythm`` evaluator on pulse trains of known rhythm, and the P-wave measure on real CinC windows."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from augframe.protocols import EvalContext, EvaluationResult
from augframe.signals import ECGBatch

from augframe_afib.beatwaves import p_wave_coherence
from augframe_afib.detectors import detect
from augframe_afib.rhythm_eval import DEFAULT_AF_RR_CV, DEFAULT_P_WAVE, RhythmEvaluator


def batch(x_n: np.ndarray, x_a: np.ndarray, tag: str) -> ECGBatch:
    x = np.concatenate([x_n, x_a])
    labels = np.r_[np.zeros(len(x_n), int), np.ones(len(x_a), int)]
    return ECGBatch(x, 250.0, ("I",), labels=labels, class_names=("N", "A"), ids=[f"{tag}{i}" for i in range(len(x))])


@pytest.fixture(scope="module")
def sets(pulse_trains):
    """Sinus-like trains (regular RR, P waves) and AF-like trains (random RR, f waves), 30 each, two draws."""
    return {"reg": pulse_trains(30, True, 10), "irr": pulse_trains(30, False, 11), "reg2": pulse_trains(30, True, 12),
            "irr2": pulse_trains(30, False, 13)}


def test_swapped_rhythms_fail_and_the_same_windows_match(sets):
    real = batch(sets["reg"], sets["irr"], "r")
    ev = RhythmEvaluator()
    swapped = ev.evaluate(real, batch(sets["irr2"], sets["reg2"], "s"))
    same = ev.evaluate(real, real)
    m = swapped.metrics
    assert m["N.rr_cv.ks_d"] > 0.95 and m["A.rr_cv.ks_d"] > 0.95
    assert same.metrics["N.rr_cv.ks_d"] == 0.0 and same.metrics["A.rr_cv.ks_d"] == 0.0
    assert m["A.rhythm_match"] == 0.0 and same.metrics["A.rhythm_match"] == 1.0
    lines = swapped.details["verdicts"]
    assert lines[1].startswith("synthetic A rhythm matches real A: no (RR CV KS D = 1.00")
    assert same.details["verdicts"][1].startswith("synthetic A rhythm matches real A: yes")
    assert all("wfdb XQRS" in t.caption for t in swapped.tables.values())
    assert all("wfdb XQRS" in label for label in swapped.details["distribution_labels"].values())


def test_another_draw_of_the_same_rhythms_is_close(sets):
    res = RhythmEvaluator().evaluate(batch(sets["reg"], sets["irr"], "r"), batch(sets["reg2"], sets["irr2"], "s"))
    assert res.metrics["A.rr_cv.ks_d"] < 0.35
    assert res.metrics["A.rhythm_match"] != 0.0  # "yes", or "undecided" when D > 0.15 is not significant


def test_af_calls_p_waves_and_thresholds(sets):
    real = batch(sets["reg"], sets["irr"], "r")
    syn = batch(sets["reg2"], sets["irr2"], "s")
    fixed = RhythmEvaluator().evaluate(real, syn)
    m = fixed.metrics
    assert m["threshold.af_rr_cv"] == DEFAULT_AF_RR_CV and m["threshold.p_wave"] == DEFAULT_P_WAVE
    assert m["A.af_call_rate.real"] == 1.0 and m["N.af_call_rate.real"] == 0.0
    assert m["N.p_wave_rate.real"] == 1.0 and m["A.p_wave_rate.real"] < 0.2
    calibrated = RhythmEvaluator().evaluate(real, syn, context=EvalContext(train=syn))
    assert "Youden-optimal on 30 real N and 30 real A training windows" in calibrated.tables["rates"].caption
    assert calibrated.metrics["N.p_wave_rate.synthetic"] == 1.0


def test_qrs_amplitude_against_sources_and_the_result_round_trips(sets, registry):
    real = batch(sets["reg"], sets["irr"], "r")
    half = real.with_signals((0.5 * real.numpy()).astype(np.float32))
    ev = registry.create("evaluator", "rhythm", {})
    res = ev.evaluate(real, half, sources=real)
    assert res.metrics["N.qrs_amp_ratio.median"] == pytest.approx(0.5, abs=0.02)
    assert res.metrics["A.qrs_amp_ratio.within_band"] == 0.0
    without = ev.evaluate(real, half)
    assert "qrs_amplitude" not in without.tables and any("QRS amplitude ratio was skipped" in n for n in without.notes)
    back = EvaluationResult.from_dict(json.loads(res.to_json()))
    assert back.metrics.keys() == res.metrics.keys()


def test_p_waves_are_more_coherent_in_real_sinus_than_in_real_af(cinc2017_dir):
    from augframe.data import cinc2017_windows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = cinc2017_windows(cinc2017_dir, limit_per_class=40, seed=3, normalise=None, cleaning="none")
    x = b.numpy()
    score = p_wave_coherence(x, detect(x, b.fs), b.fs)
    n, a = score[b.labels == 0], score[b.labels == 1]
    n, a = n[np.isfinite(n)], a[np.isfinite(a)]
    assert len(n) > 50 and len(a) > 50
    assert np.mean(n) > np.mean(a) and np.median(n) > 2 * np.median(a)
