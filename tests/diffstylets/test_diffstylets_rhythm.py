"""Improved mode re-times transfers to a real target-class rhythm and keeps the source's QRS complexes;
faithful mode keeps the source's beats; checkpoints carry the rhythm bank and the judges trained against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.beats import detect_r_peaks
from augframe.errors import ValidationError
from augframe.judges import JudgeRef
from augframe.protocols import GenerationRequest
from augframe.retime import RetimeConfig, RhythmBank, retime
from augframe_diffstylets import checkpoints
from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.pipeline import DiffStyleTSGenerator
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser

from diffstylets_helpers import TINY

SAMPLER = dict(steps=3)


@pytest.fixture(scope="module")
def demo():
    from augframe.data.demo import demo_windows

    return demo_windows(normalise=None)


@pytest.fixture(scope="module")
def tiny_10s(tmp_path_factory, demo):
    """A random tiny 10 s model with banks built from even demo rows (odd rows are the sources)."""
    torch.manual_seed(0)
    model = DiffStyleTS(ModelConfig(signal_length=2500, **TINY)).eval()
    path = tmp_path_factory.mktemp("rhythm") / "m.safetensors"
    checkpoints.save(path, model, normaliser=Normaliser(0.0, 0.2, 10.0), class_names=("N", "A"), leads=("I",),
                     mode="improved")
    gen = DiffStyleTSGenerator(checkpoint=str(path), device="cpu", sampler=SAMPLER, style_source="prototype",
                               bank_per_class=32)
    gen.set_style_bank(demo.select(np.arange(0, len(demo), 2)), seed=1)
    return gen


def _sources(demo, cls, n=4):
    odd = np.arange(1, len(demo), 2)
    return demo.select(odd[demo.labels[odd] == cls][:n])


def test_transfer_beats_sit_on_the_drawn_target_rhythm(tiny_10s, demo):
    src = _sources(demo, 0)
    req = GenerationRequest.transfer(src, np.ones(len(src), int), seed=3)
    out = tiny_10s.generate(req).batch.numpy()[:, 0]
    targets = tiny_10s.rhythm_bank.draw(np.ones(len(src), int), req.seeds, 250.0, 2500)
    x = src.numpy()[:, 0]
    expect, done = retime(x, detect_r_peaks(x, 250.0), targets, 250.0, RetimeConfig())
    assert done.all()
    half = int(0.04 * 250)
    for o, e, t in zip(out, expect, targets):   # the kept QRS complexes are the re-timed source's samples
        for p in t[(t > half) & (t < 2500 - half)]:
            np.testing.assert_allclose(o[p - half:p + half], e[p - half:p + half], atol=1e-4)
    rr = [np.diff(t) for t in targets]
    assert np.median([r.std() / r.mean() for r in rr]) > 0.08  # AF rhythms were drawn for N -> A


def test_rhythm_source_keeps_the_beats_of_the_source(tiny_10s, demo):
    src = _sources(demo, 1)
    req = GenerationRequest.transfer(src, np.zeros(len(src), int), seed=3, rhythm="source")
    cands = tiny_10s.generate(req)
    assert cands.refused is None
    ref = GenerationRequest.transfer(src, np.zeros(len(src), int), seed=3)
    assert not np.allclose(tiny_10s.generate(ref).batch.numpy(), cands.batch.numpy())


def test_a_flat_source_is_refused_not_passed_on(tiny_10s, demo):
    src = _sources(demo, 0, n=2)
    flat = src.with_signals(np.stack([src.numpy()[0], np.zeros_like(src.numpy()[1])]))
    cands = tiny_10s.generate(GenerationRequest.transfer(flat, [1, 1], seed=0))
    assert cands.refused[0] == "" and "beats" in cands.refused[1]


def test_faithful_mode_does_not_retime(tiny_10s, demo, tmp_path):
    path = tmp_path / "f.safetensors"
    tiny_10s.save(path)
    gen = DiffStyleTSGenerator(mode="faithful", checkpoint=str(path), device="cpu", sampler=SAMPLER)
    assert gen._rhythm(gen.sampler_cfg) == "source"
    with pytest.raises(ValidationError, match="improved-mode"):
        gen.generate(GenerationRequest.transfer(_sources(demo, 0, 1), [1], seed=0, rhythm="reference"))


def test_missing_rhythm_bank_is_named(demo, tmp_path):
    torch.manual_seed(0)
    model = DiffStyleTS(ModelConfig(signal_length=2500, **TINY)).eval()
    path = tmp_path / "m.safetensors"
    checkpoints.save(path, model, normaliser=Normaliser(0.0, 0.2, 10.0), class_names=("N", "A"), leads=("I",),
                     mode="improved")
    gen = DiffStyleTSGenerator(checkpoint=str(path), device="cpu", sampler=SAMPLER, style_source="self")
    assert gen.info.trained_against is None  # not recorded: no judge can be shown independent of it
    with pytest.raises(ValidationError, match="rhythm bank"):
        gen.generate(GenerationRequest.transfer(_sources(demo, 0, 1), [1], seed=0))


def test_banks_and_judges_survive_a_checkpoint(tiny_10s, tmp_path):
    tiny_10s.trained_against = (JudgeRef("afib-reslstm", "weights:abc", "stage 2"),)
    path = tmp_path / "k.safetensors"
    tiny_10s.save(path)
    again = DiffStyleTSGenerator(checkpoint=str(path), device="cpu")
    assert again.info.trained_against == tiny_10s.trained_against
    assert isinstance(again.rhythm_bank, RhythmBank)
    np.testing.assert_array_equal(again.rhythm_bank.peaks, tiny_10s.rhythm_bank.peaks)


def test_fit_records_the_stage2_judge(fitted):
    gen, _, workdir = fitted
    (judge,) = gen.info.trained_against
    assert judge.classifier == "tiny-judge" and "stage 2" in judge.role
    assert DiffStyleTSGenerator(checkpoint=str(workdir / "diffstylets.safetensors")).info.trained_against == (judge,)


def test_atrial_activity_comes_from_the_drawn_reference(tiny_10s, demo):
    src = _sources(demo, 1)
    labels, seeds = np.zeros(len(src), int), np.arange(len(src)) + 7
    x = tiny_10s._sources_to_model(src)
    got, _, refused, placed = tiny_10s._retime(x, labels, seeds, tiny_10s._sampler_for({}))
    xs = x.float().numpy()
    targets = tiny_10s.rhythm_bank.draw(labels, seeds, 250.0, 2500)
    atrial = tiny_10s.rhythm_bank.draw_atrial(labels, seeds, 250.0)
    expect, _ = retime(xs, detect_r_peaks(xs[:, 0], 250.0), targets, 250.0, RetimeConfig(), atrial=atrial)
    np.testing.assert_allclose(got.numpy(), expect, atol=1e-6)
    own, _, _, _ = tiny_10s._retime(x, labels, seeds, tiny_10s._sampler_for({"atrial": "source"}))
    assert not np.allclose(own.numpy(), got.numpy())
    for p, t in zip(placed, targets):             # every target beat is among the placed ones
        assert set(t.tolist()) <= set(p.tolist())


def _pulses(peaks, n=2500):
    t = np.arange(n)[:, None]
    return np.exp(-0.5 * ((t - np.asarray(peaks)[None, :]) / 3.0) ** 2).sum(axis=1).astype(np.float32)


def test_beat_check_refuses_an_output_with_a_beat_the_rhythm_did_not_place(tiny_10s):
    placed = np.arange(100, 2400, 210)
    extra = np.sort(np.r_[placed, 1200])          # one QRS-like wave between two placed beats
    out = torch.from_numpy(np.stack([_pulses(placed), _pulses(extra)])[:, None, :])
    refused = tiny_10s._check_beats(out, [placed, placed], ("", ""))
    assert refused[0] == "" and "drew QRS-like" in refused[1]
    assert tiny_10s._check_beats(out, [placed, placed], ("too few", ""))[0] == "too few"  # earlier reasons stay


def test_a_bank_without_recordings_is_named_when_reference_atrial_is_asked(tiny_10s, demo):
    bank = tiny_10s.rhythm_bank
    tiny_10s.rhythm_bank = RhythmBank(bank.peaks, bank.offsets, bank.labels, bank.fs, bank.n_samples)
    try:
        src = _sources(demo, 0, 1)
        with pytest.raises(ValidationError, match="stores no recordings"):
            tiny_10s.generate(GenerationRequest.transfer(src, [1], seed=0))
        assert len(tiny_10s.generate(GenerationRequest.transfer(src, [1], seed=0, atrial="source")).batch) == 1
    finally:
        tiny_10s.rhythm_bank = bank
