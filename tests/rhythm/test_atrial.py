"""augframe.atrial: P-wave templates of references, and atrial activity replaced in re-timed ECGs."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.atrial import P_SPAN_S, atrial_templates, replace_atrial, resample_template, template_length
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


def test_sinus_reference_gives_its_p_wave_and_af_reference_none():
    sinus = ecg(REGULAR, p_amp=0.12, r_amp=2.0)
    af = ecg(irregular(1), p_amp=0.0, f_waves=0.08)
    tpl = atrial_templates(np.stack([sinus, af]), [REGULAR, irregular(1)], FS)
    assert tpl.shape == (2, template_length(FS))
    # P apex sits P_OFFSET before R; the template spans R - 280 ms .. R - 60 ms
    apex = int(round(P_SPAN_S[0] * FS)) - P_OFFSET
    assert abs(int(np.argmax(tpl[0])) - apex) <= 2
    assert tpl[0].max() == pytest.approx(0.12 / r_amplitude(sinus[None], [REGULAR], FS)[0] * 2.0, rel=0.15)
    assert not tpl[1].any()  # f-waves have no fixed timing to the QRS: no template


def test_too_few_beats_give_no_template():
    assert not atrial_templates(ecg(REGULAR[:3])[None], [REGULAR[:3]], FS).any()


def test_retime_with_atrial_removes_f_waves_and_places_p_waves():
    src_peaks = irregular(2)
    src = ecg(src_peaks, p_amp=0.0, f_waves=0.08, r_amp=1.5)
    ref = ecg(REGULAR, p_amp=0.12)
    tpl = atrial_templates(ref[None], [REGULAR], FS)
    out, done = retime(src[None], [src_peaks], [REGULAR], FS, atrial=tpl)
    assert done.all()
    y = out[0]
    amp = r_amplitude(src[None], [src_peaks], FS)[0]
    flat, _ = retime(src[None], [src_peaks], [REGULAR], FS, atrial=np.zeros_like(tpl))
    p_wave = y - flat[0]  # what the template added
    ref_amp = r_amplitude(ref[None], [REGULAR], FS)[0]
    for r in REGULAR[1:-1]:
        assert abs(int(np.argmax(p_wave[r - 70:r])) - (70 - P_OFFSET)) <= 2  # where sinus puts the P wave ...
        assert p_wave[r - 70:r].max() == pytest.approx(0.12 / ref_amp * amp, rel=0.2)  # ... scaled to the source
        assert _off_line(flat[0, r + 110:r + 200 - 16]) < 0.01 * amp  # and no f-waves left in the T-P zone
    plain, _ = retime(src[None], [src_peaks], [REGULAR], FS)    # without templates the f-waves move along
    assert _off_line(plain[0, REGULAR[3] + 110:REGULAR[4] - 16]) > 0.05


def test_a_zero_template_leaves_a_flat_baseline():
    src_peaks = REGULAR
    src = ecg(src_peaks, p_amp=0.12)
    out, _ = retime(src[None], [src_peaks], [irregular(3)], FS, atrial=np.zeros((1, template_length(FS)), np.float32))
    tgt = irregular(3)
    for a, b in zip(tgt[1:-2], tgt[2:-1]):
        if b - a > 150:
            assert _off_line(out[0, a + 110:b - 16]) < 0.01  # P waves of the sinus source are gone


def test_replace_atrial_cuts_the_template_at_a_short_zone():
    row = np.zeros(300)
    tpl = np.ones(template_length(FS), np.float32)
    out = replace_atrial(row, [(150.0, 185.0)], np.array([200.0]), tpl, 2.0, FS)  # zone shorter than the template
    assert np.all(out[:150] == 0) and np.all(out[185:] == 0)
    assert np.all(out[150:185] == 2.0)


def test_wrong_template_shape_is_refused():
    with pytest.raises(ValidationError, match="atrial templates"):
        retime(ecg(REGULAR)[None], [REGULAR], [REGULAR], FS, atrial=np.zeros((1, 7)))


def test_resample_keeps_the_span():
    tpl = np.sin(np.linspace(0, np.pi, template_length(250.0)))
    up = resample_template(tpl, 250.0, 500.0)
    assert up.shape == (template_length(500.0),) and up.max() == pytest.approx(1.0, abs=0.01)


def test_bank_stores_templates_and_draws_them_with_the_rhythm():
    x = np.stack([ecg(REGULAR, p_amp=0.12, seed=i) for i in range(12)] +
                 [ecg(irregular(i), p_amp=0.0, f_waves=0.06, seed=i) for i in range(12)])
    labels = np.r_[np.zeros(12), np.ones(12)].astype(int)
    bank = RhythmBank.from_signals(x, labels, FS, per_class=8, trim=0.0)
    assert bank.atrial is not None and bank.atrial.shape == (len(bank), template_length(FS))
    sinus = bank.draw_atrial(np.zeros(5, int), np.arange(5), FS)
    af = bank.draw_atrial(np.ones(5, int), np.arange(5), FS)
    assert (np.abs(sinus).max(axis=1) > 0).all() and not af.any()
    again = RhythmBank.from_arrays(bank.to_arrays())
    assert np.array_equal(again.atrial, bank.atrial)
    old = RhythmBank.from_arrays({k: v for k, v in bank.to_arrays().items() if k != "atrial"})
    with pytest.raises(ValidationError, match="no atrial templates"):
        old.draw_atrial(np.zeros(1, int), np.zeros(1, int), FS)
