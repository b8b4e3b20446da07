"""Schedule, visited timesteps, DDIM/CFG steps and smoothing against the reference fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import savgol_filter

from augframe.diffusion import NoiseSchedule
from augframe.errors import ValidationError
from augframe.seeding import derive_seeds
from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.model import ConditionalUNet, DiffStyleTS
from augframe_diffstylets.sampler import guided_eps, sdedit
from augframe_diffstylets.smoothing import savgol

from diffstylets_helpers import TINY, float_state

TOL = 1e-4
# The schedule's tables come from float32 cos, whose last bit differs between CPU kinds (SIMD kernels,
# <= 1 ulp each): a ratio f_t / f_{t-1} moves by a few eps32, the cumulative product telescopes it.
# 8 eps32 (~1e-6 on values <= 1) holds on any CPU; another offset s or an off-by-one step is >> 1e-6.
TABLE_TOL = 8 * torch.finfo(torch.float32).eps


COSINE = NoiseSchedule.cosine()


def sdedit_timesteps(strength: float, steps: int) -> list[int]:
    return COSINE.set_timesteps(steps, "leading", strength)


def noise_level(strength: float, steps: int, mode: str) -> int:
    return COSINE.sdedit_start(strength, steps, faithful=mode == "faithful")


def noised_bound(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What q_sample may differ by on another CPU: the table error times |x0| + |noise|, plus rounding."""
    return TABLE_TOL * (x0.abs() + noise.abs() + 1)


def test_schedule_matches_reference_float32(ref):
    d = ref("diffusion_schedule")
    s = NoiseSchedule.cosine()
    ab = s.alphas_cumprod
    tables = {"betas": s.betas, "alphas_cumprod": ab, "sqrt_alphas_cumprod": ab.sqrt(),
              "sqrt_one_minus_alphas_cumprod": (1 - ab).sqrt()}
    for key, table in tables.items():
        assert table.dtype == torch.float32 and (table - d[key]).abs().max() <= TABLE_TOL, key
    assert abs(float(s.alphas_cumprod[0]) - 0.9999) < 1e-6
    assert abs(float(s.alphas_cumprod[600]) - 0.339) < 1e-3
    q = d["q_sample"]
    assert ((s.add_noise(q["x_start"], q["noise"], q["t"]) - q["x_t"]).abs() <= noised_bound(q["x_start"], q["noise"])).all()


def test_visited_timesteps_match_reference(ref):
    table = ref("diffusion_schedule")["sdedit_timesteps"]
    checked = 0
    for key, visited in table.items():
        strength, steps = (float(p.split("=")[1]) for p in key.split(","))
        if isinstance(visited, str):  # strength 1.0: the reference raises IndexError
            with pytest.raises(ValidationError, match="faithful"):
                noise_level(strength, int(steps), "faithful")
            continue
        assert sdedit_timesteps(strength, int(steps)) == list(visited), key
        checked += 1
    assert checked == 7
    assert sdedit_timesteps(0.6, 50)[:3] == [588, 576, 564] and sdedit_timesteps(0.6, 50)[-1] == 0
    assert ref("sdedit_mc64")["main"]["timesteps"].tolist() == sdedit_timesteps(0.6, 50)


def test_noise_level_faithful_off_by_one_and_improved_fix():
    assert noise_level(0.6, 50, "faithful") == 600  # one stride above the first evaluated step
    assert noise_level(0.6, 50, "improved") == 588
    assert noise_level(0.6, 20, "improved") == 570
    assert noise_level(1.0, 50, "improved") == 980  # improved can run at full strength


def test_ddim_updates_reproduce_the_whole_stored_trajectory(ref):
    """With the stored UNet outputs, every DDIM update (49 steps + final x0) matches the reference."""
    main = ref("sdedit_mc64")["main"]
    s = NoiseSchedule.cosine()
    ts = main["timesteps"].tolist()
    xs, ec, eu = main["trajectory_x"], main["eps_cond"], main["eps_uncond"]
    for k, t in enumerate(ts):
        eps = eu[k] + main["cfg_scale"] * (ec[k] - eu[k])
        t_prev = ts[k + 1] if k + 1 < len(ts) else None
        x_next, x0 = s.step(eps, t, xs[k], t_prev, clip=3.0)
        target = xs[k + 1] if t_prev is not None else main["output"]
        assert (x_next - target).abs().max() <= TOL, (k, t)


def test_sdedit_first_steps_with_reference_unet(ref):
    """Faithful SDEdit with the paper-width UNet: noised start, then 2 fused-CFG steps vs the fixture.

    (The full 50-step run is in bench/diffstylets_parity.py: max abs error 7e-6.)
    """
    unet = ConditionalUNet()
    unet.load_state_dict(float_state(ref("unet_mc64")))
    unet.eval()
    f = ref("sdedit_mc64")
    i, main = f["inputs"], f["main"]
    s = NoiseSchedule.cosine()
    x = s.add_noise(i["x0"], main["noise"], torch.full((2,), noise_level(0.6, 50, "faithful")))
    bound = noised_bound(i["x0"], main["noise"])
    assert ((x - main["x_start"]).abs() <= bound).all() and ((x - main["trajectory_x"][0]).abs() <= bound).all()
    ts = main["timesteps"].tolist()
    with torch.inference_mode():
        for k in range(2):
            eps, eps_c, eps_u = guided_eps(unet, x, ts[k], i["content"], i["style"], i["class_label"], 2, 3.0)
            assert (eps_c - main["eps_cond"][k]).abs().max() <= TOL
            assert (eps_u - main["eps_uncond"][k]).abs().max() <= TOL
            x, _ = s.step(eps, ts[k], x, ts[k + 1], clip=3.0)
            assert (x - main["trajectory_x"][k + 1]).abs().max() <= TOL


def test_fused_cfg_equals_two_forwards():
    torch.manual_seed(0)
    unet = ConditionalUNet(ModelConfig(signal_length=128, **TINY)).eval()
    torch.nn.init.normal_(unet.out_conv.weight, std=0.1)
    x, c, s = torch.randn(3, 1, 128), torch.randn(3, 16), torch.randn(3, 8)
    y = torch.tensor([0, 1, 1])
    with torch.inference_mode():
        fused, ec, eu = guided_eps(unet, x, 300, c, s, y, 2, 3.0, fused=True)
        split, ec2, eu2 = guided_eps(unet, x, 300, c, s, y, 2, 3.0, fused=False)
    assert torch.allclose(fused, split, atol=1e-5)
    assert torch.allclose(fused, eu + 3.0 * (ec - eu))
    assert not torch.allclose(ec, eu)  # the null class really changes the prediction


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_sdedit_is_batch_size_invariant(eta):
    torch.manual_seed(1)
    model = DiffStyleTS(ModelConfig(signal_length=128, **TINY)).eval()
    torch.nn.init.normal_(model.unet.out_conv.weight, std=0.1)
    x = torch.randn(4, 1, 128) * 0.5
    seeds = derive_seeds(11, 4)
    y = torch.tensor([1, 0, 1, 0])
    s = NoiseSchedule.cosine()
    with torch.inference_mode():
        c, st = model.encode(x)
        full, _ = sdedit(model.unet, s, x, c, st, y, seeds, null_class=2, steps=6, eta=eta)
        part, _ = sdedit(model.unet, s, x[2:], c[2:], st[2:], y[2:], seeds[2:], null_class=2, steps=6, eta=eta)
        again, _ = sdedit(model.unet, s, x, c, st, y, seeds, null_class=2, steps=6, eta=eta)
        other, _ = sdedit(model.unet, s, x, c, st, y, derive_seeds(12, 4), null_class=2, steps=6, eta=eta)
    assert torch.equal(full, again)
    assert torch.allclose(full[2:], part, atol=1e-5)
    assert not torch.allclose(full, other, atol=1e-3)


def test_savgol_on_device_matches_scipy_and_fixture(ref):
    main = ref("sdedit_mc64")["main"]
    assert (savgol(main["output"]) - main["output_savgol_11_3"]).abs().max() <= 1e-5
    x = np.random.default_rng(0).normal(size=(3, 1, 200)).astype(np.float32)
    ours = savgol(torch.from_numpy(x), 7, 2).numpy()
    assert np.abs(ours - savgol_filter(x, 7, 2, axis=-1)).max() <= 1e-5
    with pytest.raises(ValidationError, match="odd"):
        savgol(torch.from_numpy(x), 8, 2)
