"""Provenance of a run: what made its synthetic ECGs and its figures, for run.json, summary.md and the report.

Read from the bank's rows (each generator as it recorded itself: name, version, parameters,
checkpoint sha256) and from the recipe and the plugin registry (filters, evaluators, the plugins
that provide them and their versions, the weights and judges they name), so a reader of a report can
tell which model, weights and settings produced it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from augframe.bank import Bank
from augframe.protocols import EvaluationResult, Table
from augframe.recipe import Recipe


def run_provenance(recipe: Recipe, bank_path: Path, plugins: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What made the run's ECGs and figures, for run.json and the report.

    ``generators``: each distinct generator the bank's rows record (name, version, parameters,
    checkpoint sha256, how many samples it made; the recipe's generator, version unknown, when the
    bank is empty); ``filters`` and ``evaluators``: the recipe's entries in order, each with the
    plugin that provides it, that plugin's version, and the sha256 of the tensors of a weights file
    its parameters name (as judge identities are hashed) and the judge it classifies with, if any
    (:func:`augframe.judges.judge_identity`); ``plugins``: every loaded plugin's version.
    """
    owner = {(str(k), str(n)): (p["name"], p["version"]) for p in plugins for k, n in p.get("provides", ())}

    def entry(kind: str, name: str, params: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        plugin, version = owner.get((kind, name), (None, None))
        return {"name": name, "plugin": plugin, "plugin_version": version, "params": dict(params), **extra,
                "checkpoint_sha256": _weights_hash(name, params), "judge": _judge_of(params)}

    return {"generators": _bank_generators(bank_path, recipe, owner),
            "filters": [entry("filter", f.name, f.params, min_score=f.min_score) for f in recipe.filters],
            "evaluators": [entry("evaluator", e.name, e.params) for e in recipe.evaluators],
            "plugins": [{"name": p["name"], "version": p["version"]} for p in plugins]}


def _weights_hash(name: str, params: Mapping[str, Any]) -> str | None:
    """sha256 of the tensors of the weights file the parameters name, None when they name none."""
    from augframe.judges import WEIGHT_PARAMS, judge_identity

    for key in WEIGHT_PARAMS:
        if isinstance(params.get(key), str):
            ident = judge_identity(name, {key: params[key]})
            return ident.split(":", 1)[1] if ident.startswith("weights:") else None
    return None


def _judge_of(params: Mapping[str, Any]) -> dict[str, str] | None:
    """The classifier a filter or evaluator judges with (``judge`` / ``classifier`` + ``*_params``) and its identity."""
    from augframe.judges import judge_identity

    for key in ("judge", "classifier"):
        if isinstance(params.get(key), str):
            return {"classifier": params[key], "identity": judge_identity(params[key], params.get(f"{key}_params"))}
    return None


def _bank_generators(bank_path: Path, recipe: Recipe, owner: Mapping[tuple[str, str], tuple[str, str]]
                     ) -> list[dict[str, Any]]:
    """Each distinct (name, version, checkpoint, params) generator in the bank's rows, with its sample count."""
    rows: list[dict[str, Any]] = []
    if (bank_path / "bank.json").exists():
        with Bank.open(bank_path, verify="none") as bank:
            rows = bank.rows()
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = r.get("generator") or {}
        made = {k: g.get(k) for k in ("name", "version", "checkpoint_sha256", "params")}
        key = json.dumps(made, sort_keys=True, default=str)
        found.setdefault(key, {**made, "samples": 0})["samples"] += 1
    gens = list(found.values()) or [{"name": recipe.generator.name, "version": None,
                                     "checkpoint_sha256": None, "params": recipe.generator.factory_params(), "samples": 0}]
    for g in gens:
        g["plugin"], g["plugin_version"] = owner.get(("generator", str(g["name"])), (None, None))
    return gens


def generators_text(prov: Mapping[str, Any]) -> str:
    """'name version (checkpoint sha256 <12 hex>)' of each generator, for a report's header."""
    return "; ".join(f"{g['name']} {g['version'] or '(version unknown)'}"
                     + (f" (checkpoint sha256 {g['checkpoint_sha256'][:12]})" if g.get("checkpoint_sha256") else "")
                     for g in prov["generators"])


def provenance_result(prov: Mapping[str, Any]) -> EvaluationResult:
    """The provenance as report tables: generators, filters, evaluators, plugin versions."""
    def js(v: Any) -> str:
        return json.dumps(v, sort_keys=True, default=str)

    gens = Table(("generator", "version", "checkpoint sha256", "parameters", "plugin", "samples"),
                 [(g["name"], g["version"] or "unknown", g["checkpoint_sha256"] or "-", js(g["params"]),
                   f"{g['plugin']} {g['plugin_version']}", g["samples"]) for g in prov["generators"]],
                 caption="As recorded in every bank row: who made each synthetic ECG")

    def judge(e: Mapping[str, Any]) -> str:
        return f"{e['judge']['classifier']} {e['judge']['identity']}" if e.get("judge") else "-"

    def parts(key: str) -> Table:
        return Table(("#", "name", "plugin", "parameters", "weights sha256", "judge (weights or params hash)")
                     + (("min score",) if key == "filters" else ()),
                     [(i, e["name"], f"{e['plugin']} {e['plugin_version']}", js(e["params"]),
                       e["checkpoint_sha256"] or "-", judge(e)) + ((e.get("min_score"),) if key == "filters" else ())
                      for i, e in enumerate(prov[key])])
    tables = {"generators": gens, "filters": parts("filters"), "evaluators": parts("evaluators"),
              "plugins": Table(("plugin", "version"), [(p["name"], p["version"]) for p in prov["plugins"]])}
    return EvaluationResult("provenance", {}, tables, details={"title": "Provenance", "section": "other"})


def provenance_markdown(prov: Mapping[str, Any]) -> list[str]:
    """The provenance as summary.md lines."""
    if not prov:
        return []
    lines = ["## Provenance"]
    for g in prov["generators"]:
        lines.append(f"- generator {g['name']} {g['version'] or '(version unknown)'}, checkpoint sha256 "
                     f"{g['checkpoint_sha256'] or '-'}, params {json.dumps(g['params'], sort_keys=True, default=str)}"
                     f" ({g['samples']} samples; plugin {g['plugin']} {g['plugin_version']})")
    for key in ("filters", "evaluators"):
        for e in prov[key]:
            lines.append(f"- {key[:-1]} {e['name']} (plugin {e['plugin']} {e['plugin_version']}), params "
                         f"{json.dumps(e['params'], sort_keys=True, default=str)}"
                         + (f", weights sha256 {e['checkpoint_sha256']}" if e["checkpoint_sha256"] else "")
                         + (f", judge {e['judge']['classifier']} {e['judge']['identity']}" if e.get("judge") else ""))
    lines.append("- plugins: " + ", ".join(f"{p['name']} {p['version']}" for p in prov["plugins"]))
    return lines + [""]
