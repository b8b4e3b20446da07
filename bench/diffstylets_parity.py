"""Full 50-step SDEdit parity of the faithful DiffStyleTS sampler against the reference fixture.

The unit tests check the first two UNet steps and every DDIM update (from stored UNet outputs); this
script runs the whole trajectory with the paper-width UNet (100 UNet forwards of batch 2 as 50 fused
forwards of batch 4, about 40 s on one contended CPU core) and reports the largest deviations.

    python -m bench.diffstylets_parity [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from augframe.diffusion import NoiseSchedule
from augframe_diffstylets.model import ConditionalUNet
from augframe_diffstylets.sampler import sdedit
from augframe_diffstylets.smoothing import savgol


def reference_dir() -> Path:
    shared = Path(os.environ.get("AUGFRAME_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    return shared / "reference"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = reference_dir()
    state = torch.load(ref / "unet_mc64.pt", weights_only=True)["state_dict"]
    unet = ConditionalUNet()
    unet.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    unet.eval()
    fixture = torch.load(ref / "sdedit_mc64.pt", weights_only=True)
    i, main_ = fixture["inputs"], fixture["main"]
    start = time.perf_counter()
    with torch.inference_mode():
        out, traj = sdedit(unet, NoiseSchedule.cosine(), i["x0"], i["content"], i["style"], i["class_label"], [0, 1],
                           null_class=2, strength=main_["strength"], steps=main_["num_steps"],
                           guidance=main_["cfg_scale"], mode="faithful", noise=main_["noise"], record=True)
    seconds = time.perf_counter() - start
    result = {
        "timesteps_equal": traj.timesteps == main_["timesteps"].tolist(),
        "noise_timestep": traj.noise_t,
        "max_abs_err_output": float((out - main_["output"]).abs().max()),
        "max_abs_err_output_savgol": float((savgol(out) - main_["output_savgol_11_3"]).abs().max()),
        "max_abs_err_trajectory": max(float((a - b).abs().max()) for a, b in zip(traj.x, main_["trajectory_x"])),
        "max_abs_err_eps_cond": max(float((a - b).abs().max()) for a, b in zip(traj.eps_cond, main_["eps_cond"])),
        "max_abs_err_eps_uncond": max(float((a - b).abs().max())
                                      for a, b in zip(traj.eps_uncond, main_["eps_uncond"])),
        "seconds": seconds,
        "torch": torch.__version__,
        "threads": args.threads,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
