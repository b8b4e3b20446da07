"""The evaluation-side R-peak detectors and the ``rr-features`` classifier (RR irregularity + LR)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from augframe.errors import CheckpointError, PluginError, ValidationError

from augframe_afib.detectors import CACHE, detect
from augframe_afib.fit import predict_proba
from augframe_afib.metrics import classification_metrics
from augframe_afib.rhythm import rhythm_features
from augframe_afib.rrfeatures import C_GRID, FEATURES, feature_matrix, make_rr_features
from augframe_afib.splits import holdout


@pytest.fixture(scope="module")
def cinc(cinc2017_dir):
    """CinC 2017 N/A windows in mV, 40 records per class, split by record into train / validation / test."""
    from augframe.data import cinc2017_windows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = cinc2017_windows(cinc2017_dir, limit_per_class=40, seed=3, normalise=None, cleaning="none")
    rec = np.asarray(b.meta["record"])
    trval, test = holdout(b.labels, 0.4, 0, rec, "CinC")
    tr, va = holdout(b.labels[trval], 0.3, 1, rec[trval], "CinC training")
    return b, trval[tr], trval[va], test


@pytest.fixture(scope="module")
def fitted(cinc):
    b, tr, va, _ = cinc
    model = make_rr_features(fs=b.fs)
    report = model.fit(b.numpy()[tr], b.labels[tr], b.numpy()[va], b.labels[va], seed=0)
    return model, report


def test_regular_and_irregular_trains_give_low_and_high_rr_cv(pulse_trains):
    reg, irr = pulse_trains(8, True, 0), pulse_trains(8, False, 1)
    for method in ("xqrs", "bandpass"):
        cv_reg = rhythm_features(reg, 250.0, method)["rr_cv"]
        cv_irr = rhythm_features(irr, 250.0, method)["rr_cv"]
        assert np.all(cv_reg < 0.01), method
        assert np.all(cv_irr > 0.1), method
    f = feature_matrix(np.concatenate([reg, irr]), 250.0)
    assert f.shape == (16, len(FEATURES)) and np.isfinite(f).all()
    hr = f[:8, FEATURES.index("heart_rate_bpm")]
    assert np.all((hr > 60 / 0.92) & (hr < 60 / 0.68))


def test_too_few_beats_gives_defined_features_and_a_flag(pulse_trains):
    x = np.zeros((3, 1, 2500), np.float32)
    x[1, 0, 1000] = 1.0  # a single spike
    x[2] = pulse_trains(1, True, 0)[0]
    x[2, 0, 600:] = 0.0  # the first 2.4 s: 3 beats at most
    f = feature_matrix(x, 250.0)
    assert np.isfinite(f).all()
    assert np.all(f[:, FEATURES.index("few_beats")] == 1.0)
    assert f[0, FEATURES.index("n_beats")] == 0


def test_xqrs_at_other_rates_and_the_cache(pulse_trains):
    for fs in (128.0, 500.0):
        x = pulse_trains(2, True, 5, fs=fs)
        peaks = detect(x, fs)
        hr = rhythm_features(x, fs, "xqrs")["heart_rate_bpm"]
        want = 60 / (np.diff(peaks[0]).mean() / fs)
        assert 60 / 0.92 < hr[0] < 60 / 0.68 and abs(hr[0] - want) < 3
    hits = CACHE.hits
    again = detect(x, 500.0)
    assert CACHE.hits == hits + 2 and all(np.array_equal(a, b) for a, b in zip(again, peaks))
    with pytest.raises(ValidationError, match="NaN"):
        detect(np.full((1, 2500), np.nan), 250.0)
    with pytest.raises(ValidationError, match="detector"):
        detect(x, 500.0, "pan-tompkins")


def test_unfitted_model_raises_a_clear_error(tmp_path):
    model = make_rr_features()
    with pytest.raises(PluginError, match="not been fitted"):
        model(torch.zeros(2, 1, 2500))
    with pytest.raises(PluginError, match="not been fitted"):
        model.save(tmp_path / "m.safetensors")


def test_fit_chooses_c_on_validation_and_generalises_to_other_records(cinc, fitted):
    b, tr, va, test = cinc
    model, report = fitted
    assert report["C"] in C_GRID and report["C_chosen_by"] == "validation AUROC"
    assert set(report["C_grid_val_auroc"]) == {str(c) for c in C_GRID}
    assert not set(b.meta["record"][test]) & set(b.meta["record"][tr])
    m = classification_metrics(b.labels[test], predict_proba(model, b.numpy()[test]), positive=1)
    assert m["auroc"] > 0.85, m  # ~0.96 on the full CinC set (docs/afib-evaluator.md)
    assert list(model.parameters()) == []  # trained by fit, not by gradients


def test_save_load_round_trip_gives_equal_probabilities(cinc, fitted, tmp_path, registry):
    b, _, _, test = cinc
    model, _ = fitted
    x = torch.from_numpy(b.numpy()[test[:40]])
    path = tmp_path / "rr.safetensors"
    model.save(path)
    loaded = registry.create("classifier", "rr-features", {"checkpoint": str(path), "fs": b.fs})
    p0, p1 = torch.softmax(model(x), 1), torch.softmax(loaded(x), 1)
    assert torch.allclose(p0, p1, atol=1e-6)
    assert loaded.embed(x).shape == (40, len(FEATURES))
    fresh = make_rr_features(fs=b.fs)
    fresh.load_state_dict(model.state_dict())
    assert torch.allclose(torch.softmax(fresh(x), 1), p0, atol=1e-6)
    with pytest.raises(CheckpointError, match="class_names"):
        make_rr_features(class_names=("N", "AF"), checkpoint=path)
