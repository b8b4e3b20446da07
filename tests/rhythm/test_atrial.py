"""augframe.atrial and RhythmBank.draw_atrial: a re-timed ECG takes the atrial activity of the recording whose
rhythm it was given (P waves from a sinus recording, fibrillatory waves from an AF one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import detrend

from augframe.atrial import replace_atrial
from augframe.beats import r_amplitude
from augframe.errors import ValidationError
from augframe.retime import RhythmBank, retime

FS, N = 250.0, 2500
P_OFFSET = 45  # samples from the P-wave apex to the R peak (180 ms)


def ecg(peaks: np.ndarray, p_amp: float = 0.1, f_waves: float = 0.0, seed: int = 0, r_amp: float = 1.0) -> np.ndarray:
    """QRS + T wave at each peak, a P wave ``P_OFFSET`` before it, optional 6 Hz fibrillatory waves and noise."""
    t = np.arange(N, dtype=np.float64)[:, None]
    p = np.asarray(peaks, dtype=np.float64)[None, :]
    x = r_amp * (np.exp(-0.5 * ((t - p) / 4) ** 2) + 0.25 * np.exp(-0.5 * ((t - p - 70) / 15) ** 2)
                 + p_amp * np.exp(-0.5 * ((t - p + P_OFFSET) / 8) ** 2)).sum(axis=1)
    x = x + f_waves * np.sin(2 * np.pi * 6.0 * t[:, 0] / FS + 0.7)
    return (x + 0.005 * np.random.default_rng(seed).standard_normal(N)).astype(np.float32)


def irregular(seed: int) -> np.ndarray:
    p = (60 + np.cumsum(np.random.default_rng(seed).uniform(110, 250, 40))).astype(np.int64)
    return p[p < N - 40]


REGULAR = np.arange(80, N - 40, 200)


def _off_line(seg: np.ndarray) -> float:
    """Largest distance of a segment from its least-squares line (0 for a straight baseline)."""
    t = np.arange(len(seg))
    return float(np.abs(seg - np.polyval(np.polyfit(t, seg, 1), t)).max())


def _bank(recordings: list[np.ndarray], labels: list[int]) -> RhythmBank:
    return RhythmBank.from_signals(np.stack(recordings), np.asarray(labels), FS, per_class=len(recordings),
                                   trim=0.0)


def test_a_sinus_recording_gives_its_p_waves_and_the_sources_f_waves_go():
    """An AF source re-timed to a sinus recording's beats: P waves where the recording has them (P_OFFSET
    before each beat), scaled to the source's R amplitude; the source's f-waves are gone."""
    ref = ecg(REGULAR, p_amp=0.12, r_amp=2.0)
    bank = _bank([ref] * 3, [0, 0, 0])
    atrial = bank.draw_atrial(np.zeros(1, int), np.zeros(1, int), FS)
    src_peaks = irregular(2)
    src = ecg(src_peaks, p_amp=0.0, f_waves=0.08, r_amp=1.5)
    out, done = retime(src[None], [src_peaks], [REGULAR], FS, atrial=atrial)
    plain, _ = retime(src[None], [src_peaks], [REGULAR], FS)
    amp = r_amplitude(src[None], [src_peaks], FS)[0]
    assert done.all()
    for r in REGULAR[1:-1]:
        seg = out[0, r - 70:r - 15]
        assert abs(int(np.argmax(seg)) - (70 - P_OFFSET)) <= 2                       # where sinus puts it ...
        assert seg.max() - seg[0] == pytest.approx(0.12 * amp, rel=0.25)             # ... scaled to the source
        assert _off_line(out[0, r + 110:r + 200 - 70]) < 0.01 * amp                  # no f-waves left
    assert _off_line(plain[0, REGULAR[3] + 110:REGULAR[4] - 16]) > 0.05              # without it they move along


def test_an_af_recording_gives_its_fibrillatory_waves_and_no_p_waves():
    """A sinus source re-timed to an AF recording's beats carries that recording's f-waves (scaled to the
    source's R amplitude) in the T-P zones, and none of its own P waves."""
    tgt = irregular(4)
    ref = ecg(tgt, p_amp=0.0, f_waves=0.08, r_amp=2.0)
    bank = _bank([ref] * 4 + [ecg(REGULAR, seed=i) for i in range(4)], [1] * 4 + [0] * 4)
    atrial = bank.draw_atrial(np.ones(1, int), np.zeros(1, int), FS)
    ref_amp = r_amplitude(ref[None], [tgt], FS)[0]
    assert np.allclose(atrial[0], ref / ref_amp, atol=2e-3)  # the recording itself, float16 storage
    src = ecg(REGULAR, p_amp=0.12, r_amp=1.0)
    out, done = retime(src[None], [REGULAR], [tgt], FS, atrial=atrial)
    plain, _ = retime(src[None], [REGULAR], [tgt], FS)
    amp = r_amplitude(src[None], [REGULAR], FS)[0]
    waves = 0.08 * np.sin(2 * np.pi * 6.0 * np.arange(N) / FS + 0.7) / ref_amp * amp
    took, kept = [], []
    for a, b in zip(tgt[1:-2], tgt[2:-1]):
        if b - a > 180:  # a T-P zone long enough to hold more than its blends
            seg = slice(a + 120, b - 30)
            took.append(np.corrcoef(detrend(out[0, seg]), detrend(waves[seg]))[0, 1])
            kept.append(np.corrcoef(detrend(plain[0, seg]), detrend(waves[seg]))[0, 1])
    assert done.all() and len(took) >= 3
    assert min(took) > 0.9 and np.mean(kept) < 0.6  # without it: the source's own T-P, moved


def test_replace_atrial_joins_without_a_step_and_leaves_the_rest():
    row = np.linspace(0.0, 1.0, 400) + np.where(np.arange(400) < 200, 0.0, 0.3)  # a step inside the zone
    activity = np.sin(np.arange(400) / 5.0)
    out = replace_atrial(row, [(100.0, 300.0)], activity, 0.2, FS)
    assert np.array_equal(out[:100], row[:100]) and np.array_equal(out[301:], row[301:])
    assert np.abs(np.diff(out[95:306])).max() < 0.06     # no step where it joins, and the row's step is gone
    inner = out[115:286] - np.linspace(out[115], out[285], 171)
    want = 0.2 * (activity[115:286] - np.linspace(activity[115], activity[285], 171))
    assert np.corrcoef(inner, want)[0, 1] > 0.95


def test_shapes_resampling_and_old_banks():
    ref = ecg(REGULAR, p_amp=0.12)
    bank = _bank([ref] * 3, [0, 0, 0])
    with pytest.raises(ValidationError, match="atrial activity"):
        retime(ref[None], [REGULAR], [REGULAR], FS, atrial=np.zeros((1, 7)))
    at_500 = bank.draw_atrial(np.zeros(1, int), np.zeros(1, int), 500.0)
    at_250 = bank.draw_atrial(np.zeros(1, int), np.zeros(1, int), FS)
    assert at_500.shape == (1, 2 * N) and np.allclose(at_500[0, ::2], at_250[0], atol=1e-6)
    again = RhythmBank.from_arrays(bank.to_arrays())
    assert np.array_equal(again.signals, bank.signals)
    old = RhythmBank.from_arrays({k: v for k, v in bank.to_arrays().items() if k != "signals"})
    with pytest.raises(ValidationError, match="stores no recordings"):
        old.draw_atrial(np.zeros(1, int), np.zeros(1, int), FS)
