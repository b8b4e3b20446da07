"""Where a path named in a recipe or a plugin parameter points.

Two rules, one resolver for the core and every plugin:

* ``pretrained:NAME`` names weights shipped inside an installed package: the file
  ``<package>/pretrained/NAME.safetensors`` of the core or of any package registered in the ``augframe``
  entry-point group, found with :mod:`importlib.resources` (so it works from a wheel, from any folder).
* A relative path in a recipe is relative to the recipe's folder, not to the current directory; the
  recipe loader anchors it (:func:`anchor`) and :func:`problems` names every input that is missing,
  with what it was resolved against. ``run.output_dir`` is an output and stays relative to the
  current directory.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from augframe.errors import CheckpointError, RecipeError

__all__ = ["PRETRAINED", "PATH_KEYS", "PathUse", "shipped_weights", "resolve", "uses", "anchor", "problems",
           "check_recipe_file"]

PRETRAINED = "pretrained:"
# Parameter keys whose string values name files or folders (at any depth of a params table).
PATH_KEYS = ("checkpoint", "root", "file", "path")
WEIGHTS_SUFFIX = ".safetensors"


def _packages() -> list[str]:
    """The core and the top-level packages of the registered plugins, in a stable order."""
    names = {"augframe"}
    for ep in importlib.metadata.entry_points(group="augframe"):
        names.add(ep.value.split(":")[0].split(".")[0])
    return sorted(names)


def shipped_weights() -> dict[str, Path]:
    """``{NAME: file}`` of every ``pretrained/NAME.safetensors`` shipped by the core or a plugin."""
    found: dict[str, Path] = {}
    for package in _packages():
        try:
            folder = importlib.resources.files(package) / "pretrained"
        except (ModuleNotFoundError, TypeError):
            continue
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.endswith(WEIGHTS_SUFFIX):
                name = entry.name[: -len(WEIGHTS_SUFFIX)]
                if name in found:
                    raise CheckpointError(f"pretrained:{name} is shipped twice ({found[name]} and {entry}); "
                                          "rename one of the files")
                found[name] = Path(str(entry))
    return found


def resolve(value: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    """The file a parameter names: ``pretrained:NAME``, an absolute path, or a path relative to
    ``base`` (the current directory when None). Existence is the caller's check."""
    text = os.fspath(value)
    if text.startswith(PRETRAINED):
        name = text[len(PRETRAINED):]
        shipped = shipped_weights()
        if name not in shipped:
            raise CheckpointError(f"{text!r} is not shipped by any installed augframe package; shipped: "
                                  f"{', '.join(PRETRAINED + n for n in sorted(shipped)) or 'none'}")
        return shipped[name]
    path = Path(text).expanduser()
    if path.is_absolute() or base is None:
        return path
    return Path(base) / path


@attrs.frozen
class PathUse:
    """One path in a recipe: where it sits, what was written, what it resolves to."""

    where: str
    given: str
    must_exist: bool

    def describe(self, base: Path) -> str:
        if self.given.startswith(PRETRAINED):
            return f"{self.where} = {self.given!r}"
        return f"{self.where} = {self.given!r} (resolved against the recipe's folder {base})"


def _walk(table: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _walk(value, f"{where}.{key}")
        elif key in PATH_KEYS and isinstance(value, str):
            yield f"{where}.{key}", value


def _tables(recipe: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield "data.params", recipe.data.params
    yield "generator.params", recipe.generator.params
    for kind in ("filters", "evaluators"):
        for i, spec in enumerate(getattr(recipe, kind)):
            yield f"{kind}[{i}].params", spec.params
    for i, spec in enumerate(recipe.evaluation.external):
        yield f"evaluation.external[{i}].params", spec.params


def uses(recipe: Any) -> list[PathUse]:
    """Every input path a recipe names (``data.split.file`` is created when absent)."""
    out = [PathUse(w, v, True) for where, table in _tables(recipe) for w, v in _walk(table, where)]
    if recipe.generator.checkpoint is not None:
        out.append(PathUse("generator.checkpoint", recipe.generator.checkpoint, True))
    if isinstance(recipe.data.split.get("file"), str):
        out.append(PathUse("data.split.file", recipe.data.split["file"], False))
    return out


def _anchored(value: Any, key: str, base: Path) -> Any:
    if isinstance(value, Mapping):
        return {k: _anchored(v, k, base) for k, v in value.items()}
    if key in PATH_KEYS and isinstance(value, str) and not value.startswith(PRETRAINED):
        return str(resolve(value, base))
    return value


def anchor(recipe: Any, base: str | os.PathLike[str]) -> Any:
    """The recipe with every relative input path made absolute against ``base`` (its folder)."""
    base = Path(base).resolve()
    fix = lambda table: _anchored(dict(table), "", base)  # noqa: E731
    gen = attrs.evolve(recipe.generator, params=fix(recipe.generator.params))
    if gen.checkpoint is not None and not gen.checkpoint.startswith(PRETRAINED):
        gen = attrs.evolve(gen, checkpoint=str(resolve(gen.checkpoint, base)))
    data = attrs.evolve(recipe.data, params=fix(recipe.data.params), split=fix(recipe.data.split))
    evaluation = attrs.evolve(recipe.evaluation, external=tuple(
        attrs.evolve(x, params=fix(x.params)) for x in recipe.evaluation.external))
    return attrs.evolve(
        recipe, data=data, generator=gen, evaluation=evaluation,
        filters=tuple(attrs.evolve(f, params=fix(f.params)) for f in recipe.filters),
        evaluators=tuple(attrs.evolve(e, params=fix(e.params)) for e in recipe.evaluators),
    )


def problems(recipe: Any, base: str | os.PathLike[str]) -> list[str]:
    """One line per input path of an (un-anchored) recipe that cannot be found."""
    base = Path(base).resolve()
    out = []
    for use in uses(recipe):
        try:
            path = resolve(use.given, base)
        except CheckpointError as exc:
            out.append(f"{use.where}: {exc}")
            continue
        if use.must_exist and not path.exists():
            out.append(f"{use.describe(base)}: {path} does not exist")
        elif not use.must_exist and not path.parent.is_dir():
            out.append(f"{use.describe(base)}: folder {path.parent} does not exist")
    return out


def check_recipe_file(path: str | os.PathLike[str]) -> None:
    """Raise a RecipeError naming every missing input path of the recipe file ``path``."""
    from augframe import recipe as recipe_mod

    path = Path(path)
    recipe_mod.load(path)  # the file exists and is valid
    bad = problems(recipe_mod.loads(path.read_text(encoding="utf-8")), path.parent)
    if bad:
        raise RecipeError(f"recipe {str(path)!r} names {len(bad)} missing path(s):\n  " + "\n  ".join(bad))
