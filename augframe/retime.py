"""Re-time an ECG's beats to another recording's rhythm, keeping each QRS complex intact.

AF is a rhythm diagnosis: a "sinus" ECG made from an AF recording must have sinus beat timing, and an
"AF" ECG made from a sinus recording must be irregularly irregular. :func:`retime` moves the source's
beats to the R-peak times of a reference recording of the target class (a real rhythm, so its
variability is physiological, not a jittered metronome), with a piecewise-linear time warp:

* the QRS complex (``pre_s`` before to ``post_s`` after each R peak) is copied at unit speed;
* the ST-T segment is scaled by sqrt(RR_target / RR_source) (Bazett's QT-RR relation);
* the remaining T-P segment absorbs the rest of the timing change.

Output beat j takes source beat c_j, visiting the source's beat intervals in order and wrapping to
the first interval when the reference has more beats than the source. At a wrap the signal jumps;
the jump is removed by a linear ramp over the preceding T-P segment (baseline). The QRS mask
(1 on kept complexes, raised-cosine edges) tells a generator which samples are the patient's own.

:class:`RhythmBank` keeps the R-peak times of real windows per class (from the training side), so a
generator can draw a target-class rhythm by seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
from scipy.ndimage import uniform_filter1d

from augframe.atrial import replace_atrial
from augframe.beats import detect_r_peaks, r_amplitude, unplaced_beats
from augframe.errors import ValidationError
from augframe.seeding import Stream, numpy_rng


@attrs.frozen
class RetimeConfig:
    """Zone widths of the warp, in seconds."""

    pre_s: float = 0.06     # QRS kept from R - pre_s ...
    post_s: float = 0.06    # ... to R + post_s
    taper_s: float = 0.02   # raised-cosine edge of the QRS mask
    max_st_s: float = 0.40  # R to T end is at most this (and 0.45 RR)
    knot_s: float = 0.012   # half-width of the averaging that rounds the warp's knots (speed changes)

    def __attrs_post_init__(self) -> None:
        for name in ("pre_s", "post_s", "max_st_s"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"RetimeConfig.{name}={getattr(self, name)} must be positive")
        for name in ("taper_s", "knot_s"):
            if getattr(self, name) < 0:
                raise ValidationError(f"RetimeConfig.{name}={getattr(self, name)} must be >= 0")


def _interval_map(t0: float, t1: float, s0: float, s1: float, pre: float, post: float, st_max: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Knots (output, source) from just after beat t0's QRS to just before beat t1's QRS."""
    rr_t, rr_s = t1 - t0, s1 - s0
    e_s = min(st_max, 0.45 * rr_s)
    e_t = e_s * np.sqrt(rr_t / rr_s)
    e_t = min(e_t, max(post, rr_t - pre - 1.0) - 1e-3)  # leave a T-P segment of at least one sample
    e_s = max(e_s, post + 1e-3)
    e_t = max(e_t, post + 1e-3)
    return (np.array([t0 + post, t0 + e_t, t1 - pre]),
            np.array([s0 + post, s0 + e_s, s1 - pre]))


def extend_beats(tgt: np.ndarray, n: int, pre: float, post: float) -> np.ndarray:
    """Target beats plus virtual beats at the median RR before 0 and after ``n``, so every output
    sample lies between two beats (edges then follow the target rhythm, not the source's)."""
    tgt = np.asarray(tgt, dtype=np.float64)
    rr = float(np.median(np.diff(tgt))) if len(tgt) > 1 else 0.8 * n / 10.0
    rr = max(rr, pre + post + 2.0)
    head = tgt[0] - rr * np.arange(int(np.ceil((tgt[0] + post) / rr)) + 1, 0, -1)
    tail = tgt[-1] + rr * np.arange(1, int(np.ceil((n + pre - tgt[-1]) / rr)) + 2)
    return np.concatenate([head, tgt, tail])


def _row_source_times(src: np.ndarray, tgt: np.ndarray, n: int, fs: float, cfg: RetimeConfig
                      ) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[float, float]]]:
    """Source time of every output sample, (T-P start, jump index) of each wrap, and the output's
    T-P zones (T end, next QRS start) between consecutive beats."""
    pre, post, st_max = cfg.pre_s * fs, cfg.post_s * fs, cfg.max_st_s * fs
    src = src.astype(np.float64)
    tgt = extend_beats(tgt, n, pre, post)
    n_int = len(src) - 1
    first = int(np.searchsorted(tgt, 0.0))  # the first real-window beat takes source interval 0
    choice = (np.arange(len(tgt)) - first) % n_int
    out_t, src_t, jumps, zones = [], [], [], []
    for j in range(len(tgt)):
        c = choice[j]
        out_t += [tgt[j] - pre, tgt[j] + post]
        src_t += [src[c] - pre, src[c] + post]
        if j + 1 < len(tgt):
            ko, ks = _interval_map(tgt[j], tgt[j + 1], src[c], src[c + 1], pre, post, st_max)
            out_t += list(ko[1:])
            src_t += list(ks[1:])
            zones.append((float(ko[1]), float(ko[2])))
            if choice[j + 1] != c + 1:  # wrap: the next beat comes from elsewhere in the source
                jumps.append((int(np.ceil(ko[1])), int(np.ceil(tgt[j + 1] - pre))))
    smooth = 2 * int(round(cfg.knot_s * fs)) + 1
    return _piecewise(np.asarray(out_t), np.asarray(src_t), n, smooth), jumps, zones


def _piecewise(out_t: np.ndarray, src_t: np.ndarray, n: int, smooth: int = 1) -> np.ndarray:
    """Evaluate the knot map at every output sample; each wrap starts a new monotone piece, within which
    the map is averaged over ``smooth`` samples (straight stretches stay as they are)."""
    grid = np.arange(n, dtype=np.float64)
    u = np.empty(n)
    # split knots into monotone pieces at the wraps (knot pairs whose source time goes backwards)
    cut = np.flatnonzero(np.diff(src_t) < 0) + 1
    bounds = [0, *cut.tolist(), len(out_t)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo = 0 if a == 0 else min(max(int(np.ceil(out_t[a])), 0), n)
        hi = n if b == len(out_t) else min(max(int(np.ceil(out_t[b])), 0), n)
        if hi > lo:
            u[lo:hi] = np.interp(grid[lo:hi], out_t[a:b], src_t[a:b])
            if smooth > 1 and hi - lo > smooth:  # round the knots: a sudden change of speed is a kink in the ECG
                u[lo:hi] = uniform_filter1d(u[lo:hi], smooth, mode="nearest")
    return u


def qrs_mask(peaks: Sequence[np.ndarray], n: int, fs: float, cfg: RetimeConfig = RetimeConfig()) -> np.ndarray:
    """``[N, n]`` float mask: 1 on each kept QRS (R - pre_s .. R + post_s), raised-cosine edges."""
    grid = np.arange(n, dtype=np.float64)
    out = np.zeros((len(peaks), n), dtype=np.float32)
    pre, post, tap = cfg.pre_s * fs, cfg.post_s * fs, max(cfg.taper_s * fs, 1e-9)
    for i, p in enumerate(peaks):
        if len(p) == 0:
            continue
        d = grid[None, :] - np.asarray(p, dtype=np.float64)[:, None]  # [beats, n]
        outside = np.maximum(np.maximum(-pre - d, d - post), 0.0)     # distance outside the kept zone
        w = np.where(outside <= 0, 1.0, np.where(outside < tap, 0.5 * (1 + np.cos(np.pi * outside / tap)), 0.0))
        out[i] = w.max(axis=0)
    return out


def retime(x: np.ndarray, source_peaks: Sequence[np.ndarray], target_peaks: Sequence[np.ndarray], fs: float,
           cfg: RetimeConfig = RetimeConfig(), atrial: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-time each row of ``x`` ``[N, L]`` (or ``[N, leads, L]``) from its peaks to the target peaks.

    ``atrial`` (``[N, L]``, :meth:`RhythmBank.draw_atrial`: the recording each target rhythm came from,
    in units of its R amplitude) replaces the source's atrial activity: each T-P segment takes that
    recording's own samples there (its P waves or fibrillatory waves; :func:`augframe.atrial.replace_atrial`),
    scaled to the source's R amplitude. Without it the source's T-P segments move with its beats.

    Returns the re-timed signals (same shape) and a ``[N]`` bool array ``retimed``: False where a
    row had fewer than two source beats or no target beat, which are returned unchanged (the caller
    decides what to do with them; nothing is re-timed silently half-way).
    """
    x = np.asarray(x, dtype=np.float32)
    squeeze = x.ndim == 2
    xs = x[:, None, :] if squeeze else x
    if xs.ndim != 3:
        raise ValidationError(f"retime needs [N, L] or [N, leads, L] signals, got shape {x.shape}")
    if len(source_peaks) != len(xs) or len(target_peaks) != len(xs):
        raise ValidationError(f"retime: {len(xs)} signals but {len(source_peaks)} source and "
                              f"{len(target_peaks)} target peak lists")
    n = xs.shape[-1]
    if atrial is not None and np.shape(atrial) != (len(xs), n):
        raise ValidationError(f"retime: atrial activity must be [{len(xs)}, {n}] (one recording per row, as long "
                              f"as the signals), got shape {np.shape(atrial)}; draw it with RhythmBank.draw_atrial")
    out = xs.copy()
    done = np.zeros(len(xs), dtype=bool)
    grid = np.arange(n, dtype=np.float64)
    for i, (sp, tp) in enumerate(zip(source_peaks, target_peaks)):
        sp = np.asarray(sp, dtype=np.int64)
        tp = np.asarray(tp, dtype=np.int64)
        tp = tp[(tp >= 0) & (tp < n)]
        if len(sp) < 2 or len(tp) < 1:
            continue
        u, jumps, zones = _row_source_times(sp, tp, n, fs, cfg)
        u = np.clip(u, 0, n - 1)
        for lead in range(xs.shape[1]):
            row = np.interp(u, grid, xs[i, lead].astype(np.float64))
            for start, at in jumps:  # ramp the level step at each wrap away over the T-P segment before it
                start = max(start, 0)
                if 2 <= at < n and start < at:
                    step = row[at] - row[at - 1] - (row[at - 1] - row[at - 2])
                    row[start:at] += np.linspace(0.0, step, at - start)
            if atrial is not None:
                amp = r_amplitude(xs[i:i + 1, lead], [sp], fs)[0]
                row = replace_atrial(row, zones, atrial[i], amp if np.isfinite(amp) else 0.0, fs)
            out[i, lead] = row.astype(np.float32)
        done[i] = True
    return (out[:, 0, :] if squeeze else out), done


#: Why a source cannot be re-timed (the generator refuses it; the filter chain rejects the candidate).
TOO_FEW_BEATS = "fewer than two beats detected in the source: its rhythm cannot be re-timed"
UNPLACED_BEAT = "the source has QRS-like activity the beat detector did not place: re-timing would move it anywhere"


def source_beats(x: np.ndarray, fs: float) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """R peaks of each source row (first lead) and, per row, why it cannot be re-timed ('' if it can)."""
    x = np.asarray(x)
    x = x[:, 0, :] if x.ndim == 3 else x
    peaks = detect_r_peaks(x, fs)
    unplaced = unplaced_beats(x, peaks, fs)
    why = tuple(TOO_FEW_BEATS if len(p) < 2 else UNPLACED_BEAT if bad else "" for p, bad in zip(peaks, unplaced))
    return peaks, why


@attrs.frozen(eq=False)
class RhythmBank:
    """R-peak times of real windows, per class: the rhythms a generator can transplant.

    ``peaks`` is flat, ``offsets[i]:offsets[i + 1]`` are window i's peaks (sample indices at ``fs`` in
    windows of ``n_samples``); ``labels[i]`` its class index; ``signals[i]`` the window itself (first
    lead) in units of its R amplitude, float16: the atrial activity :meth:`draw_atrial` hands out
    (None for a bank saved before it).
    """

    peaks: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))
    offsets: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))
    labels: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))
    fs: float = 250.0
    n_samples: int = 2500
    signals: np.ndarray | None = attrs.field(default=None, converter=lambda a: None if a is None
                                             else np.asarray(a, dtype=np.float16))

    def __attrs_post_init__(self) -> None:
        if len(self.offsets) != len(self.labels) + 1 or (len(self.offsets) and self.offsets[-1] != len(self.peaks)):
            raise ValidationError("RhythmBank: offsets must have one entry more than labels and end at len(peaks)")
        if self.signals is not None and self.signals.shape != (len(self.labels), self.n_samples):
            raise ValidationError(f"RhythmBank: signals must be [{len(self.labels)}, {self.n_samples}], "
                                  f"got {self.signals.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def window(self, i: int) -> np.ndarray:
        return self.peaks[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_signals(cls, x: np.ndarray, labels: np.ndarray, fs: float, *, per_class: int = 256, seed: int = 0,
                     min_beats: int = 3, trim: float = 0.1) -> RhythmBank:
        """Peaks of up to ``per_class`` windows of each class (seeded choice), first lead.

        Windows whose beats cannot all be placed are skipped, and so are the ``trim`` tails (each side) of
        each class's RR-CV distribution: real labelled windows include noise and ectopic runs, and a
        transplanted rhythm should be typical of its class, not its outliers (the rule knows no class).
        """
        x = np.asarray(x)
        x = x[:, 0, :] if x.ndim == 3 else x
        labels = np.asarray(labels, dtype=np.int64)
        rng = numpy_rng(seed, Stream.RETIME_SIGNALS)
        chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: 4 * per_class]
                                 for c in np.unique(labels)]).astype(np.int64)
        peaks = detect_r_peaks(x[chosen], fs)
        ok = ~unplaced_beats(x[chosen], peaks, fs) & np.array([len(p) >= min_beats for p in peaks], dtype=bool)
        cv = np.array([np.std(np.diff(p)) / np.mean(np.diff(p)) if len(p) >= 3 else np.nan for p in peaks])
        for c in np.unique(labels[chosen]):
            m = ok & (labels[chosen] == c)
            if trim > 0 and m.sum() >= 10:
                lo, hi = np.quantile(cv[m], [trim, 1 - trim])
                ok &= ~m | ((cv >= lo) & (cv <= hi))
        counts: dict[int, int] = {}
        sel = []
        for k, (j, good) in enumerate(zip(chosen, ok)):
            lab = int(labels[j])
            if good and counts.get(lab, 0) < per_class:
                counts[lab] = counts.get(lab, 0) + 1
                sel.append(k)
        if not sel:
            raise ValidationError("RhythmBank: no window had enough detected beats; are these ECGs?")
        kept = [peaks[k] for k in sel]
        lens = np.array([len(p) for p in kept], dtype=np.int64)
        rows = np.asarray(x[chosen[sel]], dtype=np.float64)
        amp = r_amplitude(rows, kept, fs)
        good = np.isfinite(amp) & (amp > 0)
        signals = np.where(good[:, None], rows / np.where(good, amp, 1.0)[:, None], 0.0)
        return cls(np.concatenate(kept), np.concatenate([[0], np.cumsum(lens)]), labels[chosen[sel]], float(fs),
                   int(x.shape[-1]), signals)

    @classmethod
    def from_windows(cls, data: object, *, per_class: int = 256, seed: int = 0) -> RhythmBank:
        """:meth:`from_signals` on a WindowDataset / ECGBatch, reading only the windows it may keep."""
        from augframe.windows import as_windows, gather

        ds = as_windows(data)
        labels = np.asarray(ds.labels, dtype=np.int64)
        rng = numpy_rng(seed, Stream.RETIME_WINDOWS)
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: 4 * per_class]
                                      for c in np.unique(labels[labels >= 0])]).astype(np.int64))
        return cls.from_signals(gather(ds, idx).numpy(), labels[idx], float(ds.fs), per_class=per_class, seed=seed)

    def choose(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The stored window each sample's seed picks among its class's windows."""
        out = []
        for lab, seed in zip(np.asarray(labels), np.asarray(seeds)):
            rows = np.flatnonzero(self.labels == int(lab))
            if len(rows) == 0:
                raise ValidationError(
                    f"the rhythm bank has no window of class index {int(lab)} with enough beats; build it from "
                    f"real windows of that class that are long enough to hold a rhythm (e.g. 10 s)")
            out.append(int(rows[int(seed) % len(rows)]))
        return np.asarray(out, dtype=np.int64)

    def draw(self, labels: np.ndarray, seeds: np.ndarray, fs: float, n_samples: int) -> list[np.ndarray]:
        """One stored rhythm of each requested class, chosen by the sample's seed, at ``fs``/``n_samples``."""
        out = []
        scale = fs / self.fs
        for i in self.choose(labels, seeds):
            p = np.round(self.window(int(i)) * scale).astype(np.int64)
            out.append(p[(p >= 0) & (p < n_samples)])
        return out

    def draw_atrial(self, labels: np.ndarray, seeds: np.ndarray, fs: float, n_samples: int | None = None
                    ) -> np.ndarray:
        """``[N, n_samples]``: the recordings of the rhythms :meth:`draw` picks for the same labels and seeds,
        in units of their R amplitude, at ``fs`` (default length: the stored windows' span at ``fs``). Their
        atrial activity lies where it belongs between the drawn beats: ``retime(..., atrial=)``."""
        if self.signals is None:
            raise ValidationError("this rhythm bank stores no recordings (it was saved before atrial activity was "
                                  "taken from them): rebuild it from training windows (set_style_bank / fit), or "
                                  "keep the source's atrial activity (atrial = 'source')")
        if n_samples is None:
            n_samples = int(round(self.n_samples * fs / self.fs))
        out = np.zeros((len(labels), n_samples), dtype=np.float32)
        grid = np.arange(n_samples) * (self.fs / fs)
        for k, i in enumerate(self.choose(labels, seeds)):
            row = self.signals[i].astype(np.float32)
            if fs == self.fs:
                m = min(n_samples, self.n_samples)
                out[k, :m] = row[:m]
            else:
                out[k] = np.interp(grid, np.arange(self.n_samples), row, right=0.0)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"peaks": self.peaks, "offsets": self.offsets, "labels": self.labels,
               "geometry": np.array([self.fs, float(self.n_samples)])}
        if self.signals is not None:
            out["signals"] = self.signals
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RhythmBank:
        try:
            fs, n = np.asarray(arrays["geometry"], dtype=np.float64).tolist()
            return cls(arrays["peaks"], arrays["offsets"], arrays["labels"], float(fs), int(n), arrays.get("signals"))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValidationError(f"rhythm bank arrays are incomplete or malformed ({exc}); re-save the model") from exc
