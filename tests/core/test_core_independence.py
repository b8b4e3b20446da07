"""A judge-based figure knows whether its judge took part in making the synthetic ECGs, and the report
never shows a figure of a non-independent judge as a headline."""

from __future__ import annotations

import json


from augframe import pipeline
from augframe import recipe as R
from augframe.judges import JudgeRef, assess, judge_identity, judge_ref, weights_sha256
from augframe.protocols import EvaluationResult
from augframe.report.html import section_order, split_by_independence
from core_toys import RECIPE, toy_registry

PROBE = """
[[evaluators]]
name = "judge-probe"
params = {{ judge = "j", judge_params = {{ width = 1 }} }}

[[evaluators]]
name = "judge-probe"
params = {{ judge = "other" }}
"""


def _run(tmp_path, generator_params: str, filters: str = ""):
    text = RECIPE.format(out=str(tmp_path / "run").replace("\\", "/"), extra="").replace(
        'params = { scale = 0.3 }', f'params = {{ scale = 0.3{generator_params} }}')
    text = text.replace('[mix]', filters + '\n[mix]') + PROBE.format()
    res = pipeline.run(R.loads(text), registry=toy_registry())
    return {k: json.loads(p.read_text()) for k, p in res.evaluations.items()}


def test_judge_the_generator_trained_against_is_flagged(tmp_path):
    ident = judge_identity("j", {"width": 1})
    out = _run(tmp_path, f', trained_against = [{{ classifier = "j", identity = "{ident}", role = "stage 2" }}]')
    assert set(out) == {"moments", "judge-probe", "judge-probe-2"}   # a repeated name does not overwrite
    assert out["judge-probe"]["metrics"]["independent"] == 0.0
    assert "stage 2" in out["judge-probe"]["notes"][0]
    assert out["judge-probe-2"]["metrics"]["independent"] == 1.0
    assert out["judge-probe"]["details"]["n_train"] > 0            # evaluators get the run's training split


def test_undeclared_generator_makes_independence_unknown(tmp_path):
    out = _run(tmp_path, "")
    assert out["judge-probe"]["metrics"]["independent"] == -1.0
    assert out["judge-probe-2"]["metrics"]["independent"] == -1.0


def test_a_filter_that_names_a_judge_makes_it_dependent(tmp_path):
    out = _run(tmp_path, ", trained_against = []",
               filters='[[filters]]\nname = "judged"\nparams = { judge = "other" }\n')
    assert out["judge-probe"]["metrics"]["independent"] == 1.0
    assert out["judge-probe-2"]["metrics"]["independent"] == 0.0
    assert "filter judged" in out["judge-probe-2"]["notes"][0]


def test_weights_identity_ignores_the_file_format(tmp_path):
    import torch
    from safetensors.torch import save_file

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    torch.save(state, tmp_path / "a.pt")
    save_file(state, str(tmp_path / "a.safetensors"))
    torch.save({"model_state_dict": {k: v.to(torch.bfloat16) for k, v in state.items()}}, tmp_path / "b.pt")
    ids = {weights_sha256(tmp_path / f) for f in ("a.pt", "a.safetensors", "b.pt")}
    assert len(ids) == 1
    other = dict(state, b=torch.zeros(2))
    torch.save(other, tmp_path / "c.pt")
    assert weights_sha256(tmp_path / "c.pt") not in ids
    assert judge_identity("x", {"checkpoint": str(tmp_path / "a.pt")}).startswith("weights:")
    assert judge_identity("x", {"width": 1}) != judge_identity("x", {"width": 2})


def test_assess_names_the_role():
    j = judge_ref("j", {"width": 1})
    dep = (JudgeRef("j", j.identity, "diffstylets stage 2"),)
    assert assess(j, dep).independent is False and "stage 2" in assess(j, dep).reason
    assert assess(j, ()).independent is True
    assert assess(j, (), provenance_known=False).independent is None


def test_report_demotes_cards_of_non_independent_judges():
    dep = assess(judge_ref("j"), (judge_ref("j", role="stage 2"),)).to_dict()
    ind = assess(judge_ref("k"), ()).to_dict()
    cards = [{"label": "flip", "status": "good", "judge": dep}, {"label": "auroc", "status": "good", "judge": ind},
             {"label": "plain", "status": "neutral"}]
    shown, demoted = split_by_independence(cards)
    assert [c["label"] for c in shown] == ["auroc", "plain"]
    assert demoted[0]["status"] == "neutral" and "NOT independent" in demoted[0]["label"]


def test_report_leads_with_utility():
    rs = [EvaluationResult(n, details={"section": s}) for n, s in
          (("fid", "similarity"), ("misc", "nope"), ("curve", "utility"), ("rhythm", "rhythm"))]
    assert [r.name for r in section_order(rs)] == ["curve", "rhythm", "fid", "misc"]
