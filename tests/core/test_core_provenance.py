"""Runs are traceable: the report names generator, version, parameters, checkpoint hash, filters and plugin
versions; its header counts evaluators; a re-run's summary does not repeat an earlier run's counts as its own."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from augframe import pipeline
from augframe import recipe as R
from augframe.judges import weights_sha256
from augframe.protocols import GeneratorInfo
from core_toys import RECIPE, PhaseShiftGenerator, toy_registry

SHA = "c0ffee" * 10 + "beef"


def _recipe(out, judge_weights=None):
    text = RECIPE.format(out=str(out).replace("\\", "/"), extra="")
    if judge_weights is not None:
        path = str(judge_weights).replace("\\", "/")
        text = text.replace("[mix]", f'[[filters]]\nname = "judged"\nparams = {{ judge = "afib-j", judge_params = '
                                     f'{{ checkpoint = "{path}" }} }}\n\n[mix]')
    return R.loads(text + '\n[[evaluators]]\nname = "moments"\nparams = { note = "second" }\n')


def test_report_names_what_made_the_ecgs(tmp_path, monkeypatch):
    monkeypatch.setattr(PhaseShiftGenerator, "info", property(
        lambda self: GeneratorInfo("phase-shift", "9.8.7", SHA, {"scale": self.scale, "max_shift": self.max_shift})))
    weights = tmp_path / "judge.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(weights))
    pipeline.run(_recipe(tmp_path / "run", weights), registry=toy_registry())
    out = tmp_path / "run"
    prov = json.loads((out / "run.json").read_text())["provenance"]
    judge_sha = weights_sha256(weights)
    assert prov["filters"][1]["judge"] == {"classifier": "afib-j", "identity": f"weights:{judge_sha}"}
    gen = prov["generators"]
    assert len(gen) == 1 and gen[0]["version"] == "9.8.7" and gen[0]["checkpoint_sha256"] == SHA
    assert gen[0]["params"] == {"scale": 0.3, "max_shift": 20} and gen[0]["plugin"] == "toys"
    assert [(f["name"], f["plugin"], f["plugin_version"]) for f in prov["filters"]] == \
        [("amplitude", "toys", "0.0.1"), ("judged", "toys", "0.0.1")]
    assert prov["filters"][0]["params"] == {"max_ratio": 1.3} and prov["filters"][0]["judge"] is None
    assert prov["plugins"] == [{"name": "toys", "version": "0.0.1"}]
    page = json.loads((out / "report.json").read_text())
    tables = next(r for r in page["results"] if r["name"] == "provenance")["tables"]
    assert tables["generators"]["rows"][0][:3] == ["phase-shift", "9.8.7", SHA]
    assert tables["filters"]["rows"][0][1:3] == ["amplitude", "toys 0.0.1"]
    html = (out / "report.html").read_text()
    header = html.split("<header>")[1].split("</header>")[0]
    assert "2 evaluator(s)" in header and "phase-shift 9.8.7" in header  # not 4: generation and provenance
    assert len(page["results"]) == 4                                     # are sections, not evaluators
    for text in (SHA, "max_ratio", "toys", "0.0.1", judge_sha):
        assert text in html
    summary = (out / "summary.md").read_text()
    assert f"phase-shift 9.8.7, checkpoint sha256 {SHA}" in summary and "filter amplitude (plugin toys 0.0.1)" in summary


def test_rerun_summary_does_not_repeat_earlier_counts(tmp_path):
    first = pipeline.run(_recipe(tmp_path / "run"), registry=toy_registry())
    again = pipeline.run(_recipe(tmp_path / "run"), registry=toy_registry())
    out = tmp_path / "run"
    for tag, s in again.generation["per_target"].items():
        earlier = first.generation["per_target"][tag]
        assert earlier["candidates"] > 0
        assert (s["accepted_now"], s["candidates"], s["acceptance"]) == (0, 0, None)
        assert s["earlier"]["candidates"] == earlier["candidates"]
        assert s["accepted_total"] == earlier["accepted_total"]
    summary = (out / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith(("| N->A", "| A->N"))]
    assert len(rows) == 2
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3:5] == ["0", "0"] and cells[5].startswith("- (complete in an earlier run:")
    page = json.loads((out / "report.json").read_text())
    gen = next(r for r in page["results"] if r["name"] == "generation")
    assert all(row[3] == 0 and row[4] == 0 for row in gen["tables"]["generation"]["rows"])
    assert not any(k.endswith(".acceptance") for k in gen["metrics"])


def test_rerun_cli_line_says_nothing_was_made(tmp_path, monkeypatch, capsys):
    from augframe.cli import main

    monkeypatch.setattr(pipeline.Registry, "discover", classmethod(lambda cls, allow=None, block=None: toy_registry()))
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(out=str(tmp_path / "out").replace("\\", "/"), extra=""))
    assert main(["generate", str(recipe), "--count", "2", "--no-progress"]) == 0
    assert "N->A: 2 accepted in bank (2 new from" in capsys.readouterr().out
    assert main(["generate", str(recipe), "--count", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "N->A: 2 accepted in bank (0 new from 0 candidates this run, acceptance - (complete in an earlier run:" in out
