"""A recipe's ``[mix]`` made concrete: from a recipe (or a finished run's folder) to training data.

:func:`training_data` is the one call between a run and a plain PyTorch training loop. With
``[mix] mode = "bank"`` (the default) it returns an :class:`~augframe.dataset.AugmentedDataset`
over the run's bank at ``synthetic_share``; with ``mode = "live"`` a
:class:`~augframe.live.LiveAugmentedLoader` that makes fresh candidates per batch with the
recipe's generator and filters. Either way, synthetic ECGs made from the sources of the test split
never enter training: a bank sample is left out when its source window, or the record or patient
that window came from, is in the test split.

:func:`load_run_data` returns the train / test windows the run's bank was made against (the
recipe's source, preprocessing, split and normaliser), as ``(signal, label)`` datasets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.bank import Bank
from augframe.data.prepare import RunData
from augframe.dataset import AugmentedDataset
from augframe.errors import BankError, RecipeError, ValidationError
from augframe.live import LiveAugmentedLoader, LiveAugmenter
from augframe.recipe import Recipe, parse_direction
from augframe.signals import ECGBatch
from augframe.windows import ArrayWindows, as_windows

#: A recipe object, the path of a recipe file, or the folder ``augframe run`` wrote (holding recipe.toml).
RunLike = Recipe | str | os.PathLike


def load_run_data(run: RunLike, *, registry: Any = None) -> RunData:
    """The run's training and test windows (``train, test = load_run_data(run)``; test is None without a split).

    The data stage of :func:`augframe.pipeline.run`, as the run did it: the same source, preprocessing,
    patient-wise split and normaliser fitted on the training split (the window cache makes it cheap).
    """
    recipe, _ = _resolve(run)
    return _run_data(recipe, _registry(recipe, registry))


def training_data(run: RunLike, base: Any, *, test: Any = None, seed: int | None = None, registry: Any = None,
                  device: str | None = None, keys: tuple[str, str] = ("x", "y")) -> AugmentedDataset | LiveAugmentedLoader:
    """The training data the run's recipe declares, made from ``base``.

    Args:
        run: a :class:`~augframe.recipe.Recipe`, a recipe file, or a finished run's folder.
        base: ``mode = "bank"``: the training dataset (``(signal, label)`` items with ``labels``, e.g.
            the ``train`` of :func:`load_run_data`); ``mode = "live"``: a DataLoader of ``(x, y)`` or
            dict batches over it.
        test: the test split whose sources must not enter training: a dataset or ECGBatch (its ids
            and, where it has them, record and patient ids) or an iterable of window, record or
            patient ids. None: the run's own test split.
        seed: the mix seed (default ``run.seed``).
        registry: the plugin registry (default: discovered with the recipe's ``[plugins]``).
        device: live mode: where the generator runs (default ``run.device``).
        keys: live mode: the signal and label keys of dict batches.

    Live candidates are made from the items of the batch itself, so ``test`` plays no part there:
    keep test items out of the loader you pass.

    Returns:
        ``AugmentedDataset`` (items ``(signal, label, synthetic)``; call ``set_epoch`` each epoch) or
        ``LiveAugmentedLoader`` (batches ``(x, y, synthetic)``).
    """
    recipe, folder = _resolve(run)
    registry = _registry(recipe, registry)
    seed = recipe.run.seed if seed is None else int(seed)
    data = _run_data(recipe, registry)
    if recipe.mix.mode == "live":
        return _live(recipe, folder, registry, data, base, seed, device, keys)
    if not hasattr(base, "__getitem__"):
        raise ValidationError(f"[mix] mode = 'bank' wraps a dataset, not a {type(base).__name__}: pass the training "
                              "dataset and put the result in a DataLoader")
    bank = _open_bank(recipe, folder, data)
    excluded = excluded_sources(bank, data.train, data.test if test is None else test)
    return AugmentedDataset(base, bank, recipe.mix.synthetic_share, seed, exclude_sources=excluded)


def excluded_sources(bank: Bank, train: Any, test: Any) -> set[str]:
    """Source ids of ``bank`` whose window, record or patient is in ``test`` (see :func:`training_data`).

    A source's record and patient are those of its window in ``train``, the split the bank was made from.
    """
    if test is None:
        return set()
    t_ids, t_records, t_patients = _test_lineage(test)
    ids, records, patients = _lineage(as_windows(train))
    record_of = dict(zip(ids, records)) if records is not None else {}
    patient_of = dict(zip(ids, patients)) if patients is not None else {}
    sources = {r.get("source_id") for r in bank.rows()} - {None}
    return {str(s) for s in sources
            if str(s) in t_ids or record_of.get(str(s)) in t_records or patient_of.get(str(s)) in t_patients}


# --------------------------------------------------------------------------------------------
def _resolve(run: RunLike) -> tuple[Recipe, Path]:
    """(recipe, run folder) of a Recipe, a recipe file, or a run folder."""
    from augframe import recipe as recipes

    if isinstance(run, Recipe):
        return run, run.output_dir
    if not isinstance(run, (str, os.PathLike)):
        raise ValidationError(f"run is a {type(run).__name__}; give a Recipe, a recipe file or a run folder")
    path = Path(run)
    if path.is_dir():
        if not (path / "recipe.toml").is_file():
            raise RecipeError(f"{str(path)!r} is not a run folder (no recipe.toml in it); give a recipe file or the "
                              "folder `augframe run` wrote")
        return recipes.load(path / "recipe.toml"), path
    loaded = recipes.load(path)
    return loaded, loaded.output_dir


def _registry(recipe: Recipe, registry: Any) -> Any:
    from augframe.plugins import Registry
    from augframe.recipe import check_plugins

    registry = registry if registry is not None else Registry.discover(recipe.plugins.allow, recipe.plugins.block)
    check_plugins(recipe, registry)
    return registry


def _run_data(recipe: Recipe, registry: Any) -> RunData:
    from augframe.pipeline import load_data

    data = load_data(recipe, registry)
    return attrs.evolve(data, train=as_windows(data.train),
                        test=None if data.test is None else as_windows(data.test))


def _open_bank(recipe: Recipe, folder: Path, data: RunData) -> Bank:
    """The run's bank, checked to come from this recipe's generation plan on this data."""
    from augframe.pipeline import generation_plan

    path = folder / "bank"
    if not (path / "bank.json").is_file():
        raise BankError(f"run folder {str(folder)!r} has no bank yet: run the recipe first "
                        f"(augframe run {recipe.path or 'RECIPE'})")
    bank = Bank.open(path)
    bank.check_plan(generation_plan(recipe, data.fingerprint))
    return bank


def _live(recipe: Recipe, folder: Path, registry: Any, data: RunData, loader: Any, seed: int,
          device: str | None, keys: tuple[str, str]) -> LiveAugmentedLoader:
    """The recipe's generator (fitted as the run fits it) and filter chain around ``loader``."""
    from augframe.pipeline import make_filter_chain, make_generator
    from augframe.training import resolve_device

    if hasattr(loader, "__getitem__") or not hasattr(loader, "__iter__"):
        raise ValidationError(f"[mix] mode = 'live' augments batches, not a {type(loader).__name__}: pass a "
                              "DataLoader, e.g. DataLoader(train, batch_size=64, shuffle=True)")
    device = resolve_device(device or recipe.run.device)
    generator = make_generator(recipe, registry, device)
    if recipe.generator.fit:  # a generator that keeps its fit in the run's workdir resumes from it
        generator.fit(data.train, seed=recipe.run.seed, workdir=folder / "generator")
    g, train = recipe.generation, data.train
    targets = dict(parse_direction(d) for d in g.directions) if g.kind == "transfer" else None
    augmenter = LiveAugmenter(generator, make_filter_chain(recipe, registry, device, train, data.all_windows),
                              recipe.mix.synthetic_share, seed, fs=train.fs, leads=train.leads,
                              class_names=train.class_names, mode=g.kind, targets=targets, device=device,
                              options=g.options)
    return LiveAugmentedLoader(loader, augmenter, keys=keys)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _lineage(data: Any) -> tuple[list[str], list[str] | None, list[str] | None]:
    """(window ids, record ids or None, patient ids or None) of a window dataset."""
    ids = getattr(data, "ids", None)
    if ids is None:
        raise ValidationError(f"the {type(data).__name__} has no ids, so its sources cannot be traced; give a "
                              "dataset with ids (e.g. from load_run_data) or an iterable of ids")
    meta = _first(getattr(getattr(data, "batch", None), "meta", None), getattr(data, "meta", None)) or {}
    records = _first(getattr(data, "record_ids", None), meta.get("record"))
    patients = _first(getattr(data, "patient_ids", None), meta.get("patient_id"), meta.get("patient"))

    def text(v: Any) -> list[str] | None:
        return None if v is None else [str(x) for x in np.asarray(v).tolist()]

    return [str(i) for i in ids], text(records), text(patients)


def _test_lineage(test: Any) -> tuple[set[str], set[str], set[str]]:
    """(window ids, records, patients) of a test split; a plain id matches a window, record or patient."""
    if isinstance(test, ECGBatch):
        test = ArrayWindows(test)
    if hasattr(test, "__getitem__") and hasattr(test, "__len__") and not isinstance(test, (str, list, tuple, np.ndarray)):
        ids, records, patients = _lineage(test)
        return set(ids), set(records or ()), set(patients or ())
    if isinstance(test, str) or not isinstance(test, Iterable):
        raise ValidationError(f"test is a {type(test).__name__}; give the test dataset or an iterable of its ids")
    given = {str(t) for t in test}
    return given, given, given
