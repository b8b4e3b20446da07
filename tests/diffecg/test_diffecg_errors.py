"""Bad input gets named errors: mask shape, nothing to complete, horizon, layout, options, state."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import CheckpointError, PluginError, ValidationError
from augframe.protocols import GenerationRequest
from augframe.signals import ECGBatch
from augframe_diffecg.generator import DiffECGGenerator
from augframe_diffecg.masks import forecast_mask, long_gap_mask, missing_leads_mask, random_gaps_mask


def test_mask_of_wrong_shape(cinc_beats):
    beats = cinc_beats.select(np.arange(3))
    with pytest.raises(ValidationError, match="mask has shape"):
        GenerationRequest.complete(beats, np.ones((3, 1, 10), dtype=bool), seed=0)


def test_all_known_mask_is_refused(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(3))
    mask = long_gap_mask(beats.signals.shape, 0.2, seed=0)
    mask[1] = True
    with pytest.raises(ValidationError, match=r"every sample as known for request entries \[1\]"):
        tiny_beat_generator.generate(GenerationRequest.complete(beats, mask, seed=0))


def test_forecast_horizon_longer_than_window():
    with pytest.raises(ValidationError, match="not shorter than the window"):
        forecast_mask((2, 1, 192), horizon=192)
    with pytest.raises(ValidationError, match="at least 1 sample"):
        forecast_mask((2, 1, 192), horizon=0)


def test_other_mask_builders_check_arguments():
    with pytest.raises(ValidationError, match="strictly between 0 and 1"):
        long_gap_mask((1, 1, 100), 1.0, seed=0)
    with pytest.raises(ValidationError, match="strictly between 0 and 1"):
        random_gaps_mask((1, 1, 100), 0.0, seed=0)
    with pytest.raises(ValidationError, match="every lead is marked missing"):
        missing_leads_mask((1, 2, 100), [0, 1])
    with pytest.raises(ValidationError, match=r"\[N, leads, samples\]"):
        forecast_mask((100,), 10)


def test_layout_mismatches(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(2))
    mask = forecast_mask(beats.signals.shape, 20)
    wrong_fs = ECGBatch(beats.numpy(), 300.0, beats.leads, labels=beats.labels, class_names=beats.class_names)
    with pytest.raises(ValidationError, match="trained at 250 Hz"):
        tiny_beat_generator.generate(GenerationRequest.complete(wrong_fs, mask, seed=0))
    wrong_lead = ECGBatch(beats.numpy(), 250.0, ("V1",), labels=beats.labels, class_names=beats.class_names)
    with pytest.raises(ValidationError, match="expects"):
        tiny_beat_generator.generate(GenerationRequest.complete(wrong_lead, mask, seed=0))
    short = ECGBatch(beats.numpy()[..., :100], 250.0, beats.leads, labels=beats.labels, class_names=beats.class_names)
    with pytest.raises(ValidationError, match="192-sample windows"):
        tiny_beat_generator.generate(GenerationRequest.complete(short, forecast_mask(short.signals.shape, 10), seed=0))


def test_bad_options_and_labels(tiny_beat_generator, cinc_beats):
    with pytest.raises(ValidationError, match="not understood"):
        tiny_beat_generator.generate(GenerationRequest.sample([0], seed=0, strenght=0.5))
    with pytest.raises(ValidationError, match="steps=0"):
        tiny_beat_generator.generate(GenerationRequest.sample([0], seed=0, steps=0))
    with pytest.raises(ValidationError, match="class indices 0..1"):
        tiny_beat_generator.generate(GenerationRequest.sample([2], seed=0))
    with pytest.raises(ValidationError, match="class_names"):
        tiny_beat_generator.generate(GenerationRequest.sample([0], seed=0, class_names=("A", "N")))
    with pytest.raises(ValidationError, match="transfer"):
        tiny_beat_generator.generate(GenerationRequest.transfer(cinc_beats.select([0]), [1], seed=0))


def test_untrained_generator_and_bad_construction():
    with pytest.raises(CheckpointError, match="no trained model"):
        DiffECGGenerator(width=8).generate(GenerationRequest.sample([0], seed=0))
    with pytest.raises(ValidationError, match="cond="):
        DiffECGGenerator(cond="spectro")
    with pytest.raises(ValidationError, match="multiple of 8"):
        DiffECGGenerator(width=12)


def test_registry_names_bad_parameters():
    from augframe.plugins import Registry

    reg = Registry.discover(allow=["diffecg"])
    with pytest.raises(PluginError, match="has no parameter 'widht' \\(did you mean 'width'\\?\\)"):
        reg.create("generator", "diffecg", {"widht": 8})
