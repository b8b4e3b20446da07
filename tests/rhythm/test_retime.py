"""augframe.retime: beats land on the target rhythm, QRS complexes survive, edges follow the target."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.beats import detect_r_peaks
from augframe.errors import ValidationError
from augframe.retime import RetimeConfig, RhythmBank, extend_beats, qrs_mask, retime

FS, N = 250.0, 2500


def pulse_ecg(peaks: np.ndarray, p_wave: bool = True) -> np.ndarray:
    """A clean synthetic ECG: QRS (narrow positive R, small S), T wave, optional P wave."""
    t = np.arange(N, dtype=np.float64)[:, None]
    p = np.asarray(peaks, dtype=np.float64)[None, :]
    x = (np.exp(-0.5 * ((t - p) / 4) ** 2) - 0.2 * np.exp(-0.5 * ((t - p - 8) / 5) ** 2)
         + 0.25 * np.exp(-0.5 * ((t - p - 70) / 15) ** 2))
    if p_wave:
        x = x + 0.1 * np.exp(-0.5 * ((t - p + 45) / 8) ** 2)
    return x.sum(axis=1).astype(np.float32)


def irregular(seed: int, lo: float = 110, hi: float = 260) -> np.ndarray:
    rr = np.random.default_rng(seed).uniform(lo, hi, 40)
    p = (40 + np.cumsum(rr)).astype(np.int64)
    return p[p < N - 30]


@pytest.mark.parametrize("seed", range(4))
def test_regular_source_takes_an_irregular_target_rhythm(seed):
    src = np.arange(90, N, 200) + seed * 7
    tgt = irregular(seed)
    y, done = retime(pulse_ecg(src)[None], [src], [tgt], FS)
    assert done.all()
    found = detect_r_peaks(y, FS)[0]
    assert all(np.min(np.abs(found - t)) <= 2 for t in tgt)  # every target beat is there ...
    ext = extend_beats(tgt, N, 15, 15)                         # ... and nothing but target (or edge) beats
    assert all(np.min(np.abs(ext - f)) <= 2 for f in found)
    assert np.allclose(y[0, tgt], 1.0 - 0.2 * np.exp(-0.5 * (8 / 5) ** 2), atol=0.02)  # R amplitude kept


@pytest.mark.parametrize("seed", range(3))
def test_irregular_source_becomes_regular(seed):
    src = irregular(seed)
    tgt = np.arange(60, N, 205)
    y, _ = retime(pulse_ecg(src)[None], [src], [tgt], FS)
    rr = np.diff(detect_r_peaks(y, FS)[0])
    assert rr.std() / rr.mean() < 0.02               # source RR CV is about 0.25


def test_qrs_is_copied_sample_for_sample():
    src = np.arange(90, N, 200)
    tgt = irregular(5)
    x = pulse_ecg(src)
    y, _ = retime(x[None], [src], [tgt], FS)
    half = int(0.05 * FS)
    for j, tp in enumerate(tgt[1:-1], start=1):
        sp = src[j % (len(src) - 1)]
        np.testing.assert_allclose(y[0, tp - half:tp + half], x[sp - half:sp + half], atol=1e-5)


def test_no_beat_from_the_source_leaks_in_at_the_edges():
    src = np.arange(30, N, 180)      # source beats right at both edges
    tgt = np.arange(300, 2200, 250)  # target rhythm without beats near the edges
    y, _ = retime(pulse_ecg(src)[None], [src], [tgt], FS)
    found = detect_r_peaks(y, FS)[0]
    inside = found[(found > 60) & (found < N - 60)]
    # the only beats are the target's and its extension at the same rate (virtual beats)
    ext = extend_beats(tgt, N, 15, 15)
    assert all(np.min(np.abs(ext - f)) <= 2 for f in inside)


def test_wraps_leave_no_level_step():
    src = np.arange(100, 1000, 300)   # 3 source beats -> many wraps for a fast target
    tgt = np.arange(50, N, 150)
    y, _ = retime(pulse_ecg(src)[None] + 0.0, [src], [tgt], FS)
    assert np.abs(np.diff(y[0])).max() <= np.abs(np.diff(pulse_ecg(src))).max() + 1e-3


def test_rows_without_two_beats_are_returned_unchanged_and_flagged():
    x = np.stack([pulse_ecg(np.arange(90, N, 200)), np.zeros(N, np.float32)])
    y, done = retime(x, [np.arange(90, N, 200), np.array([500])], [irregular(1), irregular(2)], FS)
    assert done.tolist() == [True, False]
    np.testing.assert_array_equal(y[1], x[1])


def test_multi_lead_rows_share_one_warp():
    src, tgt = np.arange(90, N, 200), irregular(3)
    x = np.stack([pulse_ecg(src), -2 * pulse_ecg(src)])[None]
    y, _ = retime(x, [src], [tgt], FS)
    np.testing.assert_allclose(y[0, 1], -2 * y[0, 0], atol=1e-5)


def test_bad_shapes_are_named():
    with pytest.raises(ValidationError, match="peak lists"):
        retime(np.zeros((2, N)), [np.arange(3)], [np.arange(3)], FS)
    with pytest.raises(ValidationError, match="must be positive"):
        RetimeConfig(pre_s=0)


def test_qrs_mask_marks_complexes_with_tapers():
    m = qrs_mask([np.array([500, 1000])], N, FS)[0]
    assert m[500] == 1 and m[1000] == 1 and m[750] == 0
    assert 0 < m[500 + int(0.07 * FS)] < 1


def test_rhythm_bank_draws_real_rhythms_by_seed_and_round_trips():
    x = np.stack([pulse_ecg(np.arange(90, N, 200))] * 3 + [pulse_ecg(irregular(s)) for s in range(3)])
    labels = np.array([0, 0, 0, 1, 1, 1])
    bank = RhythmBank.from_signals(x, labels, FS, per_class=2, seed=0)
    assert np.bincount(bank.labels).tolist() == [2, 2]
    a = bank.draw(np.array([1, 1, 0]), np.array([7, 7, 3]), FS, N)
    b = bank.draw(np.array([1, 1, 0]), np.array([7, 7, 3]), FS, N)
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and np.array_equal(a[0], a[1])
    rr1 = np.diff(a[0]); rr0 = np.diff(a[2])
    assert rr1.std() / rr1.mean() > 0.1 and rr0.std() / rr0.mean() < 0.02
    again = RhythmBank.from_arrays(bank.to_arrays())
    assert np.array_equal(again.peaks, bank.peaks) and again.fs == FS
    half = bank.draw(np.array([0]), np.array([3]), FS / 2, N // 2)[0]
    assert np.abs(half - a[2] / 2).max() <= 1
    with pytest.raises(ValidationError, match="class index 2"):
        bank.draw(np.array([2]), np.array([0]), FS, N)


def test_a_beat_the_detector_missed_makes_the_source_unretimable():
    from augframe.beats import unplaced_beats
    from augframe.retime import UNPLACED_BEAT, source_beats

    src = np.arange(90, N, 200)
    x = pulse_ecg(src)[None]
    assert not unplaced_beats(x, [src], FS)[0]
    assert unplaced_beats(x, [np.delete(src, 4)], FS)[0]        # one complex left unplaced
    peaks, why = source_beats(np.stack([x[0], np.zeros(N, np.float32)]), FS)
    assert why[0] == "" and "fewer than two" in why[1]
    small = x[0] + 0.6 * pulse_ecg(np.array([1190]), p_wave=False)   # an extra beat between two others
    _, why = source_beats(small[None], FS)
    assert why[0] in ("", UNPLACED_BEAT)  # placed (then it is a beat of the source) or refused, never moved blindly
    if why[0] == "":
        assert len(_[0]) == len(src) + 1


def test_rhythm_bank_trims_the_tails_of_each_class():
    regular = [pulse_ecg(np.arange(90, N, 200) + k) for k in range(18)]
    odd = [pulse_ecg(irregular(s)) for s in range(2)]                # two outliers among the regular class
    x = np.stack(regular + odd)
    bank = RhythmBank.from_signals(x, np.zeros(len(x), int), FS, per_class=50, seed=0, trim=0.1)
    cvs = [np.std(np.diff(bank.window(i))) / np.mean(np.diff(bank.window(i))) for i in range(len(bank))]
    assert max(cvs) < 0.05 and len(bank) <= 18
    untrimmed = RhythmBank.from_signals(x, np.zeros(len(x), int), FS, per_class=50, seed=0, trim=0.0)
    assert len(untrimmed) == 20


def test_rounded_knots_leave_no_kink_where_the_warp_changes_speed():
    """An abrupt change of warp speed bends a sloped baseline into a corner (a kink the plausibility
    splice check rejects); ``knot_s`` rounds it off."""
    src = np.arange(60, N - 30, 110)  # more source beats than target beats: no wraps, only speed changes
    tgt = irregular(5)
    x = 0.5 * np.sin(2 * np.pi * 0.4 * np.arange(N) / FS).astype(np.float32)  # the baseline alone: any bend is the warp's
    bend = {}
    for knot in (0.0, RetimeConfig().knot_s):
        y, _ = retime(x[None], [src], [tgt], FS, RetimeConfig(knot_s=knot))
        bend[knot] = np.abs(np.diff(y[0, tgt[1]:].astype(np.float64), 2)).max()  # (before: the edge's wrap)
    assert bend[RetimeConfig().knot_s] < 0.5 * bend[0.0]
