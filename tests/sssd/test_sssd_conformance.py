"""The core's conformance kit on sssd-ecg and both lead-consistency plugins (as a third party would run it)."""

from __future__ import annotations

import numpy as np

from augframe.testing import check_evaluator, check_filter, check_generator
from augframe_leads.consistency import LeadConsistencyFilter
from augframe_leads.evaluator import LeadConsistencyEvaluator


def test_sssd_generator_conforms(tiny_generator, ptbxl_batch):
    report = check_generator(tiny_generator, sources=ptbxl_batch.select(np.arange(4)),
                             class_names=tiny_generator.class_names, options={"sampler": "ddim", "steps": 3})
    assert report is not None


def test_lead_consistency_filter_and_evaluator_conform(ptbxl_batch):
    few = ptbxl_batch.select(np.arange(8))
    check_filter(LeadConsistencyFilter(), candidates=few)
    x = few.numpy().copy()
    x[:, 4] *= -1  # aVL inverted
    check_evaluator(LeadConsistencyEvaluator(), real=few, synthetic=few.with_signals(x))
