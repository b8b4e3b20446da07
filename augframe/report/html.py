"""Render evaluation results as one self-contained HTML page (inline CSS and SVG, no scripts).

The renderer is generic over :class:`~augframe.protocols.EvaluationResult`. It draws what a
result carries and follows two conventions in ``details`` that evaluators may use:

* ``details["headline"]``: a list of ``{"label", "value", "status", "note"}`` cards shown first
  (status "good", "bad", "warn" or "neutral");
* ``details["distributions"]``: ``{quantity: [values]}`` or ``{quantity: {set name: [values]}}``,
  drawn as (overlaid) histograms;
* ``details["section"]``: "utility", "rhythm", "similarity" or "other": the page shows results in that
  order (what users ask first: does it help training, is the rhythm right, does it look right).

A headline card may carry ``"judge"``: an :class:`augframe.judges.Independence` dict. A card whose judge
is not shown to be independent of the generator and the filter chain is never a headline: it is moved
below the headline, labelled, and never coloured as a success.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from augframe.protocols import EvaluationResult, Figure, Table
from augframe.report.svg import histogram

CSS = """
:root { --ink:#1b1f24; --muted:#5b6470; --line:#e2e5ea; --accent:#8c1d2f; --good:#1d7a46; --bad:#b23a48;
        --warn:#a76a00; --bg:#f5f6f8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
header { background:#fff; border-bottom:3px solid var(--accent); padding:22px 40px 16px; }
header h1 { margin:0 0 4px; font-size:24px; letter-spacing:-0.2px; }
header .sub { color:var(--muted); font-size:13px; }
main { max-width:1240px; margin:0 auto; padding:18px 40px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:18px 22px; margin:18px 0; }
h2 { font-size:18px; margin:0 0 4px; }
h3 { font-size:14px; margin:18px 0 6px; color:#2c333b; }
.scale { color:var(--muted); font-size:12.5px; margin-bottom:10px; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0 6px; }
.card { flex:1 1 200px; border:1px solid var(--line); border-left:5px solid #9aa3ad; border-radius:4px;
        padding:8px 12px; background:#fcfcfd; }
.card.good { border-left-color:var(--good); } .card.bad { border-left-color:var(--bad); }
.card.warn { border-left-color:var(--warn); }
.card .label { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.4px; }
.card .value { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .note { font-size:12px; color:var(--muted); }
table { border-collapse:collapse; width:100%; font-size:12.5px; margin:4px 0 2px; }
th { text-align:left; background:#f0f2f5; color:#2c333b; font-weight:600; padding:5px 8px;
     border-bottom:1px solid #cfd4da; }
td { padding:4px 8px; border-bottom:1px solid #eef0f3; font-variant-numeric:tabular-nums; }
td.num { text-align:right; white-space:nowrap; }
tr:nth-child(even) td { background:#fafbfc; }
.caption { color:var(--muted); font-size:12px; margin:3px 0 10px; }
.figs { display:flex; flex-wrap:wrap; gap:14px; }
figure { margin:6px 0; } figure svg { max-width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:12px; margin-top:4px; max-width:760px; }
.notes { background:#fff8e6; border:1px solid #f0dca8; border-radius:4px; padding:8px 14px; margin-top:12px;
         font-size:12.5px; }
.notes ul { margin:4px 0; padding-left:18px; }
.pair { margin:8px 0 14px; }
.pair svg { width:100%; height:auto; }
.toc { font-size:13px; color:var(--muted); }
.toc a { color:var(--accent); text-decoration:none; margin-right:14px; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:3px 16px; font-size:12.5px; margin:0; }
dl.meta dt { color:var(--muted); } dl.meta dd { margin:0; font-family:Menlo, Consolas, monospace; font-size:12px;
     word-break:break-all; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any) -> str:
    """A table cell: floats to 4 significant decimals, the rest as text."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else ("yes" if x else "no")
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) < 10 else f"{x:.2f}"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    return str(x)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def render_table(table: Table, title: str | None = None) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = "".join(
            f"<td class='num'>{esc(fmt(c))}</td>" if _is_num(c) or _looks_numeric(c) else f"<td>{esc(fmt(c))}</td>"
            for c in row)
        body.append(f"<tr>{cells}</tr>")
    out = f"<h3>{esc(title)}</h3>" if title else ""
    out += f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if table.caption:
        out += f"<div class='caption'>{esc(table.caption)}</div>"
    return out


def _looks_numeric(c: Any) -> bool:
    if not isinstance(c, str) or not c:
        return False
    s = c.replace("+-", "").replace("pp", "").replace(" ", "").replace("%", "")
    return bool(s) and all(ch in "0123456789.+-e[]," for ch in s)


def render_figure(fig: Figure) -> str:
    if fig.format == "svg":
        body = fig.data
    else:
        body = f"<img alt='{esc(fig.caption)}' src='data:image/png;base64,{fig.data}' style='max-width:100%'>"
    cap = f"<figcaption>{esc(fig.caption)}</figcaption>" if fig.caption else ""
    return f"<figure>{body}{cap}</figure>"


def render_cards(cards: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for c in cards:
        status = esc(c.get("status", "neutral"))
        value = c.get("value", "")
        out.append(
            f"<div class='card {status}'><div class='label'>{esc(c.get('label', ''))}</div>"
            f"<div class='value'>{esc(fmt(value) if _is_num(value) else value)}</div>"
            + (f"<div class='note'>{esc(c['note'])}</div>" if c.get("note") else "") + "</div>")
    return f"<div class='cards'>{''.join(out)}</div>" if out else ""


SECTIONS = ("utility", "rhythm", "similarity", "other")


def section_order(results: Sequence[EvaluationResult]) -> list[EvaluationResult]:
    """Results ordered utility -> rhythm -> similarity -> other (stable within a section)."""
    def rank(r: EvaluationResult) -> int:
        sec = (r.details or {}).get("section", "other")
        return SECTIONS.index(sec) if sec in SECTIONS else len(SECTIONS) - 1
    return sorted(results, key=rank)


def split_by_independence(cards: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[dict[str, Any]]]:
    """(headline cards, demoted cards): a judge-based card is a headline only if its judge is independent."""
    shown, demoted = [], []
    for c in cards:
        judge = c.get("judge")
        if judge is None or judge.get("independent") is True:
            shown.append(c)
        else:
            label = judge.get("label", "independence unknown")
            demoted.append(dict(c, status="neutral", label=f"{c.get('label', '')} ({label})"))
    return shown, demoted


def render_distributions(dists: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
    figs = []
    for name, series in dists.items():
        if not isinstance(series, Mapping):
            series = {"synthetic": series}
        if not any(len(np.asarray(v, dtype=float)) for v in series.values()):
            continue
        figs.append(render_figure(histogram(series, xlabel=(labels or {}).get(name, name))))
    return f"<h3>Distributions</h3><div class='figs'>{''.join(figs)}</div>" if figs else ""


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "section"


def render_result(result: EvaluationResult) -> str:
    d = result.details or {}
    parts = [f"<section id='{_slug(result.name)}'><h2>{esc(d.get('title', result.name))}</h2>"]
    if result.scale:
        parts.append(f"<div class='scale'>Scale: {esc(result.scale)}</div>")
    if d.get("summary"):
        parts.append(f"<p>{esc(d['summary'])}</p>")
    shown, demoted = split_by_independence(d.get("headline", ()))
    parts.append(render_cards(shown))
    if demoted:
        parts.append("<div class='notes'><b>Not evidence: figures from a judge that is not shown to be independent "
                     "of the generator and the filters</b></div>" + render_cards(demoted))
    for key, table in result.tables.items():
        parts.append(render_table(table, key.replace("_", " ").capitalize()))
    if result.figures:
        parts.append("<div class='figs'>" + "".join(render_figure(f) for f in result.figures.values()) + "</div>")
    parts.append(render_distributions(d.get("distributions", {}), d.get("distribution_labels")))
    if result.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
        parts.append(f"<div class='notes'><b>Caveats and provenance</b><ul>{items}</ul></div>")
    parts.append("</section>")
    return "".join(parts)


def render_meta(meta: Mapping[str, Any]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta.items())
    return f"<section id='run'><h2>Run metadata</h2><dl class='meta'>{rows}</dl></section>"


def render_page(results: Sequence[EvaluationResult], *, title: str, subtitle: str, pairs_html: str,
                meta: Mapping[str, Any], footer: str) -> str:
    toc = "".join(f"<a href='#{_slug(r.name)}'>{esc((r.details or {}).get('title', r.name))}</a>" for r in results)
    if pairs_html:
        toc += "<a href='#pairs'>ECG pairs</a>"
    toc += "<a href='#run'>Run metadata</a>"
    body = "".join(render_result(r) for r in results)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><div class='sub'>{esc(subtitle)}</div>"
        f"<div class='toc'>{toc}</div></header><main>{body}{pairs_html}{render_meta(meta)}</main>"
        f"<footer>{esc(footer)}</footer></body></html>"
    )
