"""Plot a DiffStyleTS training log (train_log.jsonl: one JSON line per epoch) as a PNG and print it.

    python scripts/plot_train_log.py plugins/augframe_diffstylets/pretrained/diffstylets-w16-train_log.jsonl docs/img/diffstylets-w16-train.png

Prints one markdown table row per epoch (stage, steps, seconds, every loss term) so the figures in
docs/results.md come from the log itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    log, png = Path(argv[0]), Path(argv[1])
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows:
        sys.exit(f"{log} holds no epochs")
    for i, r in enumerate(rows):  # one record per epoch, numbered over both stages; steps from the global counter
        prev = rows[i - 1].get("global_step", 0) if i and rows[i - 1]["stage"] == r["stage"] else 0
        r["epoch"], r["steps"] = i + 1, r.get("steps", r.get("global_step", 0) - prev)
    skip = ("epoch", "stage", "steps", "step", "global_step", "seconds", "samples_per_s")
    terms: list[str] = []
    for r in rows:
        terms += [k for k in r if k not in skip and k not in terms]
    print("| epoch | stage | steps | s | " + " | ".join(terms) + " |")
    print("|" + "---|" * (4 + len(terms)))
    for r in rows:
        vals = " | ".join(f"{r[k]:.4f}" if k in r else "" for k in terms)
        print(f"| {r['epoch']} | {r['stage']} | {r['steps']} | {r['seconds']:.0f} | {vals} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k in terms:
        pts = [(r["epoch"], r[k]) for r in rows if k in r]
        ax.plot(*zip(*pts), marker="o", label=k)
    s2 = [r["epoch"] for r in rows if r["stage"] == 2]
    if s2:
        ax.axvline(min(s2) - 0.5, color="grey", ls="--", lw=1)
        ax.text(min(s2) - 0.4, ax.get_ylim()[1] * 0.95, "stage 2", color="grey", va="top")
    ax.set_xlabel("epoch (each: steps x batch windows, see table)")
    ax.set_ylabel("loss term (per-batch mean)")
    ax.set_title(f"{log.name}: training curve (CPU scale)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main(sys.argv[1:])
