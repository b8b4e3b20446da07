"""HTML + JSON reports of evaluation runs.

:func:`write_report` turns a list of :class:`~augframe.protocols.EvaluationResult` (and
optionally real/synthetic ECG pairs and run metadata) into ``report.html``, one self-contained page
with inline SVG and no scripts, and ``report.json`` with the same content, both written atomically.
:func:`screenshot` renders a page with headless Chromium.
"""

from __future__ import annotations

from augframe.report.screenshot import ChromiumNotFound, find_chromium, screenshot
from augframe.report.writer import collect_meta, pairs_section, write_report

__all__ = ["write_report", "pairs_section", "collect_meta", "screenshot", "find_chromium", "ChromiumNotFound"]
