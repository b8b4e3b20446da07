"""The plugin contract: hooks a plugin module implements to register what it provides.

A plugin is any importable module listed in the ``augframe`` entry-point group (or registered by
hand). It implements one or more of the hooks below with ``@augframe.hookimpl``; each hook gets a
``register`` callback::

    @augframe.hookimpl
    def augframe_register_filters(register):
        register("my-filter", MyFilter, description="rejects flat lines")

``register(name, factory, description="")`` (:class:`Register`) records a factory: a callable that
takes the parameters a recipe gives (as keyword arguments) and returns an object satisfying the
protocol of its kind in :mod:`augframe.protocols` (the table ``augframe.protocols.KINDS``). The core builds instances on demand; runtime work (fit,
generate, score, evaluate, records) is plain method calls on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT = "augframe"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

class Register(Protocol):
    """The callback every register hook gets: records one factory of the hook's kind.

    ``name`` is what recipes call it by (unique per kind across all plugins); ``factory`` takes the
    recipe's parameters as keyword arguments (``augframe.plugins.lazy("pkg.module.attr")`` defers
    the import); ``description`` is the one line ``augframe plugins`` shows.
    """

    def __call__(self, name: str, factory: Callable[..., Any], description: str = "") -> None: ...


@hookspec
def augframe_register_generators(register: Register) -> None:
    """Register generator factories: objects with ``info``, ``request_kinds``, ``fit``, ``generate``.

    A generator states which :class:`~augframe.protocols.GenerationRequest` kinds it serves
    (``transfer``, ``sample``, ``complete``) and must honour per-sample seeds.
    """


@hookspec
def augframe_register_filters(register: Register) -> None:
    """Register filter factories: objects with ``name`` and ``score(candidates, sources)``."""


@hookspec
def augframe_register_evaluators(register: Register) -> None:
    """Register evaluator factories: objects with ``name`` and ``evaluate(real, synthetic, ...)``."""


@hookspec
def augframe_register_sources(register: Register) -> None:
    """Register data-source factories: objects with ``name``, ``records()`` and ``fingerprint()``."""


@hookspec
def augframe_register_classifiers(register: Register) -> None:
    """Register ECG classifier factories (torch modules): the shared judges and downstream models.

    A classifier maps float32 ``[N, leads, samples]`` to logits ``[N, classes]`` and exposes
    ``class_names``, ``embed(x)`` (a feature vector per ECG, for distribution metrics) and the
    usual ``state_dict`` / ``load_state_dict``. Generators that need a judge (e.g. a flip loss)
    and evaluators that train or apply one ask the registry by name, so no plugin imports
    another plugin's code.
    """

