"""R-peak agreement between two detectors (F1 within a tolerance), as used to check the apex detector.

Beats within ``edge_s`` of either window end are left out of both lists: a 10 s window cuts beats
there, and wfdb's XQRS needs a learning period at the start, so edge beats measure the window, not
the detector. Matching is wfdb's ``compare_annotations`` (one-to-one within the tolerance).
"""

from __future__ import annotations

import numpy as np


def xqrs_reference(x: np.ndarray, fs: float) -> np.ndarray:
    """wfdb XQRS beats moved to the local extreme (``correct_peaks``, peak_dir="compare")."""
    from wfdb import processing

    ref = np.asarray(processing.xqrs_detect(x, int(fs), verbose=False), dtype=int)
    if len(ref) == 0:
        return ref
    radius = int(round(0.08 * fs))
    return np.asarray(processing.correct_peaks(x, ref, radius, int(round(0.04 * fs)), peak_dir="compare"), dtype=int)


def match_counts(ref: np.ndarray, test: np.ndarray, length: int, fs: float, tol_s: float = 0.05,
                 edge_s: float = 0.25) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of ``test`` against ``ref``."""
    from wfdb import processing

    lo, hi = edge_s * fs, length - 1 - edge_s * fs
    ref = np.asarray(ref, dtype=int)
    test = np.asarray(test, dtype=int)
    ref = ref[(ref >= lo) & (ref <= hi)]
    test = test[(test >= lo) & (test <= hi)]
    if len(ref) == 0 or len(test) == 0:
        return 0, len(test), len(ref)
    c = processing.compare_annotations(ref, test, int(round(tol_s * fs)))
    return int(c.tp), int(c.fp), int(c.fn)


def f1(counts: np.ndarray) -> float:
    tp, fp, fn = np.asarray(counts).reshape(-1, 3).sum(axis=0)
    return float(2 * tp / max(1, 2 * tp + fp + fn))
