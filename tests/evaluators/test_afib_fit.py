"""The training loop is seeded end to end, and condition D's augmentation is replayable."""

from __future__ import annotations

import numpy as np
import torch

from augframe_afib.classical import ClassicalAugment
from augframe_afib.classifiers import make_afib_reslstm
from augframe_afib.fit import TrainSettings, fit_classifier, predict_proba


def test_fit_is_deterministic_and_leaves_global_rng_alone(cinc_short):
    x, y = cinc_short.numpy()[:24, :, :500], cinc_short.labels[:24]
    settings = TrainSettings(max_epochs=2, patience=1, batch_size=8, max_steps_per_epoch=2)
    states = []
    for _ in range(2):
        torch.manual_seed(123)
        model = make_afib_reslstm(width=0.0625, depth=[1, 1, 1, 1], seed=5)
        fit = fit_classifier(model, x[:16], y[:16], x[16:], y[16:], settings, seed=9)
        states.append(fit.state)
        after = torch.rand(1)
        torch.manual_seed(123)
        assert torch.equal(after, torch.rand(1))  # the caller's RNG stream was not consumed
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert 1 <= fit.best_epoch <= fit.epochs_run <= 2 and fit.samples_seen == 2 * 2 * 8
    p = predict_proba(model, x[16:])
    assert p.shape == (8, 2) and np.allclose(p.sum(1), 1)


def test_classical_augmentation_is_seeded():
    aug = ClassicalAugment(250.0)
    x = torch.randn(4, 1, 1000) * 0.3
    y = torch.tensor([0, 1, 0, 1])
    a, b, c = aug(x, y, 7), aug(x, y, 7), aug(x, y, 8)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert a.shape == x.shape


def test_a_killed_fit_resumes_from_its_last_epoch(cinc_short, tmp_path, monkeypatch):
    import augframe_afib.fit as fit_mod

    x, y = cinc_short.numpy()[:24, :, :400], cinc_short.labels[:24]
    settings = TrainSettings(max_epochs=3, patience=5, batch_size=8, max_steps_per_epoch=1)

    def run(state_path=None):
        model = make_afib_reslstm(width=0.0625, depth=[1, 1, 1, 1], seed=1)
        return fit_classifier(model, x[:16], y[:16], x[16:], y[16:], settings, seed=2, state_path=state_path)

    whole = run()
    path = tmp_path / "run.train-state.pt"
    real_eval, calls = fit_mod.validate, []

    def dies_in_epoch_3(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_eval(*a, **k)

    monkeypatch.setattr(fit_mod, "validate", dies_in_epoch_3)
    try:
        run(path)
    except KeyboardInterrupt:
        pass
    assert path.is_file()  # epochs 1-2 were saved
    monkeypatch.setattr(fit_mod, "validate", real_eval)
    resumed = run(path)
    assert not path.exists()
    assert resumed.epochs_run == whole.epochs_run == 3 and resumed.history == whole.history
    assert all(torch.equal(resumed.state[k], whole.state[k]) for k in whole.state)
