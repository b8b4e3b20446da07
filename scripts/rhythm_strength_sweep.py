"""How strong DiffStyleTS's redraw may be in rhythm-true transfers: a sweep of SDEdit strength and the
rhythm settings on the shipped model, measured with wfdb XQRS (a detector the generator does not use).

    python scripts/rhythm_strength_sweep.py --windows /tmp/af7/windows.npz [--n 40]

``--windows`` is the file ``scripts/train_demo_models.py data`` writes. For each direction, ``--n`` sources
drawn (seed 1) from its windows are transferred with every setting, the same seeds each time; printed per
setting: outputs the generator kept (did not refuse), the share of kept outputs where XQRS finds a beat more
than 80 ms from every placed beat, the median XQRS RR CV (and that of the drawn target rhythms), and the
share with P waves (P-wave coherence > 2.31, the rhythm evaluator's CinC threshold).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

SETTINGS = (
    {"strength": 0.6, "atrial": "source", "beat_check": False},
    {"strength": 0.6, "beat_check": False},
    {"strength": 0.6},
    {"strength": 0.45},
    {"strength": 0.3},
)


def cv(p: np.ndarray) -> float:
    r = np.diff(p)
    return float(np.std(r) / np.mean(r)) if len(r) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", required=True)
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from augframe.plugins import Registry
    from augframe.protocols import GenerationRequest
    from augframe.retime import extend_beats
    from augframe.signals import ECGBatch
    from augframe_afib.beatwaves import p_wave_coherence
    from augframe_afib.detectors import detect

    d = np.load(args.windows)
    x, y, fs, n = d["x"], d["y"], 250.0, args.n
    gen = Registry.discover().create("generator", "diffstylets", {
        "checkpoint": "pretrained:diffstylets-w16-cinc2017", "mode": "improved", "style_source": "prototype"})
    rng = np.random.default_rng(1)
    for src_cls, tgt_cls in ((1, 0), (0, 1)):
        src = rng.choice(np.flatnonzero(y == src_cls), n, replace=False)
        batch = ECGBatch(x[src], fs, ("I",), labels=np.full(n, src_cls), class_names=("N", "A"),
                         ids=[f"w{i}" for i in src], units="mV")
        seeds = np.arange(n) + 5000
        targets = gen.rhythm_bank.draw(np.full(n, tgt_cls), seeds, fs, x.shape[-1])
        for setting in SETTINGS:
            opts = {"steps": 20, "guidance": 3.0, "rhythm": "reference", **setting}
            c = gen.generate(GenerationRequest("transfer", np.full(n, tgt_cls), seeds, sources=batch,
                                               class_names=("N", "A"), options=opts))
            sig = c.batch.signals[:, 0]
            kept = np.array([r == "" for r in (c.refused or ("",) * n)])
            peaks = detect(sig, fs)
            extra = np.array([any(np.min(np.abs(extend_beats(t, x.shape[-1], 15, 15) - q)) > 20 for q in p)
                              for p, t in zip(peaks, targets)])
            rr_cv = np.array([cv(p) for p in peaks])
            p_wave = p_wave_coherence(sig, peaks, fs)
            print(f"{'NA'[src_cls]}->{'NA'[tgt_cls]} {setting}: kept {kept.sum()}/{n}, extra beats "
                  f"{extra[kept].mean():.0%}, RR CV {np.nanmedian(rr_cv[kept]):.3f} (target "
                  f"{np.nanmedian([cv(t) for t in targets]):.3f}), P waves {np.mean(p_wave[kept] > 2.31):.0%}",
                  flush=True)


if __name__ == "__main__":
    main()
