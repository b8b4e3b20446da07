"""Preprocessing correctness: resampling, zero-phase cleaning, windows, the quality gate, config, normalisers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from augframe.data.normalise import Normaliser
from augframe.data.preprocess import (
    PreprocessConfig, clean, preprocess_record, quality_scores, resample, window_starts,
)
from augframe.data.problems import Problem
from augframe.errors import ValidationError
from augframe.protocols import Record

FIXTURES = Path(__file__).parent / "fixtures"


def _peak_hz(x: np.ndarray, fs: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spec)])


@pytest.mark.parametrize("fs_in", [300.0, 500.0, 100.0, 360.0])
def test_resample_keeps_sine_frequency_and_duration(fs_in):
    t = np.arange(int(20 * fs_in)) / fs_in
    x = np.sin(2 * np.pi * 7.3 * t)[None]
    y = resample(x, fs_in, 250.0)
    assert y.shape[-1] == 20 * 250
    assert _peak_hz(y[0], 250.0) == pytest.approx(7.3, abs=0.06)
    ref = np.sin(2 * np.pi * 7.3 * np.arange(y.shape[-1]) / 250.0)
    assert np.abs(y[0, 500:-500] - ref[500:-500]).max() < 0.02  # in phase, right amplitude


@pytest.mark.parametrize("cleaning", ["reference", "bandpass"])
def test_cleaning_is_zero_phase(cleaning):
    """A 10 Hz sine in the pass band comes out with no lag (a causal filter would shift it)."""
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    x = np.sin(2 * np.pi * 5.0 * t)[None]
    y = clean(x, fs, PreprocessConfig(cleaning=cleaning))
    mid = slice(1000, -1000)
    lags = np.arange(-20, 21)
    xc = [np.dot(np.roll(y[0], k)[mid], x[0][mid]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0
    # the 5 Hz sine passes: 50 Hz moving-average powerline filter attenuates it mildly (sinc)
    assert 0.7 < np.abs(y[0, mid]).max() <= 1.01


def test_reference_cleaning_removes_drift_and_mains():
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    drift = 1.0 * np.sin(2 * np.pi * 0.1 * t)
    mains = 0.3 * np.sin(2 * np.pi * 50.0 * t)
    y = clean((drift + mains)[None], fs, PreprocessConfig(cleaning="reference"))[0]
    assert np.abs(y[1000:-1000]).max() < 0.05
    b = clean((drift + mains)[None], fs, PreprocessConfig(cleaning="bandpass"))[0]
    assert np.abs(b[1000:-1000]).max() < 0.05


def test_reference_cleaning_matches_neurokit_bit_for_bit():
    """neurokit2 0.2.13 ``ecg_clean(x, 250)`` output (stored fixture) equals ours on a real CinC window.

    The fixture was made once with neurokit2 installed outside the project (see docs/data.md).
    """
    with np.load(FIXTURES / "neurokit_ecg_clean.npz") as z:
        x, ref, ref60 = z["x"], z["cleaned"], z["cleaned_60"]
    ours = clean(x[None], 250.0, PreprocessConfig(cleaning="reference"))[0]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    ours60 = clean(x[None], 250.0, PreprocessConfig(cleaning="reference", powerline=60.0))[0]
    np.testing.assert_allclose(ours60, ref60, rtol=0, atol=1e-12)


def test_window_starts_and_stride():
    cfg = PreprocessConfig(window_s=10, fs=250)
    assert window_starts(2499, cfg).tolist() == []
    assert window_starts(7600, cfg).tolist() == [0, 2500, 5000]
    half = PreprocessConfig(window_s=10, stride_s=5)
    assert window_starts(7500, half).tolist() == [0, 1250, 2500, 3750, 5000]
    capped = PreprocessConfig(max_windows_per_record=2)
    assert len(window_starts(25000, capped)) == 2


def test_quality_gate_scores_bad_windows():
    rng = np.random.default_rng(0)
    good = 0.3 * rng.standard_normal((1, 1, 2500))
    flat = np.zeros((1, 1, 2500))
    saturated = good.copy()
    saturated[..., :600] = 6.0
    nan = good.copy()
    nan[0, 0, 100] = np.nan
    tiny = 0.005 * rng.standard_normal((1, 1, 2500))
    s = quality_scores(np.concatenate([good, flat, saturated, nan, tiny]))
    assert s[0] == 1.0
    assert s[1] == pytest.approx(0.3 * 0.2 * 0.3)  # flat, no variance, no range
    assert s[2] == pytest.approx(0.3)  # > 10 % saturated
    assert s[3] == 0.0
    assert s[4] < 0.5
    # multi-lead: the worst lead decides
    two = np.concatenate([good, flat], axis=1)
    assert quality_scores(two)[0] == pytest.approx(s[1])


def test_preprocess_record_problems_and_nan_windows():
    fs = 300.0
    t = np.arange(int(35 * fs)) / fs
    sig = (0.5 * np.sin(2 * np.pi * 1.2 * t) + 0.05 * np.sin(2 * np.pi * 13 * t)).astype(np.float32)[None]
    rec = Record("r1", sig, fs, ("I",), label="N")
    out = preprocess_record(rec, PreprocessConfig(leads="I"))
    assert out.windows.shape == (3, 1, 2500) and out.ids == ["r1:w0", "r1:w1", "r1:w2"]
    assert isinstance(preprocess_record(rec, PreprocessConfig(leads="II")), Problem)
    assert preprocess_record(rec, PreprocessConfig(leads="II")).kind == "missing-lead"
    assert preprocess_record(rec, PreprocessConfig(leads="I", allowed_fs=[250, 500])).kind == "unexpected-fs"
    odd = preprocess_record(Record("r0", sig, fs, ("ECG",)), PreprocessConfig(leads="first"))
    assert odd.kind == "missing-lead" and "single_lead_as" in odd.message
    short = Record("r2", sig[:, : int(9 * fs)], fs, ("I",))
    assert preprocess_record(short, PreprocessConfig(leads="I")).kind == "too-short"
    padded = preprocess_record(short, PreprocessConfig(leads="I", short_records="pad"))
    assert padded.windows.shape == (1, 1, 2500)
    holed = sig.copy()
    holed[0, int(12 * fs)] = np.nan  # inside the second window only
    out = preprocess_record(Record("r3", holed, fs, ("I",)), PreprocessConfig(leads="I"))
    assert out.ids == ["r3:w0", "r3:w2"] and out.rejected == 1
    assert np.isfinite(out.windows).all()


def test_config_from_dict_rejects_unknown_keys_and_bad_values():
    cfg = PreprocessConfig.from_dict({"leads": ["ii", "V1"], "cleaning": "bandpass", "stride_s": 5})
    assert cfg.leads == ("II", "V1") and cfg.stride_samples == 1250
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValidationError, match="window_sec.*window_s"):
        PreprocessConfig.from_dict({"window_sec": 10})
    with pytest.raises(ValidationError, match="cleaning"):
        PreprocessConfig(cleaning="notch")
    with pytest.raises(ValidationError, match="bandpass"):
        PreprocessConfig(bandpass=(0.5, 200))
    with pytest.raises(ValidationError, match="lead"):
        PreprocessConfig(leads="XYZ")


@pytest.mark.parametrize("kind", ["minmax", "robust", "zscore", "none"])
def test_normaliser_fit_apply_inverse_and_json(kind, tmp_path):
    rng = np.random.default_rng(1)
    train = [0.4 * rng.standard_normal((50, 1, 500)) + 0.1 for _ in range(3)]
    norm = Normaliser.fit(kind, train, seed=0)
    x = np.concatenate(train)
    y = norm.apply(x)
    if kind == "minmax":
        assert y.min() == pytest.approx(-1.5) and y.max() == pytest.approx(1.5)
    if kind == "zscore":
        assert np.allclose(y.std(-1), 1, atol=1e-6)
        back = norm.inverse(y, mean=x.mean(-1, keepdims=True), std=x.std(-1, keepdims=True))
    else:
        back = norm.inverse(y)
    np.testing.assert_allclose(back, x, atol=1e-6)
    loaded = Normaliser.load(norm.save(tmp_path / "norm.json"))
    assert loaded == norm
    np.testing.assert_allclose(loaded.apply(x), y)


def test_normaliser_torch_matches_numpy():
    import torch

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 300)).astype(np.float32)
    for kind in ("minmax", "zscore", "robust"):
        norm = Normaliser.fit(kind, [x])
        np.testing.assert_allclose(norm.apply(torch.from_numpy(x)).numpy(), norm.apply(x), atol=1e-5)


def test_normaliser_fitted_on_train_only():
    train = [np.full((2, 1, 10), 1.0), np.full((2, 1, 10), 3.0)]
    norm = Normaliser.fit("minmax", train)
    assert norm.params == {"global_min": 1.0, "global_max": 3.0} and norm.fitted_on == 4
    assert norm.apply(np.array([5.0]))[0] == pytest.approx(4.5)  # test data outside the train range maps outside


def test_bandpass_attenuates_out_of_band():
    fs = 250.0
    t = np.arange(int(20 * fs)) / fs
    for f, passes in ((10.0, True), (80.0, False), (0.1, False)):
        y = clean(np.sin(2 * np.pi * f * t)[None], fs, PreprocessConfig(cleaning="bandpass"))[0]
        amp = np.abs(y[1000:-1000]).max()
        assert (amp > 0.9) if passes else (amp < 0.1), (f, amp)
