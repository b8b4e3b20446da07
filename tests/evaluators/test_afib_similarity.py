"""Fidelity measures: the reference's definitions, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from augframe.errors import ValidationError

from augframe_afib.detectors import detect
from augframe_afib.rhythm import rhythm_features
from augframe_afib.similarity import frechet_distance, mmd_rbf, pair_metrics, ssim_1d


def _ssim_reference_way(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM with scipy's uniform filter, keeping only the positions a 'valid' box window covers."""
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    f = lambda z: ndimage.uniform_filter1d(z, 11, mode="constant")[5:-5]  # noqa: E731
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    return float(np.mean(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))))


def test_pair_metrics_follow_reference_definitions():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (4, 1, 500))
    y = x + rng.normal(0, 0.03, x.shape)
    m = pair_metrics(x, y)
    for i in range(4):
        a, b = x[i, 0], y[i, 0]
        mse = np.mean((a - b) ** 2)
        assert m["mse"][i] == pytest.approx(mse)
        assert m["psnr_db"][i] == pytest.approx(20 * np.log10(max(np.abs(a).max(), np.abs(b).max()) / np.sqrt(mse)))
        assert m["snr_db"][i] == pytest.approx(10 * np.log10(np.mean(a ** 2) / mse))
        assert m["pearson_r"][i] == pytest.approx(np.corrcoef(a, b)[0, 1])
        assert m["ssim"][i] == pytest.approx(_ssim_reference_way(a, b), rel=1e-10)
    same = pair_metrics(x, x)
    assert np.allclose(same["ssim"], 1.0) and np.all(np.isinf(same["psnr_db"]))
    with pytest.raises(ValidationError, match="aligned"):
        pair_metrics(x, y[:3])
    assert ssim_1d(x[:, 0], y[:, 0]).shape == (4,)


def test_frechet_and_mmd_behave():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (3000, 3)), rng.normal(0, 1, (3000, 3))
    shifted = rng.normal(0.8, 1, (3000, 3))
    # closed form for Gaussians with equal covariance: ||mu_a - mu_b||^2
    assert frechet_distance(a, shifted) == pytest.approx(3 * 0.8 ** 2, rel=0.1)
    assert frechet_distance(a, b) < 0.1 * frechet_distance(a, shifted)
    assert mmd_rbf(a[:120], shifted[:120], seed=0, n_perm=40)["mmd_p"] < 0.05
    assert mmd_rbf(a[:120], b[:120], seed=0, n_perm=40)["mmd_p"] > 0.05
    assert mmd_rbf(a[:60], b[:60], seed=0, n_perm=10) == mmd_rbf(a[:60], b[:60], seed=0, n_perm=10)


def test_r_peak_detector_on_a_known_rhythm():
    fs, bpm = 250.0, 72.0
    t = np.arange(int(10 * fs)) / fs
    beats = np.arange(0.3, 10, 60 / bpm)
    x = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats)  # narrow QRS-like spikes
    x = x + 0.15 * np.sin(2 * np.pi * 0.3 * t)  # baseline wander the band-pass must ignore
    peaks = detect(x[None, None, :], fs, "bandpass")[0]
    assert len(peaks) == len(beats)
    feats = rhythm_features(x[None, None, :], fs)
    assert feats["heart_rate_bpm"][0] == pytest.approx(bpm, abs=0.5)
    assert feats["rr_cv"][0] < 0.01
    flat = rhythm_features(np.zeros((1, 1, 2500)), fs)
    assert np.isnan(flat["heart_rate_bpm"][0])


def test_af_windows_are_more_irregular_than_normal(cinc_windows):
    feats = rhythm_features(cinc_windows.numpy(), cinc_windows.fs)
    y = cinc_windows.labels
    n_cv, a_cv = np.nanmedian(feats["rr_cv"][y == 0]), np.nanmedian(feats["rr_cv"][y == 1])
    assert a_cv > 2 * n_cv  # AF: irregularly irregular RR
    hr = feats["heart_rate_bpm"]
    assert 40 < np.nanmedian(hr) < 130
