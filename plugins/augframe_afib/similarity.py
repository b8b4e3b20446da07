"""Signal-fidelity measures: per-pair (synthetic vs its own source) and set-level (real vs synthetic).

Per pair, exactly as the reference's comprehensive_metrics defines them (spec section 10), with
x = the source and y = the synthetic ECG, both ``[leads, samples]``:

* MSE = mean((x - y)^2); MAE = mean|x - y|
* PSNR = 20 log10(peak / sqrt(MSE)), peak = max(max|x|, max|y|) of *this pair* (not a fixed range)
* SSIM-1D: 11-sample box window, 'valid' positions, biased (co)variances, C1 = (0.01 L)^2,
  C2 = (0.03 L)^2 with L = 2; the mean of the SSIM map (over leads as well)
* SNR = 10 log10(mean(x^2) / MSE); Pearson r over all samples of the pair.

Set level: Frechet distance between Gaussian fits of classifier embeddings, and an unbiased RBF
MMD^2 (median-heuristic bandwidth) with a seeded permutation p-value.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import linalg

from augframe.errors import ValidationError
from augframe.seeding import Stream, numpy_rng

PAIR_METRICS = ("mse", "mae", "psnr_db", "ssim", "snr_db", "pearson_r")
SSIM_WINDOW = 11
SSIM_RANGE = 2.0


def _pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x, y = x[:, None, :], y[:, None, :]
    if x.shape != y.shape or x.ndim != 3:
        raise ValidationError(
            f"pairwise fidelity needs sources and synthetic ECGs of one shape [N, leads, samples]; got "
            f"{x.shape} and {y.shape} (pass sources aligned one-to-one with the synthetic batch)"
        )
    return x, y


def ssim_1d(x: np.ndarray, y: np.ndarray, window: int = SSIM_WINDOW, data_range: float = SSIM_RANGE) -> np.ndarray:
    """Mean 1-D SSIM per pair ``[N]`` (box window, valid positions, reference constants)."""
    x, y = _pairs(x, y)
    if x.shape[-1] < window:
        raise ValidationError(f"SSIM needs at least {window} samples per ECG; got {x.shape[-1]}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def box(z: np.ndarray) -> np.ndarray:
        return sliding_window_view(z, window, axis=-1).mean(axis=-1)

    mx, my = box(x), box(y)
    vx = box(x * x) - mx ** 2
    vy = box(y * y) - my ** 2
    cxy = box(x * y) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return smap.mean(axis=(1, 2))


def pair_metrics(sources: np.ndarray, synthetic: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-pair metric, one value per pair (PSNR/SNR are +inf for identical pairs)."""
    x, y = _pairs(sources, synthetic)
    diff = x - y
    mse = np.mean(diff ** 2, axis=(1, 2))
    peak = np.maximum(np.abs(x).max(axis=(1, 2)), np.abs(y).max(axis=(1, 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = 20.0 * np.log10(peak / np.sqrt(mse))
        snr = 10.0 * np.log10(np.mean(x ** 2, axis=(1, 2)) / mse)
    xf, yf = x.reshape(len(x), -1), y.reshape(len(y), -1)
    xc, yc = xf - xf.mean(1, keepdims=True), yf - yf.mean(1, keepdims=True)
    denom = np.sqrt((xc ** 2).sum(1) * (yc ** 2).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(denom > 0, (xc * yc).sum(1) / denom, np.nan)
    return {
        "mse": mse, "mae": np.mean(np.abs(diff), axis=(1, 2)), "psnr_db": psnr, "ssim": ssim_1d(x, y),
        "snr_db": snr, "pearson_r": r,
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits of two feature sets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValidationError(f"Frechet distance needs [N, D] features of one D; got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValidationError("Frechet distance needs at least 2 ECGs in each set")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    sa, sb = np.atleast_2d(sa), np.atleast_2d(sb)
    with warnings.catch_warnings():  # singular products (fewer ECGs than dimensions) warn; handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = linalg.sqrtm(sa @ sb)
        if not np.isfinite(covmean).all():  # near-singular product: regularise as pytorch-fid does
            off = np.eye(len(sa)) * 1e-6
            covmean = linalg.sqrtm((sa + off) @ (sb + off))
    covmean = np.real(covmean)
    return float(max(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(covmean), 0.0))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def mmd_rbf(a: np.ndarray, b: np.ndarray, *, seed: int, n_perm: int = 200, max_n: int = 1500) -> dict[str, float]:
    """Unbiased MMD^2 with an RBF kernel (bandwidth: median pooled distance) and a permutation p-value.

    Sets larger than ``max_n`` are subsampled (seeded) to keep the kernel matrix small.
    """
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ValidationError(f"mmd n_perm={n_perm!r}: the permutation test needs at least 1 permutation "
                              "(200 or more for a usable p-value)")
    rng = numpy_rng(seed, Stream.AFIB_MMD)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValidationError("MMD needs at least 2 ECGs in each set")
    if len(a) > max_n:
        a = a[rng.choice(len(a), max_n, replace=False)]
    if len(b) > max_n:
        b = b[rng.choice(len(b), max_n, replace=False)]
    z = np.concatenate([a, b])
    d2 = _sq_dists(z, z)
    med = np.median(d2[np.triu_indices(len(z), 1)])
    gamma = 1.0 / med if med > 0 else 1.0
    k = np.exp(-gamma * d2)
    n = len(a)

    def stat(idx: np.ndarray) -> float:
        ia, ib = idx[:n], idx[n:]
        kaa, kbb, kab = k[np.ix_(ia, ia)], k[np.ix_(ib, ib)], k[np.ix_(ia, ib)]
        m1, m2 = len(ia), len(ib)
        return float((kaa.sum() - np.trace(kaa)) / (m1 * (m1 - 1)) + (kbb.sum() - np.trace(kbb)) / (m2 * (m2 - 1))
                     - 2.0 * kab.mean())

    observed = stat(np.arange(len(z)))
    perms = np.array([stat(rng.permutation(len(z))) for _ in range(n_perm)])
    p = float((np.sum(perms >= observed) + 1) / (n_perm + 1))
    return {"mmd2": observed, "mmd_p": p, "mmd_bandwidth_sq": float(med)}
