import numpy as np
import pytest

from augframe import ECGBatch, EvaluationResult, Figure, FilterResult, GenerationRequest, Table, ValidationError


def _batch(n=4, leads=("II",), s=100):
    return ECGBatch(np.zeros((n, len(leads), s), np.float32), 250, leads, labels=np.arange(n) % 2, class_names=("N", "A"))


def test_transfer_request_selects_with_own_seeds():
    req = GenerationRequest.transfer(_batch(), [1, 0, 1, 0], seed=5)
    sub = req.select([2, 3])
    assert np.array_equal(sub.seeds, req.seeds[2:])
    assert sub.sources.ids == ("2", "3")


def test_complete_request_checks_mask_shape():
    b = _batch()
    with pytest.raises(ValidationError, match="mask has shape"):
        GenerationRequest.complete(b, np.ones((4, 1, 99), bool), seed=0)
    with pytest.raises(ValidationError, match="needs mask"):
        GenerationRequest("complete", np.zeros(4), np.zeros(4), sources=b)


def test_request_kinds_and_lengths_are_checked():
    with pytest.raises(ValidationError, match="kind"):
        GenerationRequest("morph", np.zeros(2), np.zeros(2))
    with pytest.raises(ValidationError, match="needs sources"):
        GenerationRequest("transfer", np.zeros(2), np.zeros(2))
    with pytest.raises(ValidationError, match="seeds"):
        GenerationRequest("sample", np.zeros(2), np.zeros(3))


def test_filter_result_validates_and_records():
    r = FilterResult("x", [0.2, 1.0], [False, True], {"hr": [0, 1]}, (("hr out of range",), ()))
    assert r.sample_record(0) == {"score": 0.2, "accept": False, "checks": {"hr": 0.0}, "reasons": ["hr out of range"]}
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        FilterResult("x", [1.5], [True])
    with pytest.raises(ValidationError, match="accept"):
        FilterResult("x", [0.5], [True, False])


def test_evaluation_result_json_round_trip():
    res = EvaluationResult("fid", metrics={"mse": 0.1}, tables={"t": Table(["a", "b"], [[1, 2.5]])},
                           figures={"f": Figure("svg", "<svg/>")}, notes=["n"], scale="tiny")
    back = EvaluationResult.from_dict(__import__("json").loads(res.to_json()))
    assert back == res
    with pytest.raises(ValidationError):
        Table(["a"], [[1, 2]])
