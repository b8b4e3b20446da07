"""Schedule, sampler, STFT conditioning, beat cutting and the baselines on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe_diffecg.baselines import beat_repeat, linear_interpolation, masked_errors, previous_beat
from augframe_diffecg.beats import cut_beats, detect_r_peaks
from augframe_diffecg.masks import forecast_mask, long_gap_mask, training_masks
from augframe_diffecg.model import DiffECGUNet
from augframe_diffecg.config import DiffECGConfig


def test_schedule_is_the_papers():
    s = DiffECGConfig().schedule()
    assert s.num_train_timesteps == 1000 and s.alphas_cumprod.dtype == torch.float32
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    grid = s.set_timesteps(50)
    assert grid[0] == 999 and grid[-1] == 0 and len(grid) == 50 and np.all(np.diff(grid) < 0)
    assert s.set_timesteps(1000) == list(range(999, -1, -1))


@pytest.mark.parametrize("cond", ["stft", "time", "both"])
def test_denoiser_sees_the_known_part(cond):
    torch.manual_seed(0)
    m = DiffECGUNet(1, 2, width=8, mults=(1, 2), cond=cond, n_fft=32, hop=8)
    torch.nn.init.normal_(m.conv_out.weight, std=0.1)
    x = torch.randn(2, 1, 200)
    mask = torch.zeros(2, 1, 200, dtype=torch.bool)
    mask[..., :100] = True
    t, y = torch.tensor([10, 500]), torch.tensor([0, -1])
    a = m(x, t, torch.randn(2, 1, 200), mask, y)
    b = m(x, t, torch.randn(2, 1, 200), mask, y)
    assert a.shape == x.shape
    assert not torch.allclose(a, b)  # C1 changes the prediction through the chosen path
    # the unknown part of C1 is ignored: it is multiplied by the mask
    k = torch.randn(2, 1, 200)
    k2 = k.clone()
    k2[..., 100:] = 5.0
    assert torch.allclose(m(x, t, k, mask, y), m(x, t, k2, mask, y))


def test_training_masks_cover_every_task():
    rng = np.random.default_rng(0)
    m = training_masks((400, 3, 300), rng)
    frac = m.mean(axis=(1, 2))
    assert (frac == 0).any()                                   # generation
    assert ((~m[:, :, -1]).all(axis=1) & m[:, :, 0].all(axis=1)).any()  # forecasts
    lead_drop = (m.all(axis=2) | (~m).all(axis=2)).all(axis=1) & (frac > 0) & (frac < 1)
    assert lead_drop.any()                                     # missing leads
    assert ((frac > 0) & (frac < 1)).mean() > 0.6


def test_r_peaks_match_wfdb_xqrs(cinc_windows):
    from wfdb.processing import XQRS

    x = cinc_windows.numpy()[:4, 0]
    ours = detect_r_peaks(x, 250.0)
    for row, pk in zip(x, ours):
        xq = XQRS(row.astype(np.float64), 250)
        xq.detect(verbose=False)
        ref = np.asarray(xq.qrs_inds)
        assert len(ref) > 3
        d = np.abs(pk[:, None] - ref[None, :]).min(axis=1)
        assert np.mean(d <= 15) > 0.85  # within 60 ms of an xqrs detection


def test_cut_beats_centres_r_peaks(cinc_windows):
    beats = cut_beats(cinc_windows.select(np.arange(3)), pre_s=0.2, post_s=0.4)
    assert beats.signals.shape[1:] == (1, 150)
    x = beats.numpy()[:, 0]
    assert np.median(np.abs(np.abs(x).argmax(axis=1) - 50)) <= 3
    assert set(beats.meta) >= {"window", "r_index", "beat", "record"}


def test_baselines_on_known_answers():
    t = np.arange(300, dtype=np.float32)
    line = np.broadcast_to(0.01 * t, (2, 1, 300)).copy()
    gap = long_gap_mask(line.shape, 0.3, seed=0)
    assert masked_errors(linear_interpolation(line, gap), line, gap)["mae"] < 1e-5
    # a strictly periodic "ECG": a spike every 75 samples; the previous beat is the exact answer
    period = np.zeros(75, dtype=np.float32)
    period[30] = 1.0
    period[31] = 0.4
    sig = np.tile(period, 20)[None, None, :].repeat(2, axis=0)
    mask = forecast_mask(sig.shape, 300)
    pred, fallback = beat_repeat(sig, mask, fs=250.0, forecast=True)
    assert fallback == 0 and masked_errors(pred, sig, mask)["mae"] < 1e-6
    gap = long_gap_mask(sig.shape, 0.2, seed=1)
    pred, _ = beat_repeat(sig, gap, fs=250.0)
    assert masked_errors(pred, sig, gap)["mae"] < 1e-6
    beats = np.stack([np.full((1, 10), v, np.float32) for v in (1.0, 2.0, 3.0)])
    m = np.ones_like(beats, dtype=bool)
    m[:, :, 5:] = False
    out, missing = previous_beat(beats, m, window=np.zeros(3), ordinal=np.arange(3))
    assert missing == 0 and out[2, 0, 9] == 2.0 and out[0, 0, 9] == 2.0 and out[1, 0, 0] == 2.0
