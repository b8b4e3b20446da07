"""Which classifier judged what: judge identities and the independence of a judge-based figure.

A figure such as a flip rate, a Frechet distance on a classifier's embeddings or a TRTS score is only
evidence when the classifier that produced it had no say in making the synthetic ECGs. A generator
whose training used a classifier (a "flip" loss) learns to please that classifier; a filter chain
that rejects by a classifier keeps only what that classifier likes. The run knows both: the
generator reports the judges it trained against (``GeneratorInfo.trained_against``) and filters
report theirs (``Filter.judges``). An evaluator compares its own judge with them.

A judge is identified by its registry name and the SHA-256 of its weights (the tensors, whatever the
file format; for a judge without a file, of its canonical parameters): the same architecture with
other weights is another judge.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

#: Parameter names under which a classifier factory takes a weights file.
WEIGHT_PARAMS = ("checkpoint", "weights", "path")


@attrs.frozen
class JudgeRef:
    """A classifier used as a judge: registry name, weights identity, and where it was used.

    Fields: ``classifier`` (its registry name, e.g. "afib-reslstm"); ``identity`` (:func:`judge_identity`:
    ``sha256:<hex>`` of its weights file, or ``params:<hex>`` of its settings); ``role`` (where it was
    used, e.g. "flip loss", "filter", "evaluator").
    """

    classifier: str
    identity: str
    role: str = ""

    def same_judge(self, other: JudgeRef) -> bool:
        return self.classifier == other.classifier and self.identity == other.identity

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JudgeRef:
        return cls(str(d["classifier"]), str(d["identity"]), str(d.get("role", "")))


def _weights_file(value: str | os.PathLike[str]) -> Path | None:
    """The file a weights parameter names (``pretrained:NAME`` or a path), None if there is none."""
    from augframe.errors import CheckpointError
    from augframe.paths import resolve

    try:
        path = resolve(value)
    except CheckpointError:
        return None
    return path if path.is_file() else None


def _state_of(path: Path) -> Mapping[str, Any]:
    """The tensors of a weights file: safetensors, or a torch file read with weights_only=True."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from augframe.checkpoint import load_torch_checkpoint

    payload = load_torch_checkpoint(path)
    for key in ("model_state_dict", "state_dict"):
        if isinstance(payload, Mapping) and isinstance(payload.get(key), Mapping):
            return payload[key]
    return payload if isinstance(payload, Mapping) else {}


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's tensors (sorted names, values as float32 for floats), whatever the file format:
    the same weights saved as .pt or .safetensors are the same judge."""
    import torch

    h = hashlib.sha256()
    for name, value in sorted(_state_of(Path(path)).items()):
        if not torch.is_tensor(value):
            continue
        t = value.detach().cpu()
        t = t.float() if t.is_floating_point() else t
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def judge_identity(classifier: str, params: Mapping[str, Any] | None = None) -> str:
    """``weights:<hex>`` of the weights file the params name, else ``params:<hex>`` of the params."""
    params = dict(params or {})
    for key in WEIGHT_PARAMS:
        value = params.get(key)
        if isinstance(value, (str, os.PathLike)):
            path = _weights_file(value)
            if path is not None:
                return "weights:" + weights_sha256(path)
    blob = json.dumps({"classifier": classifier, "params": params}, sort_keys=True, default=str).encode()
    return "params:" + hashlib.sha256(blob).hexdigest()


def judge_ref(classifier: str, params: Mapping[str, Any] | None = None, role: str = "") -> JudgeRef:
    return JudgeRef(classifier, judge_identity(classifier, params), role)


@attrs.frozen
class Independence:
    """Whether a judge is independent of the run's generator and filters, and why.

    ``independent`` is None when the generator did not declare which judges it trained against:
    such a figure is labelled "independence unknown" and is never a headline.
    """

    judge: JudgeRef
    independent: bool | None
    reason: str

    @property
    def label(self) -> str:
        if self.independent is None:
            return "independence unknown"
        return "independent judge" if self.independent else "NOT independent"

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge.to_dict(), "independent": self.independent, "label": self.label,
                "reason": self.reason}


def assess(judge: JudgeRef, dependent: Iterable[JudgeRef], provenance_known: bool = True) -> Independence:
    """Compare ``judge`` with the judges used in generator training or filtering."""
    hits = [d for d in dependent if d.same_judge(judge)]
    if hits:
        roles = ", ".join(sorted({d.role or "the run" for d in hits}))
        return Independence(judge, False, f"{judge.classifier} ({judge.identity[:19]}) was used in {roles}")
    if not provenance_known:
        return Independence(judge, None, "the generator does not declare which judges it trained against")
    return Independence(judge, True, f"{judge.classifier} ({judge.identity[:19]}) was not used in generator "
                                     "training or in the filter chain")
