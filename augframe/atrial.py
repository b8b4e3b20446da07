"""Atrial activity between beats: putting a real recording's own atrial activity into a re-timed ECG.

Sinus rhythm has a P wave at a fixed interval before every QRS; atrial fibrillation has none, and
fibrillatory waves instead. Re-timing a source to a target rhythm (:mod:`augframe.retime`) moves the
source's atrial activity with its beats, so an AF source re-timed to a sinus rhythm still carries
f-waves and no P waves, and a sinus source re-timed to an AF rhythm still carries P waves, now at
random distances from its QRS complexes.

The target rhythm is a real recording's beat times, so that recording's own atrial activity already
lies at the right distance from every target beat: its P waves before each beat when it is sinus, its
fibrillatory waves when it is AF, with its own variability and noise. :func:`replace_atrial` copies
the recording's samples over each T-P segment of the re-timed ECG (in units of the recording's R
amplitude, scaled to the source's), each copy's end-to-end line removed and set on the segment's
straight baseline, blended in at both ends. No rule decides whether a class has P waves: the
recording does. A diffusion model may then redraw the details.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLEND_S = 0.04  # the copy cross-fades from and back into the signal over this at each end, so no kink


def _blend_weights(n: int, blend: int) -> np.ndarray:
    """1 inside a zone of ``n`` samples, raised-cosine ramps over its first and last ``blend`` samples."""
    k = min(blend, n // 3)
    w = np.ones(n)
    if k > 0:
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(k) / k))
        w[:k], w[n - k:] = ramp, ramp[::-1]
    return w


def replace_atrial(row: np.ndarray, zones: Sequence[tuple[float, float]], activity: np.ndarray,
                   amplitude: float, fs: float) -> np.ndarray:
    """``row`` with each T-P zone replaced by the same samples of ``activity`` x ``amplitude``.

    ``zones`` are (start, end) sample times of the T-P segments; ``activity`` is the recording whose
    beats the row was re-timed to, in units of its R amplitude. Within a zone the copy has its
    end-to-end line removed and sits on the straight line between the row's values at the zone's ends;
    over ``BLEND_S`` at each end it cross-fades from and back into the row.
    """
    out = np.array(row, dtype=np.float64)
    n, blend = len(out), int(round(BLEND_S * fs))
    act = np.asarray(activity, dtype=np.float64)
    for z0, z1 in zones:
        a, b = max(int(np.ceil(z0)), 0), min(int(np.floor(z1)), n - 1)
        if b - a < 2:
            continue
        w = _blend_weights(b + 1 - a, blend)
        line = np.linspace(out[a], out[b], b + 1 - a)
        copy = act[a:b + 1] - np.linspace(act[a], act[b], b + 1 - a)
        out[a:b + 1] = w * (line + copy * float(amplitude)) + (1 - w) * out[a:b + 1]
    return out
