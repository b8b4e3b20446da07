"""Recipes: one TOML file declares a whole run, parsed strictly into frozen attrs classes.

Every table and key is checked: an unknown key, a wrong type or (with :func:`check_plugins`) an
unknown plugin name raises :class:`~augframe.errors.RecipeError` naming the full key path, e.g.
``generator.parms``, and the nearest valid key. Plugin parameters (``params`` tables) are free-form
here and checked against the plugin factory's signature by :func:`check_plugins`.

See docs/recipes.md for the reference of every key.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from augframe.errors import PluginError, RecipeError, suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GENERATION_KINDS = ("transfer", "sample", "complete")
MASK_TASKS: dict[str, tuple[str, ...]] = {  # generation.mask.task -> its keys
    "forecast": ("horizon_s",),
    "gap": ("fraction",),
    "random_gaps": ("fraction", "chunk_s"),
    "leads": ("missing",),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _field(default: Any = attrs.NOTHING, *, types: tuple[type, ...], doc: str = "", table: type | None = None,
           **kw: Any) -> Any:
    """An attrs field that remembers which TOML types it accepts (for the strict parser).

    ``table`` marks an array of tables nested in a table (``[[evaluation.external]]``): each entry
    is parsed as that class.
    """
    metadata = {"types": types, "doc": doc, "table": table}
    if default is not attrs.NOTHING and isinstance(default, (dict, list)):
        factory = (dict if isinstance(default, dict) else list)
        return attrs.field(factory=lambda: factory(default), metadata=metadata, **kw)
    return attrs.field(default=default, metadata=metadata, **kw)


def _tuple(v: Any) -> tuple[Any, ...] | None:
    return None if v is None else tuple(v)


def _frozen_dict(v: Any) -> dict[str, Any]:
    return dict(v or {})


@attrs.frozen
class RunSpec:
    """``[run]``: name, seed, device and where outputs go."""

    name: str = _field("run", types=(str,), doc="run name; used in the default output directory")
    seed: int = _field(0, types=(int,), doc="master seed: every random step derives from it")
    device: str = _field("auto", types=(str,), doc="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    output_dir: str = _field("runs/{name}", types=(str,), doc="output folder; '{name}' expands to run.name")
    progress: bool = _field(True, types=(bool,), doc="progress bars on long steps")


@attrs.frozen
class PluginsSpec:
    """``[plugins]``: which entry-point plugins load for this run (like pytest's ``-p no:NAME``)."""

    allow: tuple[str, ...] | None = _field(None, types=(list,), converter=_tuple,
                                           doc="load only these plugins (entry-point names)")
    block: tuple[str, ...] = _field((), types=(list,), converter=tuple, doc="never load these plugins")


@attrs.frozen
class DataSpec:
    """``[data]``: a source plugin, its params, the preprocessing and the split."""

    source: str = _field(types=(str,), doc="source plugin name (e.g. 'cinc2017')")
    params: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict, doc="source parameters")
    preprocessing: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict,
                                           doc="passed to the data layer (resampling, filters, windows, scaling)")
    split: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict,
                                   doc="passed to the data layer's splitter (e.g. test_fraction, by, fold)")
    classes: tuple[str, ...] | None = _field(None, types=(list,), converter=_tuple,
                                             doc="class names to keep, in label-index order")


@attrs.frozen
class GeneratorSpec:
    """``[generator]``: the generator plugin and whether to fit it."""

    name: str = _field(types=(str,), doc="generator plugin name")
    params: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict, doc="factory parameters")
    fit: bool = _field(False, types=(bool,), doc="train the generator on the training split first")
    checkpoint: str | None = _field(None, types=(str,),
                                    doc="weights file, passed to the factory as its 'checkpoint' parameter")

    def factory_params(self) -> dict[str, Any]:
        """The factory's parameters: ``params``, plus ``checkpoint`` when it is set."""
        params = dict(self.params)
        if self.checkpoint is not None:
            params["checkpoint"] = self.checkpoint
        return params


@attrs.frozen
class FilterSpec:
    """One ``[[filters]]`` entry; the chain runs them in file order, a sample must pass all."""

    name: str = _field(types=(str,), doc="filter plugin name")
    params: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict, doc="factory parameters")
    min_score: float | None = _field(None, types=(float, int),
                                     doc="also reject samples whose score is below this (0..1)")


@attrs.frozen
class MixSpec:
    """``[mix]``: how synthetic samples enter training."""

    synthetic_share: float = _field(0.0, types=(float, int),
                                    doc="fraction of each epoch's items (bank) or each batch's items (live) "
                                        "replaced by synthetic ECGs (0 <= s < 1)")
    mode: str = _field("bank", types=(str,),
                       doc="'bank': AugmentedDataset over the run's bank; 'live': LiveAugmentedLoader making "
                           "fresh candidates per batch with the recipe's generator and filters")


@attrs.frozen
class GenerationSpec:
    """``[generation]``: what to ask the generator for."""

    kind: str = _field("transfer", types=(str,),
                       doc="'transfer' (source ECG -> target class), 'sample' (label -> ECG) or 'complete' "
                           "(known part of an ECG -> whole ECG)")
    directions: tuple[str, ...] = _field((), types=(list,), converter=tuple,
                                         doc="transfer directions 'SRC->DST' by class name, e.g. 'N->A'; 'N->N' re-makes a "
                                             "class's ECGs within it (with both, each synthetic class has sources of "
                                             "every class, so a classifier cannot learn the source class)")
    labels: tuple[str, ...] = _field((), types=(list,), converter=tuple,
                                     doc="class names to sample (kind = 'sample')")
    count: int | None = _field(None, types=(int,),
                               doc="accepted samples wanted per direction / label (default: one per source)")
    attempts_per_source: int = _field(1, types=(int,),
                                      doc="tries per source (transfer) or per wanted sample (sample)")
    batch_size: int = _field(64, types=(int,), doc="candidates per generator call")
    options: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict,
                                     doc="per-request generator options (e.g. strength, guidance)")
    mask: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict,
                                  doc="kind = 'complete': which part is unknown, e.g. { task = 'forecast', horizon_s = 2.0 }")


@attrs.frozen
class EvaluatorSpec:
    """One ``[[evaluators]]`` entry."""

    name: str = _field(types=(str,), doc="evaluator plugin name")
    params: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict, doc="factory parameters")
    max_samples: int | None = _field(None, types=(int,),
                                     doc="evaluate on at most this many real and synthetic ECGs (seeded subset)")


@attrs.frozen
class ExternalSpec:
    """One ``[[evaluation.external]]`` entry: real ECGs from another database, for testing only."""

    name: str = _field(types=(str,), doc="name of the set in results and reports (letters, digits, . _ -)")
    source: str = _field(types=(str,), doc="source plugin name (e.g. 'wfdb-rhythm')")
    params: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict, doc="source parameters")
    preprocessing: dict[str, Any] = _field({}, types=(dict,), converter=_frozen_dict,
                                           doc="overrides of the run's [data.preprocessing] (not fs, window_s, "
                                               "leads or normalise: the set must come out like the run's data)")
    one_class: str | None = _field(None, types=(str,),
                                   doc="class (from data.classes) of every ECG of a one-class database")
    max_windows_per_record: int | None = _field(None, types=(int,),
                                                doc="at most this many windows per record and class (seeded draw)")


def _externals(v: Any) -> tuple[ExternalSpec, ...]:
    return tuple(v or ())


@attrs.frozen
class EvaluationSpec:
    """``[evaluation]``: settings of the evaluation stage as a whole."""

    external: tuple[ExternalSpec, ...] = _field((), types=(list,), converter=_externals,
                                                doc="external test sets, each an [[evaluation.external]] table",
                                                table=ExternalSpec)


@attrs.frozen
class ReportSpec:
    """``[report]``: what the run writes at the end."""

    title: str = _field("", types=(str,), doc="report title (default: run name)")
    html: bool = _field(True, types=(bool,), doc="render the HTML report when augframe.report provides it")


@attrs.frozen
class Recipe:
    """A whole run, as declared in a recipe file."""

    data: DataSpec
    generator: GeneratorSpec
    run: RunSpec = attrs.field(factory=RunSpec)
    plugins: PluginsSpec = attrs.field(factory=PluginsSpec)
    filters: tuple[FilterSpec, ...] = ()
    mix: MixSpec = attrs.field(factory=MixSpec)
    generation: GenerationSpec = attrs.field(factory=GenerationSpec)
    evaluators: tuple[EvaluatorSpec, ...] = ()
    evaluation: EvaluationSpec = attrs.field(factory=EvaluationSpec)
    report: ReportSpec = attrs.field(factory=ReportSpec)
    path: str | None = attrs.field(default=None, eq=False)

    @property
    def output_dir(self) -> Path:
        """The run's output folder ('{name}' expanded; relative paths are relative to the cwd)."""
        return Path(self.run.output_dir.replace("{name}", self.run.name))

    def to_dict(self) -> dict[str, Any]:
        d = _plain(attrs.asdict(self, recurse=True))
        d.pop("path")
        return d

    def to_toml(self) -> str:
        """The fully resolved recipe (every default filled in) as TOML text."""
        return _to_toml(self.to_dict())

    def evolve_run(self, **changes: Any) -> Recipe:
        """The recipe with ``[run]`` keys overridden (as the CLI's --seed / --device / --output-dir do),
        checked exactly like the file (an override cannot pass what the file could not)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        recipe = attrs.evolve(self, run=_build(RunSpec, {**attrs.asdict(self.run), **changes}, "run"))
        _check_semantics(recipe)
        return recipe


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------
_TABLES: dict[str, tuple[type, bool]] = {  # key -> (class, is array of tables)
    "run": (RunSpec, False),
    "plugins": (PluginsSpec, False),
    "data": (DataSpec, False),
    "generator": (GeneratorSpec, False),
    "filters": (FilterSpec, True),
    "mix": (MixSpec, False),
    "generation": (GenerationSpec, False),
    "evaluators": (EvaluatorSpec, True),
    "evaluation": (EvaluationSpec, False),
    "report": (ReportSpec, False),
}
_REQUIRED = ("data", "generator")


def load(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; relative input paths resolve against its folder (augframe.paths)."""
    p = Path(path)
    if p.is_dir():
        raise RecipeError(f"recipe {str(p)!r} is a folder; give the path of a .toml recipe file")
    if not p.is_file():
        what = "does not exist" if not p.exists() else "is not a regular file"
        raise RecipeError(f"recipe file {str(p)!r} {what}; give the path of a .toml recipe")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {str(p)!r} is not UTF-8 text ({exc}); save it as UTF-8") from exc
    from augframe import paths

    return attrs.evolve(paths.anchor(_parse_text(text, f"recipe {str(p)!r}"), p.parent), path=str(p))


def loads(text: str) -> Recipe:
    """Validate a recipe given as TOML text."""
    return _parse_text(text, "recipe text")


def _parse_text(text: str, what: str) -> Recipe:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{what} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise RecipeError(f"{what} nests arrays or tables too deeply to be a recipe") from exc
    return parse(raw)


def parse(raw: Mapping[str, Any]) -> Recipe:
    """Validate a recipe already read into a dict (tables, arrays of tables, values)."""
    for key in raw:
        if key not in _TABLES:
            raise RecipeError(f"unknown recipe table {key!r}{suggest(key, _TABLES)}")
    for key in _REQUIRED:
        if key not in raw:
            raise RecipeError(f"the recipe has no [{key}] table; it is required")
    built: dict[str, Any] = {}
    for key, (cls, many) in _TABLES.items():
        if key not in raw:
            continue
        value = raw[key]
        if many:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise RecipeError(f"{key!r} must be an array of tables: write each entry as [[{key}]]")
            built[key] = tuple(_build(cls, v, f"{key}[{i}]") for i, v in enumerate(value))
        else:
            if not isinstance(value, dict):
                raise RecipeError(f"{key!r} must be a table: write it as [{key}]")
            built[key] = _build(cls, value, key)
    recipe = Recipe(**built)
    _check_semantics(recipe)
    return recipe


def _build(cls: type, table: Mapping[str, Any], path: str) -> Any:
    fields = {f.name: f for f in attrs.fields(cls)}
    for key, value in table.items():
        if key not in fields:
            raise RecipeError(f"unknown key {path}.{key}{suggest(key, fields)}")
        types = fields[key].metadata["types"]
        if value is None:
            continue
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and fields[key].metadata.get("table") is not None:
            raise RecipeError(f"{path}.{key} must be an array of tables: write each entry as [[{path}.{key}]]")
        if not ok:
            want = " or ".join(_TOML_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise RecipeError(
                f"{path}.{key} = {_toml_value(value)} has the wrong type ({_toml_type(value)}); expected {want}"
            )
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in table]
    if missing:
        raise RecipeError(f"{path} is missing the required key {path}.{missing[0]}")
    table = dict(table)
    for key, value in table.items():
        entry_cls = fields[key].metadata.get("table")
        if entry_cls is not None and value is not None:
            if not all(isinstance(v, dict) for v in value):
                raise RecipeError(f"{path}.{key} must be an array of tables: write each entry as [[{path}.{key}]]")
            table[key] = tuple(_build(entry_cls, v, f"{path}.{key}[{i}]") for i, v in enumerate(value))
    return cls(**table)


_TOML_TYPE_NAMES = {str: "a string", int: "an integer", float: "a float", bool: "a boolean (true/false)",
                    list: "an array", dict: "a table"}


def _toml_type(value: Any) -> str:
    for t in (bool, int, float, str, list, dict):
        if isinstance(value, t):
            return _TOML_TYPE_NAMES[t]
    return type(value).__name__  # pragma: no cover


def _check_semantics(r: Recipe) -> None:
    """Value checks that types alone cannot express."""
    if not 0.0 <= r.mix.synthetic_share < 1.0:
        raise RecipeError(f"mix.synthetic_share = {r.mix.synthetic_share} must be in [0, 1), e.g. 0.33")
    g = r.generation
    _check_mix(r.mix, g)
    if g.kind not in GENERATION_KINDS:
        raise RecipeError(f"generation.kind = {g.kind!r} is not one of {GENERATION_KINDS}{suggest(g.kind, GENERATION_KINDS)}")
    if g.kind == "transfer":
        if not g.directions:
            raise RecipeError("generation.directions is empty; for kind = 'transfer' give e.g. [\"N->A\", \"A->N\"]")
        for i, d in enumerate(g.directions):
            if not isinstance(d, str) or d.count("->") != 1 or not all(s.strip() for s in d.split("->")):
                raise RecipeError(f"generation.directions[{i}] = {d!r} must read 'SOURCE->TARGET', e.g. 'N->A'")
        tags = [parse_direction(d) for d in g.directions]
        if len(set(tags)) != len(tags):
            raise RecipeError(f"generation.directions {list(g.directions)} names a direction twice")
        if g.labels:
            raise RecipeError("generation.labels is for kind = 'sample'; use generation.directions for 'transfer'")
    elif g.kind == "sample":
        if not g.labels:
            raise RecipeError("generation.labels is empty; for kind = 'sample' give the class names to generate")
        if g.count is None:
            raise RecipeError("generation.count is required for kind = 'sample' (samples wanted per label)")
        if g.directions:
            raise RecipeError("generation.directions is for kind = 'transfer'; use generation.labels for 'sample'")
    else:
        if g.directions:
            raise RecipeError("generation.directions is for kind = 'transfer'; for 'complete' give generation.mask "
                              "(and optionally generation.labels: the classes whose windows to complete)")
        _check_mask(g.mask)
    if g.kind != "complete" and g.mask:
        raise RecipeError(f"generation.mask is for kind = 'complete', not {g.kind!r}")
    for key, value in (("generation.count", g.count), ("generation.attempts_per_source", g.attempts_per_source),
                       ("generation.batch_size", g.batch_size)):
        if value is not None and value < 1:
            raise RecipeError(f"{key} = {value} must be at least 1")
    _check_generation_size(g)
    for i, f in enumerate(r.filters):
        if f.min_score is not None and not 0.0 <= f.min_score <= 1.0:
            raise RecipeError(f"filters[{i}].min_score = {f.min_score} must be in [0, 1]")
    for i, e in enumerate(r.evaluators):
        if e.max_samples is not None and e.max_samples < 1:
            raise RecipeError(f"evaluators[{i}].max_samples = {e.max_samples} must be at least 1")
    _check_external(r)
    dev = r.run.device
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", dev):
        raise RecipeError(f"run.device = {dev!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not 0 <= r.run.seed < 2**32:
        raise RecipeError(f"run.seed = {r.run.seed} must be in 0..2**32-1 (seeds are unsigned 32-bit)")
    if not _NAME_RE.fullmatch(r.run.name) or not r.run.name.strip("."):
        raise RecipeError(f"run.name = {r.run.name!r} may only hold letters, digits, '.', '_' and '-' "
                          "(and not only dots)")
    _check_output_dir(r.run.output_dir, r.output_dir)
    _check_data_tables(r.data)


MIX_MODES = ("bank", "live")


def _check_mix(mix: MixSpec, g: GenerationSpec) -> None:
    """[mix] mode = 'live' serves transfer or sample requests, one target per source class."""
    if mix.mode not in MIX_MODES:
        raise RecipeError(f"mix.mode = {mix.mode!r} is not one of {MIX_MODES}{suggest(mix.mode, MIX_MODES)}")
    if mix.mode != "live":
        return
    if g.kind not in ("transfer", "sample"):
        raise RecipeError(f"mix.mode = 'live' makes transfer or sample candidates per batch, not generation.kind = "
                          f"{g.kind!r}; use mode = 'bank'")
    sources = [parse_direction(d)[0] for d in g.directions] if g.kind == "transfer" else []
    twice = sorted({c for c in sources if sources.count(c) > 1})
    if twice:
        raise RecipeError(f"mix.mode = 'live' needs one target per source class, but generation.directions "
                          f"{list(g.directions)} transfer {twice[0]!r} to more than one class")


def _check_output_dir(raw: str, path: Path) -> None:
    """A usable folder name: not empty, no NUL or line break, no component longer than 255 bytes."""
    if not raw.strip():
        raise RecipeError("run.output_dir is empty; give a folder, e.g. \"runs/{name}\"")
    if any(c in str(path) for c in "\0\n\r"):
        raise RecipeError(f"run.output_dir = {str(path)!r} holds a NUL or line-break character")
    long = [part for part in path.parts if len(part.encode("utf-8", "surrogateescape")) > 255]
    if long:
        raise RecipeError(f"run.output_dir has a folder name of {len(long[0])} characters; the limit is 255 bytes")


def _check_data_tables(data: DataSpec) -> None:
    """data.preprocessing and data.split through the data layer's own parsers (the same code run uses)."""
    from augframe.data.prepare import check_data_tables

    try:
        check_data_tables(data.preprocessing, data.split)
    except RecipeError:
        raise
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"data.preprocessing / data.split: {exc}") from exc


#: [data.preprocessing] keys an external set takes from the run as they are, so it comes out like the run's data.
EXTERNAL_FIXED = ("fs", "window_s", "leads", "normalise")


def _check_external(r: Recipe) -> None:
    seen: set[str] = set()
    for i, x in enumerate(r.evaluation.external):
        key = f"evaluation.external[{i}]"
        if not _NAME_RE.match(x.name):
            raise RecipeError(f"{key}.name = {x.name!r} may only hold letters, digits, '.', '_' and '-'")
        if x.name in seen:
            raise RecipeError(f"{key}.name = {x.name!r} is used twice; give each external set its own name")
        seen.add(x.name)
        if x.one_class is not None:
            if not r.data.classes:
                raise RecipeError(f"{key}.one_class = {x.one_class!r} needs data.classes to name the run's "
                                  "classes, e.g. classes = [\"N\", \"A\"]")
            if x.one_class not in r.data.classes:
                raise RecipeError(f"{key}.one_class = {x.one_class!r} is not one of data.classes "
                                  f"{list(r.data.classes)}{suggest(x.one_class, r.data.classes)}")
        if x.max_windows_per_record is not None and x.max_windows_per_record < 1:
            raise RecipeError(f"{key}.max_windows_per_record = {x.max_windows_per_record} must be at least 1")
        for fixed in EXTERNAL_FIXED:
            if fixed in x.preprocessing:
                hint = "; choose the external signal with params.channel" if fixed == "leads" else ""
                raise RecipeError(f"{key}.preprocessing.{fixed} cannot be overridden: an external set is read with "
                                  f"the run's {fixed}{hint}")


MAX_ATTEMPTS_PER_SOURCE = 100
MAX_CANDIDATES_PER_TARGET = 1_000_000


def _check_generation_size(g: GenerationSpec) -> None:
    """The generation plan is made up front (one seeded work item per attempt), so its size is bounded
    here: a typo such as 2**32 attempts would otherwise exhaust memory before the first candidate."""
    if g.attempts_per_source > MAX_ATTEMPTS_PER_SOURCE:
        raise RecipeError(f"generation.attempts_per_source = {g.attempts_per_source} is over "
                          f"{MAX_ATTEMPTS_PER_SOURCE}; a source that fails that often is a generator or filter "
                          f"problem: check the run's per-filter acceptance")
    if g.count is not None and g.count * g.attempts_per_source > MAX_CANDIDATES_PER_TARGET:
        raise RecipeError(f"generation.count x attempts_per_source = {g.count * g.attempts_per_source} candidates "
                          f"per target is over {MAX_CANDIDATES_PER_TARGET:,}; split the run into several recipes "
                          f"(output_dir per part)")


def _check_mask(mask: Mapping[str, Any]) -> None:
    task = mask.get("task")
    if task not in MASK_TASKS:
        raise RecipeError(f"generation.mask.task = {task!r}; use one of {tuple(MASK_TASKS)}"
                          f"{suggest(str(task), MASK_TASKS) if task else ''}, e.g. mask = {{ task = 'forecast', horizon_s = 2.0 }}")
    keys = MASK_TASKS[task]
    for key in mask:
        if key != "task" and key not in keys:
            raise RecipeError(f"unknown key generation.mask.{key} for task {task!r}{suggest(key, keys)}")
    for key in keys:
        if key not in mask:
            raise RecipeError(f"generation.mask.{key} is required for task {task!r}")
    if task == "leads":
        if not isinstance(mask["missing"], list) or not mask["missing"]:
            raise RecipeError("generation.mask.missing must be a non-empty array of lead names, e.g. [\"V1\", \"V2\"]")
        return
    for key in keys:
        value = mask[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise RecipeError(f"generation.mask.{key} = {value!r} must be a positive, finite number")
    if "fraction" in mask and not mask["fraction"] < 1:
        raise RecipeError(f"generation.mask.fraction = {mask['fraction']} must be below 1")


def _plain(v: Any) -> Any:
    """Tuples -> lists, recursively: the recipe as TOML-shaped data."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def parse_direction(direction: str) -> tuple[str, str]:
    """'N->A' -> ('N', 'A')."""
    src, dst = (s.strip() for s in direction.split("->"))
    return src, dst


# --------------------------------------------------------------------------------------------
# plugin names and parameters, against a registry
# --------------------------------------------------------------------------------------------
def check_plugins(recipe: Recipe, registry: Any) -> None:
    """Check every plugin name and parameter in the recipe against ``registry``.

    Errors name the recipe key (e.g. ``filters[1].name`` or ``generator.params.stength``) and
    suggest the nearest valid name; plugins that failed to load are listed with their errors.
    """
    from augframe.plugins import check_params
    from augframe.protocols import KINDS

    entries: list[tuple[str, str, str, Mapping[str, Any]]] = [
        ("source", "data.source", recipe.data.source, recipe.data.params),
    ]
    entries.append(("generator", "generator.name", recipe.generator.name, recipe.generator.factory_params()))
    entries += [("filter", f"filters[{i}].name", f.name, f.params) for i, f in enumerate(recipe.filters)]
    entries += [("evaluator", f"evaluators[{i}].name", e.name, e.params) for i, e in enumerate(recipe.evaluators)]
    entries += [("source", f"evaluation.external[{i}].source", x.source, x.params)
                for i, x in enumerate(recipe.evaluation.external)]
    for kind, key, name, params in entries:
        try:
            prov = registry.get(kind, name)
        except PluginError as exc:
            raise RecipeError(f"{key} = {name!r}: {exc}") from exc
        try:
            check_params(prov, params, supplied=KINDS[kind].run_context, registry=registry)
        except PluginError as exc:
            where = key.rsplit(".", 1)[0]
            m = re.search(r"no parameter '([^']+)'", str(exc))
            bad = m.group(1) if m else None
            path = f"{where}.params.{bad}" if bad else f"{where}.params"
            if recipe.generator.checkpoint is not None and bad == "checkpoint" and kind == "generator":
                path = "generator.checkpoint"
            raise RecipeError(f"{path}: {exc}") from exc
    if recipe.evaluation.external:
        from augframe.data.external import external_config

        for i, x in enumerate(recipe.evaluation.external):
            external_config({}, x.preprocessing, where=f"evaluation.external[{i}].preprocessing")


# --------------------------------------------------------------------------------------------
# printing the resolved recipe
# --------------------------------------------------------------------------------------------
def _to_toml(d: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for key, (_cls, many) in _TABLES.items():
        if key not in d:
            continue
        entries = d[key] if many else [d[key]]
        for entry in entries:
            lines.append(f"[[{key}]]" if many else f"[{key}]")
            nested = _table_lines(entry, lines)
            lines.append("")
            for k, items in nested:
                for item in items:
                    lines.append(f"[[{key}.{k}]]")
                    _table_lines(item, lines)
                    lines.append("")
    return "\n".join(lines)


def _table_lines(entry: Mapping[str, Any], lines: list[str]) -> list[tuple[str, list[Any]]]:
    """Append one table's keys (inline tables last); return its non-empty nested arrays of tables."""
    subtables, nested = [], []
    for k, v in entry.items():
        if v is None:
            lines.append(f"# {k} = (not set)")
        elif isinstance(v, dict):
            subtables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            nested.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in subtables:
        lines.append(f"{k} = {_toml_value(v)}")
    return nested


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise RecipeError(f"cannot write {v!r} as TOML")  # pragma: no cover


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_\-]+", k) else json.dumps(k)


__all__: Sequence[str] = (
    "Recipe", "RunSpec", "PluginsSpec", "DataSpec", "GeneratorSpec", "FilterSpec", "MixSpec", "GenerationSpec",
    "EvaluatorSpec", "ExternalSpec", "EvaluationSpec", "ReportSpec", "load", "loads", "parse", "check_plugins",
    "parse_direction",
)
