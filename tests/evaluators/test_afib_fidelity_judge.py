"""A bare ``fidelity`` evaluator does not silently train a full-width judge: the judge must be said."""

from __future__ import annotations

import pytest

from augframe.errors import ValidationError


def test_bare_fidelity_names_how_to_choose_the_judge(registry):
    with pytest.raises(ValidationError, match=r"pretrained:afib-reslstm-w025-cinc2017.*width = 1.0.*judge = \"\""):
        registry.create("evaluator", "fidelity", {})
    assert registry.create("evaluator", "fidelity", {"judge": ""}).judge is None  # skip the judge measures
    explicit = registry.create("evaluator", "fidelity", {"judge_params": {"width": 1.0}})  # training, on purpose
    assert explicit.fit_judge and explicit.judge_params == {"width": 1.0}
