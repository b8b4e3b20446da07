"""augframe: synthetic ECGs mixed into deep-learning training data, with measured rigour.

The core knows nothing about any model: it defines the ECG batch type, the plugin contracts
(generators, filters, evaluators, data sources), recipes, the synthetic bank and on-the-fly
augmentation. Models live in plugins found through the ``augframe`` entry-point group.
"""

import importlib.metadata as _metadata
import logging as _logging
import platform as _platform

from augframe.errors import (
    AugframeError, BankError, CheckpointError, DataError, PluginError, RecipeError, ValidationError,
)
from augframe.hookspecs import Register, hookimpl
from augframe.protocols import (
    Candidates, EvalContext, EvaluationResult, ExternalSet, Figure, FilterResult, GenerationRequest,
    GeneratorInfo, Record, Table,
)
from augframe.judges import JudgeRef
from augframe.signals import STANDARD_LEADS, ECGBatch

__version__ = _metadata.version("augframe")
_logging.getLogger(__name__).addHandler(_logging.NullHandler())  # the application (e.g. the CLI) picks handlers


def software_versions() -> dict[str, str]:
    """What made a result: augframe, Python, numpy and torch versions (as installed)."""
    return {"augframe": __version__, "python": _platform.python_version(),
            "numpy": _metadata.version("numpy"), "torch": _metadata.version("torch")}

__all__ = [
    "AugframeError", "BankError", "CheckpointError", "DataError", "PluginError", "RecipeError",
    "ValidationError", "hookimpl", "Candidates", "EvalContext", "EvaluationResult", "ExternalSet", "Figure", "JudgeRef",
    "FilterResult", "GenerationRequest", "GeneratorInfo", "Record", "Table", "STANDARD_LEADS",
    "ECGBatch", "Register", "__version__", "software_versions",
]

__all__ += ["training_data", "load_run_data"]


def __getattr__(name: str) -> object:
    """``training_data`` and ``load_run_data`` (augframe.mix), imported on first use: ``import augframe`` stays light."""
    if name in ("training_data", "load_run_data"):
        from augframe import mix

        return getattr(mix, name)
    raise AttributeError(f"module 'augframe' has no attribute {name!r}")
