"""Splice detection of the improved validator: two real recordings joined at one sample must fail the
"splice" gate, real windows must pass it, and the reason must say where the join is."""

from __future__ import annotations

import numpy as np
import pytest

from augframe_plausibility.features import jump
from augframe_plausibility.validator import PlausibilityFilter

FS = 250.0


@pytest.fixture(scope="module")
def cleaned(cinc_small):
    """The plain-read CinC windows cleaned as the data layer cleans them (0.5 Hz high-pass + powerline)."""
    from augframe.data.preprocess import PreprocessConfig, clean

    x = cinc_small.numpy()[:, 0, :].astype(np.float64)
    return clean(x, FS, PreprocessConfig()).astype(np.float32), cinc_small.labels


def _splice(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each window's prefix joined to ANOTHER record's suffix at a known cut (30-70 % of the length)."""
    rng = np.random.default_rng(seed)
    n, length = x.shape
    other = (np.arange(n) + rng.integers(1, n, size=n)) % n
    cut = rng.integers(int(0.3 * length), int(0.7 * length), size=n)
    out = np.where(np.arange(length)[None, :] < cut[:, None], x, x[other])
    return out, other, cut


def test_spliced_windows_fail_the_splice_gate(cleaned, batch_of):
    x, y = cleaned
    assert len(x) > 60
    spliced, other, cut = _splice(x)
    same_record = other == np.arange(len(x))  # never, by construction
    assert not same_record.any()
    res = PlausibilityFilter().score(batch_of(spliced, labels=y))
    caught = res.checks["splice"] < 1
    assert caught.mean() >= 0.9, caught.mean()
    assert (~res.accept).mean() >= 0.9
    # the reason names the join's time, within two samples of the cut
    for i in np.flatnonzero(caught)[:20]:
        text = next(r for r in res.reasons[i] if "jumps at" in r)
        t = float(text.split("jumps at ")[1].split(" s")[0])
        assert abs(t * FS - cut[i]) <= 2, (text, cut[i])
        assert "(soft)" not in text  # a gate, not a soft check


def test_real_windows_pass_the_splice_gate(cleaned, cinc_small, batch_of):
    x, y = cleaned
    res = PlausibilityFilter().score(batch_of(x, labels=y))
    assert (res.checks["splice"] == 1).mean() >= 0.95
    assert res.accept.mean() >= 0.85
    # raw plain-read windows (no cleaning, more sample noise): the ratio is relative to the window's own
    # slope changes, so noisier data does not read as joins
    raw = PlausibilityFilter().score(cinc_small)
    assert (raw.checks["splice"] == 1).mean() >= 0.93


def test_jump_ratio_is_scale_free_and_finds_a_step(cleaned):
    x, _ = cleaned
    x = x[:16].astype(np.float64)
    r, _ = jump(x, FS)
    z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    assert np.allclose(jump(20 * x, FS)[0], r, rtol=1e-3)
    assert np.allclose(jump(z, FS)[0], r, rtol=1e-3)
    # a 0.05 mV level step at sample 1234 (a small fraction of a QRS) is found and located
    stepped = x.copy()
    stepped[:, 1234:] += 0.05
    rs, ts = jump(stepped, FS)
    assert (rs > 3.5).mean() >= 0.9 and (r <= 3.5).all()  # (a step inside a QRS upstroke can hide)
    hit = rs > 3.5
    assert np.all(np.abs(ts[hit] * FS - 1234) <= 1)
    # a kink within the first 0.1 s (filter / generator edge transient) is not a join
    edge = x.copy()
    edge[:, 10:] += 0.05
    assert np.allclose(jump(edge, FS)[0], r, rtol=1e-3)
    # short rows: no value instead of an error
    rr, tt = jump(x[:, :10], FS)
    assert np.isnan(rr).all() and np.isnan(tt).all()
