"""12-lead end to end through the core pipeline: PTB-XL -> sssd-ecg fit -> sample -> lead-consistency -> bank -> eval."""

from __future__ import annotations

import json

from augframe.pipeline import run
from augframe.recipe import loads
from augframe.signals import STANDARD_LEADS

RECIPE = """
[run]
name = "sssd-ptbxl-tiny"
seed = 0
device = "cpu"
output_dir = "{out}"
progress = false

[data]
source = "ptbxl"
params = {{ root = "{root}", resolution = 100, limit_per_class = 6, classes = ["N", "A"] }}
classes = ["N", "A"]
preprocessing = {{ leads = {leads}, fs = 100.0, window_s = 10.0, cleaning = "none", cache = false }}
split = {{ test_fraction = 0.25 }}

[generator]
name = "sssd-ecg"
fit = true
params = {{ num_layers = 1, res_channels = 8, skip_channels = 8, s4_state = 4, label_embed_dim = 8, diffusion_steps = 10, iterations = 2, batch_size = 4, sampler = "ddim", ddim_steps = 3 }}

[[filters]]
name = "lead-consistency"

[generation]
kind = "sample"
labels = ["N", "A"]
count = 2
batch_size = 4

[[evaluators]]
name = "lead-consistency"

[report]
html = false
"""


def test_recipe_runs_twelve_lead_generation_end_to_end(ptbxl_dir, tmp_path):
    text = RECIPE.format(out=tmp_path.as_posix(), root=ptbxl_dir.resolve().as_posix(),
                         leads=json.dumps(list(STANDARD_LEADS)))
    result = run(loads(text))
    for tag in ("sample:N", "sample:A"):
        stats = result.generation["per_target"][tag]
        assert stats["accepted_total"] == 2 and stats["per_filter_acceptance"]["lead-consistency"] == 1.0
    ev = json.loads(result.evaluations["lead-consistency"].read_text())
    assert ev["metrics"]["real_within_threshold"] == 1.0 and ev["metrics"]["synthetic_within_threshold"] == 1.0
    assert (tmp_path / "generator" / "sssd-ecg.safetensors").exists()
