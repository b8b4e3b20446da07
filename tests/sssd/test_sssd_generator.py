"""The sssd-ecg generator: registry, fit on PTB-XL, 12-lead sampling, seeds, checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import CheckpointError, PluginError, ValidationError
from augframe.plugins import Registry
from augframe.protocols import GenerationRequest, Generator
from augframe.signals import STANDARD_LEADS
from augframe.windows import ArrayWindows
from augframe_leads.consistency import LeadConsistencyFilter
from augframe_sssd.generator import SSSDECGGenerator


def _request(gen, n=4, seed=1, **options):
    rows = np.eye(len(gen.class_names), dtype=np.float32)[np.arange(n) % len(gen.class_names)]
    return GenerationRequest.sample(rows, seed=seed, class_names=gen.class_names, **options)


def test_registry_builds_a_generator(tiny):
    reg = Registry.discover()
    gen = reg.create("generator", "sssd-ecg", dict(tiny))
    assert isinstance(gen, Generator)
    assert gen.request_kinds == frozenset({"sample"})
    with pytest.raises(PluginError, match="did you mean 'num_layers'"):
        reg.create("generator", "sssd-ecg", {"num_layer": 2})


def test_generates_consistent_12_lead_ecgs(tiny_generator):
    c = tiny_generator.generate(_request(tiny_generator, n=5))
    b = c.batch
    assert b.leads == STANDARD_LEADS and b.fs == 100.0 and b.signals.shape == (5, 12, 1000)
    assert b.class_names == tiny_generator.class_names and b.labels.shape == (5, len(b.class_names))
    assert np.isfinite(b.signals).all() and b.units == "mV"
    assert c.info.name == "sssd-ecg" and c.info.params["sampler"] == "ancestral"
    assert LeadConsistencyFilter().score(b).accept.all()  # derived limb leads obey the relations exactly


def test_per_sample_seeds_are_batch_size_invariant(tiny_generator):
    req = _request(tiny_generator, n=4, seed=3)
    full = tiny_generator.generate(req).batch.signals
    part = tiny_generator.generate(req.select([3, 1])).batch.signals
    np.testing.assert_allclose(part, full[[3, 1]], atol=1e-5)
    other = tiny_generator.generate(_request(tiny_generator, n=1, seed=4)).batch.signals
    assert not np.allclose(other[0], full[0])


def test_ddim_option_and_class_index_labels(tiny_generator):
    req = GenerationRequest.sample(np.array([0, 1, 1]), seed=0, sampler="ddim", steps=5)
    c = tiny_generator.generate(req)
    assert c.info.params["sampler"] == "ddim" and c.info.params["steps"] == 5
    assert c.batch.labels.tolist() == [0, 1, 1]
    again = tiny_generator.generate(req)  # eta = 0: deterministic given the seeds
    np.testing.assert_array_equal(c.batch.signals, again.batch.signals)
    subset = tiny_generator.generate(GenerationRequest.sample([0], seed=0, sampler="ddim", steps=5, leads=["V1", "aVF"]))
    assert subset.batch.leads == ("V1", "aVF")
    np.testing.assert_allclose(subset.batch.signals[0], c.batch.signals[0, [6, 5]], atol=1e-5)


@pytest.mark.parametrize("labels, match", [
    (np.zeros((2, 3), np.float32), r"width 3; .* trained on \d+ classes"),
    (np.array([0, 99]), r"class index 99; .* use indices 0\.\."),
    (np.array([-1]), "unlabelled"),
])
def test_bad_labels_name_what_was_expected(tiny_generator, labels, match):
    with pytest.raises(ValidationError, match=match):
        tiny_generator.generate(GenerationRequest.sample(labels, seed=0))


def test_bad_request_options(tiny_generator):
    with pytest.raises(ValidationError, match=r"sampled at 250 Hz; .* works at 100 Hz"):
        tiny_generator.generate(_request(tiny_generator, fs=250))
    with pytest.raises(ValidationError, match="unknown"):
        tiny_generator.generate(_request(tiny_generator, strength=0.5))
    with pytest.raises(ValidationError, match="not a standard 12-lead name"):
        tiny_generator.generate(_request(tiny_generator, leads=["V7"]))
    with pytest.raises(ValidationError, match="class_names"):
        tiny_generator.generate(GenerationRequest.sample([0], seed=0, class_names=["A", "B"]))
    transfer = GenerationRequest.transfer(tiny_generator.generate(_request(tiny_generator, n=1)).batch, [0], seed=0)
    with pytest.raises(ValidationError, match=r"serves \['sample'\]"):
        tiny_generator.generate(transfer)


def test_bad_training_data(ptbxl_batch, tiny):
    gen = SSSDECGGenerator(**tiny, iterations=1)
    with pytest.raises(ValidationError, match=r"missing \['V6'\]"):
        gen.fit(ptbxl_batch.select_leads(STANDARD_LEADS[:11]))
    with pytest.raises(ValidationError, match=r"sampled at 500 Hz; .* resample to 100 Hz"):
        gen.fit(ptbxl_batch.with_signals(ptbxl_batch.numpy(), fs=500))
    with pytest.raises(ValidationError, match="1000"):
        gen.fit(ptbxl_batch.with_signals(ptbxl_batch.numpy()[:, :, :500]))
    with pytest.raises(ValidationError, match="no labels"):
        gen.fit(ptbxl_batch.with_signals(ptbxl_batch.numpy(), labels=None, class_names=()))
    with pytest.raises(ValidationError, match="no trained model"):
        gen.generate(GenerationRequest.sample([0], seed=0))


def test_checkpoint_round_trip_and_clash(tiny_generator, tmp_path):
    path = tmp_path / "sssd.safetensors"
    sha = tiny_generator.save(path)
    loaded = SSSDECGGenerator(checkpoint=str(path), device="cpu", generate_batch_size=8)
    assert loaded.info.checkpoint_sha256 == sha and loaded.class_names == tiny_generator.class_names
    req = _request(tiny_generator, n=2, sampler="ddim", steps=4)
    np.testing.assert_array_equal(loaded.generate(req).batch.signals, tiny_generator.generate(req).batch.signals)
    with pytest.raises(CheckpointError, match="num_layers=3 .*checkpoint: 2"):
        SSSDECGGenerator(checkpoint=str(path), num_layers=3, device="cpu")


def test_resume_from_workdir_matches_an_uninterrupted_run(ptbxl_batch, tmp_path, tiny):
    data = ptbxl_batch.select(np.arange(16))
    straight = SSSDECGGenerator(**tiny, iterations=4, batch_size=4)
    straight.fit(data, seed=5)
    first = SSSDECGGenerator(**tiny, iterations=2, batch_size=4, checkpoint_every=1)
    first.fit(data, seed=5, workdir=tmp_path)
    resumed = SSSDECGGenerator(**tiny, iterations=4, batch_size=4)
    resumed.fit(data, seed=5, workdir=tmp_path)  # the model init differs; the train state replaces it
    assert resumed.trained_iterations == 4 and (tmp_path / "sssd-ecg.safetensors").exists()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=k)
    other = SSSDECGGenerator(**tiny, iterations=4, batch_size=4, lr=1e-3)
    with pytest.raises(CheckpointError, match="lr"):
        other.fit(data, seed=5, workdir=tmp_path)


def test_af_sr_labels_and_window_dataset(ptbxl_records, tiny):
    from augframe_sssd.ptbxl import AF_SR_CLASSES, records_to_batch

    batch, dropped = records_to_batch(ptbxl_records, labels="af-sr")
    assert batch.class_names == AF_SR_CLASSES and set(np.unique(batch.labels)) <= {0, 1}
    assert len(batch) + len(dropped) == len(ptbxl_records)
    gen = SSSDECGGenerator(**tiny, iterations=2, batch_size=4)
    summary = gen.fit(ArrayWindows(batch), seed=0)
    assert summary["iterations"] == 2 and gen.class_names == AF_SR_CLASSES
    out = gen.generate(GenerationRequest.sample([1, 0], seed=0, sampler="ddim", steps=3))
    assert out.batch.class_names == AF_SR_CLASSES


def _eval_loss(gen, data) -> float:
    """Epsilon loss on fixed data and fixed noise seeds (the same for every generator compared)."""
    import torch

    from augframe.seeding import derive_seeds
    from augframe_sssd.diffusion import training_loss

    x = torch.from_numpy(data.numpy()[:, [0, 1, 6, 7, 8, 9, 10, 11]] / gen.signal_scale)
    with torch.no_grad():
        return float(training_loss(gen.model, x, torch.from_numpy(data.labels), gen._schedule(),
                                   derive_seeds(99, len(x))))


def test_training_reduces_the_loss(ptbxl_batch, tiny):
    """40 steps on 32 real records (first 2.5 s of each): the loss on fixed noise falls well below the start.

    The untrained network predicts zero noise (zero-initialised output layer), so it starts at ~1.0.
    """
    data = ptbxl_batch.select(np.arange(32))
    data = data.with_signals(data.numpy()[:, :, :250])
    settings = dict(tiny, samples=250, diffusion_steps=200, batch_size=8)
    untrained = SSSDECGGenerator(**settings, iterations=1, lr=0.0)
    untrained.fit(data, seed=0)
    trained = SSSDECGGenerator(**settings, iterations=40, lr=3e-3)
    trained.fit(data, seed=0)
    before, after = _eval_loss(untrained, data), _eval_loss(trained, data)
    assert before == pytest.approx(1.0, abs=0.15)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("settings, match", [
    (dict(s4_state=7), "even"), (dict(num_layers=0), "num_layers"), (dict(beta_end=2.0), "beta"),
    (dict(sampler="euler"), "sampler"), (dict(iterations=0), "iterations"),
])
def test_bad_settings_are_named(settings, match):
    with pytest.raises(ValidationError, match=match):
        SSSDECGGenerator(device="cpu", **settings)
