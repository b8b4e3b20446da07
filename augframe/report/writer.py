"""Assemble and write a run's report: ``report.html`` + ``report.json``, atomically."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augframe.atomic import write_text
from augframe.errors import ValidationError
from augframe.jsonable import jsonable
from augframe.protocols import EvaluationResult
from augframe.report.html import esc, render_figure, render_page, section_order
from augframe.report.svg import ecg_strips
from augframe.signals import ECGBatch

REPORT_FORMAT = "augframe-report-1"


def collect_meta(meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run metadata plus the software versions that made it (augframe, Python, torch, numpy)."""
    import augframe

    out: dict[str, Any] = {}
    out.update(meta or {})
    out.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    out.update(augframe.software_versions())
    out["platform"] = platform.platform()
    return out


def _lead_index(batch: ECGBatch, lead: str | None) -> int:
    if lead is not None and lead in batch.leads:
        return batch.leads.index(lead)
    return batch.leads.index("II") if "II" in batch.leads else 0


def _label(batch: ECGBatch, i: int) -> str:
    if batch.labels is None or batch.labels.ndim != 1:
        return ""
    y = int(batch.labels[i])
    return batch.class_names[y] if 0 <= y < len(batch.class_names) else str(y)


def pairs_section(real: ECGBatch, synthetic: ECGBatch, *, max_pairs: int = 6, lead: str | None = None,
                  class_text: Mapping[str, str] | None = None) -> str:
    """HTML for up to ``max_pairs`` real/synthetic pairs (``real[i]`` beside ``synthetic[i]``) as ECG strips.

    Physical signals (units "mV") are drawn at 10 mm/mV. Normalised signals get one display gain per
    pair, chosen so the larger robust peak-to-peak spans ~15 mm, and the strip states the scale.
    """
    if len(real) != len(synthetic):
        raise ValidationError(f"report pairs need as many real ({len(real)}) as synthetic ({len(synthetic)}) ECGs")
    if real.fs != synthetic.fs:
        raise ValidationError(f"report pairs differ in sampling rate: {real.fs} vs {synthetic.fs} Hz")
    class_text = dict(class_text or {})
    xr, xs = real.numpy(), synthetic.numpy()
    li, ls = _lead_index(real, lead), _lead_index(synthetic, lead)
    figs = []
    for i in range(min(max_pairs, len(real))):
        a, b = xr[i, li].astype(np.float64), xs[i, ls].astype(np.float64)
        units, gain = real.units, 1.0
        if real.units != "mV" or synthetic.units != "mV":
            ptp = max(np.percentile(a, 99.5) - np.percentile(a, 0.5), np.percentile(b, 99.5) - np.percentile(b, 0.5))
            gain = 1.5 / ptp if ptp > 0 else 1.0
            units = f"{1 / gain:.3g} units"
        la, lb = _label(real, i), _label(synthetic, i)
        strips = [
            {"signal": a * gain, "label": f"Real · {class_text.get(la, la)}",
             "sublabel": f"id {real.ids[i]} · lead {real.leads[li]}", "color": "#111111"},
            {"signal": b * gain, "label": f"Synthetic · {class_text.get(lb, lb)}",
             "sublabel": f"id {synthetic.ids[i]} · lead {synthetic.leads[ls]}", "color": "#0b3d91"},
        ]
        fig = ecg_strips(strips, real.fs, units=units,
                         caption=f"Pair {i + 1}: {class_text.get(la, la)} → {class_text.get(lb, lb)}")
        figs.append(f"<div class='pair'>{render_figure(fig)}</div>")
    intro = ("Each pair shows a real ECG above the synthetic ECG made from it (or drawn beside it), on standard "
             "paper: 25 mm/s, 10 mm per amplitude unit, fine lines 1 mm, bold lines 5 mm, 1-unit calibration pulse.")
    return f"<section id='pairs'><h2>Real and synthetic ECGs</h2><p>{esc(intro)}</p>{''.join(figs)}</section>"


def write_report(
    results: Sequence[EvaluationResult], out_dir: str | Path, *,
    pairs: tuple[ECGBatch, ECGBatch] | None = None, meta: Mapping[str, Any] | None = None,
    title: str = "Synthetic ECG evaluation", subtitle: str | None = None, max_pairs: int = 6,
    class_text: Mapping[str, str] | None = None,
) -> Path:
    """Write ``report.html`` and ``report.json`` into ``out_dir``; returns the HTML path."""
    results = list(results)
    for r in results:
        if not isinstance(r, EvaluationResult):
            raise ValidationError(f"write_report takes EvaluationResult objects; got {type(r).__name__}")
    results = section_order(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full_meta = collect_meta(meta)
    pairs_html = ""
    pair_index: list[dict[str, Any]] = []
    if pairs is not None:
        real, syn = pairs
        pairs_html = pairs_section(real, syn, max_pairs=max_pairs, class_text=class_text)
        pair_index = [{"real_id": real.ids[i], "synthetic_id": syn.ids[i], "real_label": _label(real, i),
                       "synthetic_label": _label(syn, i)} for i in range(min(max_pairs, len(real)))]
    scales = "; ".join(f"{r.name}: {r.scale}" for r in results if r.scale)
    sub = subtitle or f"{len(results)} evaluator(s) · created {full_meta['created_utc']}"
    footer = (f"augframe {full_meta['augframe']} · torch {full_meta.get('torch', '?')} · {full_meta['created_utc']}"
              + (f" · scale: {scales}" if scales else ""))
    page = render_page(results, title=title, subtitle=sub, pairs_html=pairs_html, meta=full_meta, footer=footer)
    payload = {"format": REPORT_FORMAT, "title": title, "meta": full_meta,
               "results": [r.to_dict() for r in results], "pairs": pair_index}
    text = json.dumps(jsonable(payload, finite=True, fallback=str), indent=1, allow_nan=False) + "\n"
    write_text(out / "report.json", text)
    html_path = out / "report.html"
    write_text(html_path, page)  # atomic writes get open()'s permissions: a report is meant to be shared
    return html_path
