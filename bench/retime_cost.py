"""What re-timing costs a DiffStyleTS transfer on this machine: generation with the source's beat timing
against generation re-timed to a target-class rhythm, the same ECGs and seeds, in one run.

The re-timing (R-peak detection, the warp and the reference's atrial activity, on the host, once per
``generate`` call), the QRS inpainting (one noising and one blend per sampler step) and the beat check
after sampling are the only differences; the issue's target is
at most 10 % extra time. Both precisions the CPU offers are timed (float32; bf16 through the time-major
engine), with ``--repeats`` alternating runs and the median kept.

    python -m bench.retime_cost [--ecgs 8] [--steps 20] [--strength 0.3] [--repeats 3] [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from augframe.data.demo import demo_windows
from augframe.plugins import Registry
from augframe.protocols import GenerationRequest

CHECKPOINT = "plugins/augframe_diffstylets/pretrained/diffstylets-w16-cinc2017.safetensors"


def timed(gen, request) -> float:
    t0 = time.perf_counter()
    gen.generate(request)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ecgs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=0.3, help="SDEdit strength (the rhythm recipes use 0.3)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    demo = demo_windows(normalise=None)
    src = demo.select(np.flatnonzero(demo.labels == 0)[: args.ecgs])
    reg = Registry.discover()
    out = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "ecgs": args.ecgs,
           "steps": args.steps, "strength": args.strength, "results": {}}
    for precision in args.precisions.split(","):
        gen = reg.create("generator", "diffstylets", {"checkpoint": CHECKPOINT, "device": "cpu", "precision": precision,
                                                      "style_source": "prototype",
                                                      "sampler": {"steps": args.steps, "strength": args.strength}})
        times: dict[str, list[float]] = {"source": [], "reference": []}
        for rep in range(args.repeats + 1):  # the first round warms up and is dropped
            for rhythm in ("source", "reference") if rep % 2 == 0 else ("reference", "source"):
                req = GenerationRequest.transfer(src, np.ones(len(src), int), seed=3, rhythm=rhythm)
                t = timed(gen, req)
                if rep:
                    times[rhythm].append(t / len(src))
        x = gen._sources_to_model(src)
        t0 = time.perf_counter()
        gen._retime(x, np.ones(len(src), int), np.arange(len(src)), gen._sampler_for({"rhythm": "reference"}))
        retime_s = (time.perf_counter() - t0) / len(src)
        med = {k: statistics.median(v) for k, v in times.items()}
        out["results"][precision] = {"s_per_ecg": med, "ratio_reference_over_source": med["reference"] / med["source"],
                                     "retime_host_s_per_ecg": retime_s}
        print(f"{precision}: keep timing {med['source']:.3f} s/ECG, re-timed {med['reference']:.3f} s/ECG, "
              f"ratio {med['reference'] / med['source']:.3f}; re-timing on the host {1000 * retime_s:.1f} ms/ECG")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
