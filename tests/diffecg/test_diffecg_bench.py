"""The benchmark's helpers: nested medians, beat pairs, the record bootstrap."""

from __future__ import annotations

import numpy as np

from augframe.signals import ECGBatch
from augframe_diffecg.generator import draw_seeds
from bench.diffecg import beat_pairs, diffecg_predictions, neighbour_index, ratio_ci, save_samples


def test_first_k_of_many_draws_are_the_draws_of_k():
    """The nested medians rely on this: draw j's seed does not depend on how many draws there are."""
    seeds = np.array([5, 17, 2**40 + 3])
    many = draw_seeds(seeds, 32).reshape(3, 32)
    for k in (1, 8, 16):
        assert np.array_equal(many[:, :k], draw_seeds(seeds, k).reshape(3, k))
    samples = np.random.default_rng(0).normal(size=(4, 32, 1, 10))
    preds = diffecg_predictions(samples, nested=(8, 16, 32, 64))
    assert list(preds) == ["DiffECG, 1 draw", "DiffECG, median of 8 draws", "DiffECG, median of 16 draws",
                           "DiffECG, median of 32 draws", "DiffECG, mean of 32 draws"]
    assert np.array_equal(preds["DiffECG, median of 8 draws"], np.median(samples[:, :8], axis=1))


def _beats() -> ECGBatch:
    x = np.arange(5 * 4, dtype=np.float32).reshape(5, 1, 4)
    meta = {"window": np.array([0, 0, 0, 1, 2]), "beat": np.array([0, 1, 2, 0, 0]), "record": np.array(list("aabcd"))}
    return ECGBatch(x, 250.0, ("I",), labels=np.array([0, 0, 0, 1, 1]), class_names=("N", "A"), meta=meta)


def test_neighbour_is_the_previous_beat_else_the_next():
    beats = _beats()
    nb = neighbour_index(beats)
    assert nb.tolist() == [1, 0, 1, -1, -1]  # first beat -> next; lone beats -> none
    pairs = beat_pairs(beats, nb, np.array([2, 0, 3]))
    assert pairs.signals.shape == (2, 1, 8)  # row 3 has no neighbour and is left out
    x = beats.numpy()
    assert np.array_equal(pairs.numpy()[0], np.concatenate([x[1], x[2]], axis=-1))
    assert np.array_equal(pairs.numpy()[1], np.concatenate([x[1], x[0]], axis=-1))
    assert pairs.labels.tolist() == [0, 0]


def test_record_bootstrap_of_the_mae_ratio(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 1, 20))
    mask = np.ones_like(x, dtype=bool)
    mask[..., 5:10] = False
    samples = x[:, None] + rng.normal(scale=0.1, size=(40, 8, 1, 20))  # good draws
    baselines = {"linear interpolation": x + 0.5, "previous beat": x - 1.0}  # errors 0.5 and 1.0
    save_samples(tmp_path / "s", "gap 10 %", samples, x, mask, np.zeros(40), baselines, np.repeat(np.arange(10), 4))
    rows = ratio_ci(tmp_path / "s_gap10pct.npz", draws=(8,), n_boot=200)
    by = {r["baseline"]: r for r in rows}
    assert set(by) == {"linear", "previous"} and by["linear"]["resampled"] == "record" and by["linear"]["units"] == 10
    mae = np.abs(np.median(samples, axis=1) - x)[~mask].mean()
    assert abs(by["linear"]["ratio"] / (mae / 0.5) - 1) < 1e-5  # samples are stored as float32
    assert abs(by["previous"]["ratio"] / (mae / 1.0) - 1) < 1e-5
    lo, hi = by["linear"]["ci95"]
    assert lo <= by["linear"]["ratio"] <= hi and by["linear"]["p_ratio_ge_1"] == 0.0


def test_gap_masks_hide_one_long_gap_of_each_size():
    from bench.diffecg import gap_masks

    masks = gap_masks((3, 1, 200), seed=0)
    assert list(masks) == ["gap 10 %", "gap 30 %", "gap 50 %"]
    for name, frac in zip(masks, (0.1, 0.3, 0.5)):
        hidden = (~masks[name].astype(bool)).sum(-1)
        assert np.all(np.abs(hidden - frac * 200) <= 1), name
