"""R-peak detectors of the afib plugin's evaluation side, with a per-window result cache.

Two methods, both independent of the generator-side detector (``augframe.beats``):

* ``"xqrs"``: wfdb's XQRS (learning pass on each window, then detection), run at 250 Hz (other
  rates are resampled there and the beats mapped back) and moved to the local extreme within
  80 ms (wfdb ``correct_peaks``), so RR intervals are apex to apex;
* ``"bandpass"``: peaks of the rectified 5-20 Hz band-passed signal (scipy ``find_peaks``),
  cheap but cruder.

A classifier that is evaluated many times on the same windows pays for detection once per window
per process: results are kept in an LRU cache keyed by a hash of the window's float32 samples,
the rate and the method.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from fractions import Fraction

import numpy as np
from scipy import signal

from augframe.errors import ValidationError, require_choice

DETECTORS = ("xqrs", "bandpass")
DETECTOR_TEXT = {"xqrs": "wfdb XQRS", "bandpass": "5-20 Hz band-pass peaks"}
XQRS_FS = 250.0
MIN_SECONDS = 0.5  # shorter (or flat) signals have no beats


def band_pass(x: np.ndarray, fs: float, low: float = 5.0, high: float = 20.0, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (keeps QRS energy, drops P/T and wander)."""
    high = min(high, 0.45 * fs)
    sos = signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


def bandpass_r_peaks(x: np.ndarray, fs: float, *, max_bpm: float = 220.0, rel_height: float = 0.35) -> list[np.ndarray]:
    """R-peak sample indices of each row of ``x`` ``[N, samples]`` from the band-passed signal.

    Peaks of the rectified band-passed signal, at least 60/max_bpm s apart and above
    ``rel_height`` x the 99th percentile of that signal.
    """
    env = np.abs(band_pass(x, fs))
    distance = max(1, int(round(fs * 60.0 / max_bpm)))
    peaks = []
    for row in env:
        ref = np.percentile(row, 99)
        if not ref > 0:
            peaks.append(np.zeros(0, dtype=np.int64))
            continue
        idx, _ = signal.find_peaks(row, height=rel_height * ref, distance=distance)
        peaks.append(idx.astype(np.int64))
    return peaks


def xqrs_r_peaks(row: np.ndarray, fs: float) -> np.ndarray:
    """wfdb XQRS beats of one ECG ``[samples]``, at its apex, as sample indices at ``fs``."""
    from wfdb import processing

    row = np.asarray(row, dtype=np.float64)
    if fs != XQRS_FS:
        ratio = Fraction(XQRS_FS / fs).limit_denominator(1000)
        row = signal.resample_poly(row, ratio.numerator, ratio.denominator)
    xq = processing.XQRS(row, XQRS_FS)
    xq.detect(verbose=False)
    beats = np.asarray(xq.qrs_inds, dtype=np.int64)
    if len(beats):
        beats = np.asarray(processing.correct_peaks(row, beats, int(0.08 * XQRS_FS), int(0.04 * XQRS_FS),
                                                    peak_dir="compare"), dtype=np.int64)
        beats = np.unique(beats[beats >= 0])
    if fs != XQRS_FS:
        beats = np.unique(np.round(beats * (fs / XQRS_FS)).astype(np.int64))
    return beats


class PeakCache:
    """LRU map from (method, rate, window content) to its R peaks, with timing counters."""

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = int(max_items)
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.detected = 0
        self.seconds = {m: 0.0 for m in DETECTORS}
        self.windows = {m: 0 for m in DETECTORS}

    @staticmethod
    def key(row: np.ndarray, fs: float, method: str) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{method}|{float(fs)!r}|{row.shape[0]}|".encode())
        h.update(row.tobytes())
        return h.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return found

    def put(self, key: bytes, peaks: np.ndarray) -> None:
        peaks.setflags(write=False)
        self._items[key] = peaks
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def ms_per_window(self, method: str) -> float:
        """Mean detection time of the windows this process actually ran ``method`` on."""
        n = self.windows[method]
        return 1000.0 * self.seconds[method] / n if n else float("nan")

    def __len__(self) -> int:
        return len(self._items)


CACHE = PeakCache()


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, 0, :]
    if x.ndim != 2:
        raise ValidationError(f"R-peak detection needs ECGs [N, samples] or [N, leads, samples]; got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValidationError(f"{int(bad.sum())} ECG(s) (first: row {int(np.argmax(bad))}) contain NaN or inf; "
                              "clean or drop them before rhythm analysis")
    return x


def detect(x: np.ndarray, fs: float, method: str = "xqrs") -> list[np.ndarray]:
    """R-peak sample indices of each ECG in ``x`` (``[N, samples]``, or the first lead of ``[N, leads, samples]``).

    Flat signals and signals shorter than 0.5 s have no beats. Results are cached per window
    (see :data:`CACHE`); the returned arrays are read-only.
    """
    require_choice("detector", method, DETECTORS)
    if not fs > 0:
        raise ValidationError(f"fs={fs} must be a positive sampling rate in Hz")
    x = _rows(x)
    keys = [PeakCache.key(row, fs, method) for row in x]
    out: list[np.ndarray | None] = [CACHE.get(k) for k in keys]
    todo = [i for i, p in enumerate(out) if p is None]
    if not todo:
        return out  # type: ignore[return-value]
    t0 = time.perf_counter()
    live = [i for i in todo if x.shape[1] >= MIN_SECONDS * fs and np.ptp(x[i]) > 0]
    found = {i: np.zeros(0, dtype=np.int64) for i in todo}
    if method == "xqrs":
        found.update({i: xqrs_r_peaks(x[i], fs) for i in live})
    elif live:
        found.update(zip(live, bandpass_r_peaks(x[live], fs)))
    CACHE.seconds[method] += time.perf_counter() - t0
    CACHE.windows[method] += len(todo)
    CACHE.detected += len(todo)
    for i in todo:
        CACHE.put(keys[i], found[i])
        out[i] = found[i]
    return out  # type: ignore[return-value]
