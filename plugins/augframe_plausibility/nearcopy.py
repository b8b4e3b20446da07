"""The "near-copy" filter: reject synthetic ECGs that reproduce a training recording (a privacy leak).

Score: the largest shift-tolerant normalised cross-correlation (NCC) of a candidate with any training
window, ``max_tau sum_n a[n] b[n + tau]`` for mean-removed, unit-norm ``a`` and ``b`` (linear, not
circular: zero-padded FFTs), over lags ``|tau| <= max_shift``. A candidate is rejected when it exceeds
``threshold``.

All-pairs FFT correlation of 10^4 x 10^5 windows is far too much work, so the search is exact but
pruned. For every pair, ``|NCC(tau)| <= sum_f |A_f| |B_f|`` (triangle inequality on the inverse DFT),
and above a cut-off frequency the tail is bounded by Cauchy-Schwarz, ``sum_{f>fc} |A_f||B_f| <=
||A_hi|| ||B_hi||``; pooling neighbouring bins the same way shrinks the feature further. The bound is
therefore one matrix product of small per-window features (GEMM, GPU-friendly); only pairs whose
bound exceeds the threshold get the exact FFT correlation. On real CinC windows the bound stays
below 0.9 for > 99.9 % of pairs of different recordings, so the exact stage sees a tiny fraction.

Training windows are held once as raw float32 rows (on the device); their bound features are
computed chunk by chunk, so memory stays ``O(train x (samples + feature))``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.errors import DataError, ValidationError, require_choice
from augframe.protocols import FilterResult
from augframe.signals import ECGBatch
from augframe.windows import WindowDataset

METRICS = ("xcorr", "l2")
AGAINST = ("train", "all")


def _fast_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return int(next_fast_len(n, real=True))


@attrs.frozen(eq=False)
class NearCopyReport:
    """Per candidate: best NCC (or relative L2 distance), the training index and lag that gave it."""

    result: FilterResult
    value: np.ndarray
    train_index: np.ndarray
    lag: np.ndarray
    exact: np.ndarray
    pairs_checked_exactly: int


class NearCopyFilter:
    """Privacy gate against copies of training ECGs. Satisfies ``augframe.protocols.Filter``.

    Args:
        train: training windows: an ECGBatch, a path to a ``.npy`` of ``[N, samples]`` or
            ``[N, leads, samples]`` float32 (``train_fs`` then gives the rate), or a WindowDataset.
        threshold: reject when the max NCC exceeds it (``xcorr``), or when the relative L2 distance
            ``||c - t|| / ||c||`` falls below it (``l2``).
        metric: "xcorr" (shift-tolerant, default) or "l2" (nearest neighbour at zero lag, one GEMM).
        against: "train" guards ``train``; "all" guards ``all_windows`` instead: every window of the
            run's data, test windows and records the split leaves out included (``augframe run`` gives
            both). Use "all" when the generator was trained on records the run does not train on: a copy
            of those, or of a test window, is a leak the training split alone cannot see.
        all_windows: the windows ``against = "all"`` guards (same forms as ``train``).
        max_shift_s: largest lag searched (default: the whole window).
        device: torch device (default: CUDA when present, else CPU).
        lead: lead to compare (default "II" if present, else the first).
        cutoff_hz, pool: bound features: exact bins below ``cutoff_hz`` pooled ``pool`` at a time.
        train_chunk, cand_chunk, pair_chunk: work sizes (bound memory to ``cand_chunk x train_chunk``
            floats and ``pair_chunk x n_fft`` complex values).
    """

    name = "near-copy"

    def __init__(self, train: Any, threshold: float = 0.9, metric: str = "xcorr", max_shift_s: float | None = None,
                 device: str | None = None, lead: str | None = None, train_fs: float | None = None,
                 cutoff_hz: float = 40.0, pool: int = 2, train_chunk: int = 16384, cand_chunk: int = 2048,
                 pair_chunk: int = 2048, margin: float = 1e-3, against: str = "train",
                 all_windows: Any = None) -> None:
        import torch

        self.metric = require_choice("near-copy.metric", metric, METRICS)
        self.against = require_choice("near-copy.against", against, AGAINST)
        if self.against == "all":
            if all_windows is None:
                raise ValidationError("near-copy.against = 'all' needs every window of the run's data (augframe run "
                                      "gives it); outside a run, pass the windows to guard as all_windows")
            train = all_windows
        if not np.isfinite(threshold) or threshold <= 0:
            raise ValidationError(f"near-copy.threshold={threshold!r} must be a positive number")
        self.threshold = float(threshold)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.lead = lead
        self.cutoff_hz, self.pool = float(cutoff_hz), int(pool)
        self.train_chunk, self.cand_chunk, self.pair_chunk = int(train_chunk), int(cand_chunk), int(pair_chunk)
        self.margin = float(margin)
        x, self.fs, self.train_ids = _load_train(train, lead, train_fs)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            raise DataError(f"near-copy training windows {np.flatnonzero(~finite)[:5].tolist()} contain NaN/Inf; drop them")
        self.n_samples = x.shape[1]
        self.max_shift = self.n_samples - 1 if max_shift_s is None else min(self.n_samples - 1, int(round(max_shift_s * self.fs)))
        self.n_fft = _fast_len(self.n_samples + self.max_shift)
        self.train = torch.from_numpy(np.array(x, dtype=np.float32, copy=True)).to(self.device)
        self._train_feats = None

    # --- features --------------------------------------------------------------------------
    def _normalise(self, x):
        x = x - x.mean(dim=1, keepdim=True)
        norm = x.norm(dim=1, keepdim=True)
        return x / norm.clamp_min(1e-12), norm.squeeze(1)

    @functools.cached_property
    def _n_low(self) -> int:
        f = np.fft.rfftfreq(self.n_fft, 1.0 / self.fs)
        n_low = int((f <= self.cutoff_hz).sum())
        return max(self.pool, n_low - n_low % self.pool)

    def _features(self, spec):
        """Bound features of rfft spectra ``[B, F]``: pooled low-band magnitudes and the tail norm.

        With the one-sided weights (2 for interior bins), sum_f w|A||B| / n_fft bounds |NCC| and
        Parseval makes sum_f w|A|^2 / n_fft = 1 for unit-norm rows.
        """
        import torch

        w = torch.full((spec.shape[1],), 2.0, device=spec.device)
        w[0] = 1.0
        if self.n_fft % 2 == 0:
            w[-1] = 1.0
        p = (spec.real ** 2 + spec.imag ** 2) * w / self.n_fft
        low = p[:, : self._n_low].reshape(p.shape[0], -1, self.pool).sum(-1).sqrt()
        high = p[:, self._n_low:].sum(-1).sqrt()
        return torch.cat([low, high[:, None]], dim=1)

    def _train_features(self):
        import torch

        if self._train_feats is None:
            feats = []
            for s in range(0, len(self.train), self.train_chunk):
                z, _ = self._normalise(self.train[s:s + self.train_chunk])
                feats.append(self._features(torch.fft.rfft(z, n=self.n_fft)))
            self._train_feats = torch.cat(feats) if feats else torch.zeros(0, 1, device=self.device)
        return self._train_feats

    # --- scoring -----------------------------------------------------------------------------
    def score(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> FilterResult:
        return self.evaluate(candidates).result

    def evaluate(self, candidates: ECGBatch) -> NearCopyReport:
        import torch

        x = _lead(candidates, self.lead)
        n = len(x)
        reasons: list[list[str]] = [[] for _ in range(n)]
        ok = np.isfinite(x).all(axis=1)
        for i in np.flatnonzero(~ok):
            reasons[i].append("contains NaN or Inf")
        if candidates.fs != self.fs or x.shape[1] != self.n_samples:
            ok[:] = False
            for r in reasons:
                r.append(f"candidates are {x.shape[1]} samples at {candidates.fs:g} Hz; the training windows are "
                         f"{self.n_samples} samples at {self.fs:g} Hz (resample/crop to match)")
        value = np.full(n, np.nan)
        best_j = np.full(n, -1, dtype=np.int64)
        best_lag = np.zeros(n, dtype=np.int64)
        exact = np.zeros(n, dtype=bool)
        checked = 0
        pos = np.flatnonzero(ok)
        with torch.inference_mode():
            for s in range(0, len(pos), self.cand_chunk):
                idx = pos[s:s + self.cand_chunk]
                c = torch.from_numpy(np.ascontiguousarray(x[idx])).to(self.device)
                if self.metric == "l2":
                    v, j = self._nearest_l2(c)
                    value[idx], best_j[idx], exact[idx] = v, j, True
                    continue
                v, j, lag, ex, k = self._max_ncc(c)
                value[idx], best_j[idx], best_lag[idx], exact[idx] = v, j, lag, ex
                checked += k
        if self.metric == "xcorr":
            near = ok & (value > self.threshold)
            score = np.where(ok, 1.0 - np.clip(value, 0.0, 1.0), 0.0)
            for i in np.flatnonzero(near):
                reasons[i].append(f"shift-tolerant NCC {value[i]:.3f} > {self.threshold:g} with training window "
                                  f"{self.train_ids[best_j[i]]} at lag {best_lag[i]} samples (near copy)")
        else:
            near = ok & (value < self.threshold)
            score = np.where(ok, np.clip(value / (2.0 * self.threshold), 0.0, 1.0), 0.0)
            for i in np.flatnonzero(near):
                reasons[i].append(f"relative L2 distance {value[i]:.3f} < {self.threshold:g} to training window "
                                  f"{self.train_ids[best_j[i]]} (near copy)")
        accept = ok & ~near
        checks = {"input_valid": ok.astype(float), "not_near_copy": accept.astype(float)}
        result = FilterResult(self.name, score, accept, checks, tuple(tuple(r) for r in reasons))
        return NearCopyReport(result, value, best_j, best_lag, exact, checked)

    def _max_ncc(self, c):
        """Best NCC per candidate row of ``c`` over all training windows (exact where it matters)."""
        import torch

        z, _ = self._normalise(c)
        cspec = torch.fft.rfft(z, n=self.n_fft)
        cf = self._features(cspec)
        tf = self._train_features()
        m = len(c)
        best = torch.full((m,), -1.0, device=self.device)
        best_j = torch.full((m,), -1, dtype=torch.long, device=self.device)
        best_lag = torch.zeros(m, dtype=torch.long, device=self.device)
        bound_best = torch.full((m,), -1.0, device=self.device)
        cut = self.threshold - self.margin
        pairs_i, pairs_j = [], []
        for s in range(0, len(tf), self.train_chunk):
            ub = cf @ tf[s:s + self.train_chunk].T
            over = ub > cut
            # best bound among the pairs NOT checked exactly (all <= cut)
            bound_best = torch.maximum(bound_best, torch.where(over, -1.0, ub).max(dim=1).values)
            hit = over.nonzero()
            if len(hit):
                pairs_i.append(hit[:, 0])
                pairs_j.append(hit[:, 1] + s)
        lags = torch.arange(self.n_fft, device=self.device)
        lags = torch.where(lags > self.n_fft // 2, lags - self.n_fft, lags)
        allowed = lags.abs() <= self.max_shift
        k = 0
        if pairs_i:
            pi, pj = torch.cat(pairs_i), torch.cat(pairs_j)
            k = len(pi)
            for s in range(0, k, self.pair_chunk):
                a, b = pi[s:s + self.pair_chunk], pj[s:s + self.pair_chunk]
                tz, _ = self._normalise(self.train[b])
                tspec = torch.fft.rfft(tz, n=self.n_fft)
                # r[tau] = sum_n c[n] t[n + tau]  <=>  irfft(conj(C) * T)
                r = torch.fft.irfft(cspec[a].conj() * tspec, n=self.n_fft)
                r = torch.where(allowed, r, torch.tensor(-2.0, device=self.device))
                v, at = r.max(dim=1)
                # keep, per candidate, the best pair (scatter by sorting on value)
                order = torch.argsort(v)
                a_s, v_s, b_s, l_s = a[order], v[order], b[order], lags[at[order]]
                better = v_s > best[a_s]
                a_s, v_s, b_s, l_s = a_s[better], v_s[better], b_s[better], l_s[better]
                best[a_s], best_j[a_s], best_lag[a_s] = v_s, b_s, l_s  # later (larger) writes win
        # the true maximum is the best exact value, unless an unchecked pair's bound is higher (then it is <= that bound <= cut)
        exact = best >= bound_best
        value = torch.where(exact, best, bound_best)
        return (value.cpu().numpy().astype(np.float64), best_j.cpu().numpy(), best_lag.cpu().numpy(),
                exact.cpu().numpy(), k)

    def _nearest_l2(self, c):
        """Smallest ||c - t|| / ||c|| over the training windows (zero lag), by GEMM."""
        import torch

        cn = (c * c).sum(1)
        best = torch.full((len(c),), float("inf"), device=self.device)
        best_j = torch.full((len(c),), -1, dtype=torch.long, device=self.device)
        for s in range(0, len(self.train), self.train_chunk):
            t = self.train[s:s + self.train_chunk]
            d2 = cn[:, None] + (t * t).sum(1)[None, :] - 2.0 * (c @ t.T)
            v, j = d2.min(dim=1)
            upd = v < best
            best = torch.where(upd, v, best)
            best_j = torch.where(upd, j + s, best_j)
        rel = best.clamp_min(0).sqrt() / cn.sqrt().clamp_min(1e-12)
        return rel.cpu().numpy().astype(np.float64), best_j.cpu().numpy()


def _lead(batch: ECGBatch, lead: str | None) -> np.ndarray:
    if lead is not None:
        if lead not in batch.leads:
            raise ValidationError(f"near-copy lead={lead!r} is not in the batch leads {list(batch.leads)}")
        k = batch.leads.index(lead)
    else:
        k = batch.leads.index("II") if "II" in batch.leads else 0
    return np.asarray(batch.numpy()[:, k, :], dtype=np.float32)


def _load_train(train: Any, lead: str | None, train_fs: float | None) -> tuple[np.ndarray, float, tuple[str, ...]]:
    if isinstance(train, (str, Path)):
        path = Path(train)
        if not path.exists():
            raise DataError(f"near-copy training file {path} does not exist")
        if train_fs is None:
            raise ValidationError("near-copy: give train_fs (Hz) with a .npy of training windows")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"near-copy training file {path} cannot be read as a numeric .npy ({exc})") from exc
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
            raise DataError(f"near-copy training file {path} holds {getattr(arr, 'dtype', type(arr).__name__)}; "
                            "store the training windows as a float array")
        if arr.ndim == 3:
            arr = arr[:, 0, :]
        if arr.ndim != 2:
            raise DataError(f"{path} holds shape {arr.shape}; expected [N, samples] or [N, leads, samples]")
        return np.asarray(arr, dtype=np.float32), float(train_fs), tuple(str(i) for i in range(len(arr)))
    if isinstance(train, ECGBatch):
        return _lead(train, lead), train.fs, tuple(train.ids)
    if isinstance(train, WindowDataset):
        k = 0
        if lead is not None:
            if lead not in train.leads:
                raise ValidationError(f"near-copy lead={lead!r} is not in the training leads {list(train.leads)}")
            k = train.leads.index(lead)
        elif "II" in train.leads:
            k = train.leads.index("II")
        rows = np.stack([np.asarray(train[i][0])[k] for i in range(len(train))]).astype(np.float32)
        ids = tuple(getattr(train, "ids", [str(i) for i in range(len(train))]))
        return rows, float(train.fs), ids
    raise ValidationError(
        f"near-copy train of type {type(train).__name__}: give an ECGBatch, a WindowDataset or a path to a .npy"
    )
