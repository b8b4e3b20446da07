"""Atrial activity between beats: a recording's P-wave template, and putting one into a re-timed ECG.

Sinus rhythm has a P wave at a fixed interval before every QRS; atrial fibrillation has none, and
fibrillatory waves instead. Re-timing a source to a target rhythm (:mod:`augframe.retime`) moves the
source's atrial activity with its beats, so an AF source re-timed to a sinus rhythm still carries
f-waves and no P waves, and a sinus source re-timed to an AF rhythm still carries P waves, now at
random distances from its QRS complexes.

:func:`atrial_templates` takes the atrial activity of the reference recording instead: the average of
the segments ``[R - 280 ms, R - 60 ms]`` before its beats (each segment's end-to-end line removed, so
baseline wander does not add up), divided by the recording's R amplitude. Activity with a fixed
timing to the QRS (a P wave) adds up in the average; activity without (f-waves, noise) averages out.
A template whose peak-to-peak is under ``MIN_COHERENCE`` x the beat-to-beat spread is not a P wave
and is stored as zeros, so the rule needs no class names: a sinus reference gives its P wave, an AF
reference gives none. :func:`replace_atrial` then puts a straight baseline over each T-P zone of the
re-timed ECG and adds the template, scaled to the source's R amplitude, before each beat; a diffusion
model redraws the rest (fibrillatory waves for AF, the details of a sinus baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augframe.beats import r_amplitude

P_SPAN_S = (0.28, 0.06)   # template from R - 280 ms to R - 60 ms (the P wave and the PR segment)
MIN_BEATS = 4             # segments needed before a template means anything
MIN_COHERENCE = 2.0       # template peak-to-peak over the beat-to-beat spread: below, no P wave
TAPER = 0.15              # raised-cosine share at each end, so the template joins the baseline smoothly


def template_length(fs: float) -> int:
    return int(round(P_SPAN_S[0] * fs)) - int(round(P_SPAN_S[1] * fs))


def _taper(n: int) -> np.ndarray:
    w = np.ones(n)
    k = max(1, int(TAPER * n))
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(k) / k))
    w[:k], w[n - k:] = ramp, ramp[::-1]
    return w


def atrial_templates(x: np.ndarray, peaks: Sequence[np.ndarray], fs: float) -> np.ndarray:
    """``[N, template_length(fs)]`` P-wave template of each row of ``x`` ``[N, samples]`` in units of its
    R amplitude; zeros where the row has no coherent atrial activity before its beats."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, 0, :] if x.ndim == 3 else x
    start, end = int(round(P_SPAN_S[0] * fs)), int(round(P_SPAN_S[1] * fs))
    length = start - end
    line = np.linspace(0.0, 1.0, length)
    amp = r_amplitude(x, peaks, fs)
    out = np.zeros((len(x), length), dtype=np.float32)
    for i, (row, p) in enumerate(zip(x, peaks)):
        p = np.asarray(p, dtype=np.int64)
        p = p[(p - start >= 0) & (p - end <= x.shape[-1])]
        if len(p) < MIN_BEATS or not amp[i] > 0:
            continue
        seg = row[p[:, None] + np.arange(-start, -end)[None, :]]
        seg = seg - seg[:, :1] - (seg[:, -1:] - seg[:, :1]) * line[None, :]
        mean = seg.mean(axis=0)
        spread = np.sqrt(np.mean(seg.var(axis=0, ddof=1)))
        if spread > 0 and np.ptp(mean) >= MIN_COHERENCE * spread:
            out[i] = (mean * _taper(length) / amp[i]).astype(np.float32)
    return out


def resample_template(template: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    """A template stored at ``fs_from`` at ``fs_to`` (linear interpolation over the same span)."""
    if fs_from == fs_to:
        return np.asarray(template, dtype=np.float32)
    n_to = template_length(fs_to)
    src = np.linspace(0.0, 1.0, template.shape[-1])
    return np.interp(np.linspace(0.0, 1.0, n_to), src, template).astype(np.float32)


def replace_atrial(row: np.ndarray, zones: Sequence[tuple[float, float]], beats: np.ndarray,
                   template: np.ndarray, amplitude: float, fs: float) -> np.ndarray:
    """``row`` with a straight baseline over each T-P zone and ``template x amplitude`` before each beat.

    ``zones`` are (start, end) sample times of the T-P segments, ``beats`` the R peaks that follow them
    (one per zone). The template ends ``P_SPAN_S[1]`` before its beat and is cut at the zone's start
    when the beats are close together.
    """
    out = np.array(row, dtype=np.float64)
    n = len(out)
    end_off = int(round(P_SPAN_S[1] * fs))
    length = len(template)
    scaled = np.asarray(template, dtype=np.float64) * float(amplitude)
    for (z0, z1), beat in zip(zones, beats):
        a, b = max(int(np.ceil(z0)), 0), min(int(np.floor(z1)), n - 1)
        if b - a < 2:
            continue
        out[a:b + 1] = np.linspace(out[a], out[b], b - a + 1)
        t_end = int(round(beat)) - end_off
        lo, hi = max(t_end - length, a), min(t_end, n)
        if hi <= lo:
            continue
        out[lo:hi] += scaled[length - (t_end - lo):length - (t_end - hi)]
    return out
