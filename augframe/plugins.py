"""The plugin registry: finds plugins, records what each provides, builds configured instances.

Discovery goes through the ``augframe`` entry-point group, for first-party and third-party plugins
alike. Which plugins load can be narrowed like pytest's ``-p no:NAME``:

* ``AUGFRAME_PLUGINS="a,b"``: load only these entry points (an allow list);
* ``AUGFRAME_DISABLE_PLUGINS="c"``: never load these (a block list);
* a recipe's ``[plugins] allow = [...]`` / ``block = [...]`` does the same for one run.

A plugin that fails to import (or whose register hook raises) is recorded in
:attr:`Registry.load_errors` with its name and the underlying error, and the others still load.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import attrs
import pluggy

from augframe import hookspecs
from augframe.errors import PluginError, suggest
from augframe.protocols import KINDS

ENTRY_POINT_GROUP = "augframe"
ENV_ALLOW = "AUGFRAME_PLUGINS"
ENV_BLOCK = "AUGFRAME_DISABLE_PLUGINS"
log = logging.getLogger(__name__)


@attrs.frozen
class Provision:
    """One registered factory: what kind it makes, under what name, from which plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""


@attrs.frozen
class PluginInfo:
    """A loaded (or failed) plugin: entry-point name, distribution version, what it provides."""

    name: str
    version: str
    module: str
    provides: tuple[tuple[str, str], ...] = ()
    error: str | None = None


def _split_env(var: str) -> frozenset[str] | None:
    raw = os.environ.get(var, "").strip()
    return frozenset(p.strip() for p in raw.split(",") if p.strip()) or None


class Registry:
    """Plugins and the named factories they registered, per kind."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._provisions: dict[str, dict[str, Provision]] = {k: {} for k in KINDS}
        self._plugins: dict[str, PluginInfo] = {}
        self.load_errors: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # installed plugins not loaded on purpose -> why

    # ---- discovery --------------------------------------------------------------------------
    @classmethod
    def discover(
        cls, allow: Iterable[str] | None = None, block: Iterable[str] | None = None,
    ) -> Registry:
        """A registry with every allowed plugin of the ``augframe`` entry-point group loaded.

        ``allow`` / ``block`` add to the environment's lists (a plugin must pass both). Every module
        is registered before any register hook runs, so one plugin's hook wrapper sees them all.
        """
        reg = cls()
        env_allow, env_block = _split_env(ENV_ALLOW), _split_env(ENV_BLOCK)
        allowed = _intersect(env_allow, frozenset(allow) if allow is not None else None)
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in (env_block or ()):
                reg.block(ep.name, f"blocked by {ENV_BLOCK}")
            elif ep.name in frozenset(block or ()):
                reg.block(ep.name, "blocked by the recipe's [plugins] block")
            elif allowed is not None and ep.name not in allowed:
                reg.block(ep.name, f"not allowed by {ENV_ALLOW}" if env_allow is not None and ep.name not in env_allow
                          else "not in the recipe's [plugins] allow")
        attached = [ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP) if reg._load_entry_point(ep)]
        for name in attached:
            reg._collect(name)
        return reg

    def block(self, name: str, why: str) -> None:
        """Never load plugin ``name`` (pluggy's block list); ``why`` is what errors and the CLI say."""
        self._pm.set_blocked(name)
        self.skipped[name] = why

    def _load_entry_point(self, ep: md.EntryPoint) -> bool:
        if self._pm.is_blocked(ep.name):
            return False
        version = ep.dist.version if ep.dist is not None else "unknown"
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            self._record_error(ep.name, version, ep.value, exc)
            return False
        return self._attach(module, ep.name, version)

    def register_module(self, module: ModuleType | object, name: str | None = None, version: str = "0") -> None:
        """Register a plugin object (module) by hand, e.g. in tests or notebooks."""
        name = name or str(getattr(module, "__name__", repr(module)))
        if self._attach(module, name, version):
            self._collect(name)

    def _attach(self, module: object, name: str, version: str) -> bool:
        """Register ``module`` with pluggy under ``name``; False if it is blocked or broken."""
        if name in self._plugins:
            raise PluginError(f"a plugin named {name!r} is already registered")
        modname = getattr(module, "__name__", type(module).__name__)
        try:
            registered = self._pm.register(module, name=name)
        except Exception as exc:  # e.g. a hookimpl whose arguments do not match its hookspec
            self._record_error(name, version, modname, exc)
            return False
        if registered is None:
            return False
        self._plugins[name] = PluginInfo(name, version, modname)
        return True

    def _collect(self, plugin: str) -> None:
        """Call ``plugin``'s register hooks through pluggy (with every plugin's hook wrappers)."""
        provided: list[tuple[str, str]] = []
        info = self._plugins[plugin]
        try:
            for kind in KINDS.values():
                def register(name: str, factory: Callable[..., Any], description: str = "",
                             _kind: str = kind.name) -> None:
                    self._add(Provision(_kind, name, factory, plugin, description))
                    provided.append((_kind, name))

                others = [impl.plugin for impl in getattr(self._pm.hook, kind.hook).get_hookimpls()
                          if impl.plugin_name != plugin and not (impl.wrapper or impl.hookwrapper)]
                self._pm.subset_hook_caller(kind.hook, remove_plugins=others)(register=register)
        except Exception as exc:
            self._pm.unregister(name=plugin)
            self._forget(plugin)
            del self._plugins[plugin]
            self._record_error(plugin, info.version, info.module, exc)
            return
        self._plugins[plugin] = attrs.evolve(info, provides=tuple(provided))

    def _add(self, prov: Provision) -> None:
        table = self._provisions[prov.kind]
        if prov.name in table:
            raise PluginError(
                f"{prov.kind} {prov.name!r} from plugin {prov.plugin!r} clashes with the one from "
                f"{table[prov.name].plugin!r}; block one of them with {ENV_BLOCK}"
            )
        if not callable(prov.factory):
            raise PluginError(f"{prov.kind} {prov.name!r} from plugin {prov.plugin!r}: factory is not callable")
        table[prov.name] = prov

    def _forget(self, plugin: str) -> None:
        for table in self._provisions.values():
            for key in [k for k, v in table.items() if v.plugin == plugin]:
                del table[key]

    def _record_error(self, name: str, version: str, module: str, exc: BaseException) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        self.load_errors[name] = msg
        self._plugins[name] = PluginInfo(name, version, module, (), msg)
        log.warning("augframe plugin %r failed to load and was skipped: %s", name, msg)

    # ---- lookup -----------------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        return sorted(self._plugins.values(), key=lambda p: p.name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._table(kind))

    def provisions(self, plugin: str) -> list[Provision]:
        """What ``plugin`` registered, kind by kind."""
        return [p for table in self._provisions.values() for p in table.values() if p.plugin == plugin]

    def get(self, kind: str, name: str) -> Provision:
        table = self._table(kind)
        if name not in table:
            if name in self.skipped:
                raise PluginError(f"{kind} {name!r} is not available: plugin {name!r} is installed but "
                                  f"{self.skipped[name]}; unblock it to use it")
            failed = "".join(f"\n  plugin {p!r} failed to load: {e}" for p, e in self.load_errors.items())
            skipped = "".join(f"\n  plugin {p!r} was not loaded: {why}" for p, why in sorted(self.skipped.items()))
            raise PluginError(f"no {kind} named {name!r}{suggest(name, table)}{failed}{skipped}")
        return table[name]

    def create(self, kind: str, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Build the named plugin object with ``params``; wrong parameter names are named."""
        prov = self.get(kind, name)
        params = dict(params or {})
        check_params(prov, params)
        obj = prov.factory(**params)  # check_params named bad input; an error from inside is a bug: traceback
        proto = KINDS[kind].protocol
        if not isinstance(obj, proto):
            raise PluginError(
                f"{kind} {name!r} from plugin {prov.plugin!r} built a {type(obj).__name__}, which does not "
                f"satisfy augframe.protocols.{proto.__name__}"
            )
        return obj

    def _table(self, kind: str) -> dict[str, Provision]:
        if kind not in self._provisions:
            raise PluginError(f"unknown plugin kind {kind!r}{suggest(kind, self._provisions)}")
        return self._provisions[kind]


class lazy:
    """A factory that imports ``"package.module.attr"`` on first call, keeping plugin import cheap.

    ``inspect.signature`` sees the target's parameters, so the registry still names a wrong
    parameter without the caller importing anything first::

        register("my-gen", lazy("my_plugin.generator.MyGenerator"))
    """

    def __init__(self, target: str) -> None:
        module, _, attr = target.rpartition(".")
        if not module or not attr:
            raise PluginError(f"lazy factory target {target!r} must be 'package.module.attr'")
        self.target = target

    def resolve(self) -> Callable[..., Any]:
        import importlib

        module, _, attr = self.target.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    def __call__(self, **params: Any) -> Any:
        return self.resolve()(**params)

    def __repr__(self) -> str:
        return f"<lazy factory {self.target}>"


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    return a if b is None else a & b


def check_params(prov: Provision, params: Mapping[str, Any], supplied: Iterable[str] = (),
                 registry: Registry | None = None) -> None:
    """Raise PluginError for a parameter the factory lacks, a required one not given, a value that
    does not fit the parameter's annotation, or what the factory's own ``validate_params`` refuses.

    ``supplied`` names parameters the caller will provide itself (e.g. the pipeline's run context).
    A factory checks nested tables (e.g. a ``sampler`` table's keys) without being built by defining
    ``validate_params(params, registry)`` (a static method on a class), raising an AugframeError.
    """
    try:
        sig = inspect.signature(prov.factory)
    except (TypeError, ValueError):
        return
    ps = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in ps):
        return
    accepted = {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in params:
        if key not in accepted:
            raise PluginError(f"{prov.kind} {prov.name!r} has no parameter {key!r}{suggest(key, accepted)}")
    hints = _type_hints(prov.factory)
    for key, value in params.items():
        hint = hints.get(key)
        if hint is not None and not _fits(value, hint):
            raise PluginError(f"{prov.kind} {prov.name!r} parameter {key!r} = {value!r} ({type(value).__name__}) "
                              f"does not fit its declared type {_hint_name(hint)}")
    given = set(params) | set(supplied)
    missing = [p.name for p in ps if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and p.name not in given]
    if missing:
        raise PluginError(f"{prov.kind} {prov.name!r} needs parameter(s) {missing}")
    target = prov.factory.resolve() if isinstance(prov.factory, lazy) else prov.factory
    validate = getattr(target, "validate_params", None)
    if callable(validate):
        from augframe.errors import AugframeError

        try:
            validate(dict(params), registry)
        except AugframeError as exc:
            raise PluginError(f"{prov.kind} {prov.name!r}: {exc}") from exc


def _type_hints(factory: Any) -> dict[str, Any]:
    """The factory's resolved parameter annotations, or {} where they cannot be resolved."""
    import typing

    try:
        target = factory.resolve() if isinstance(factory, lazy) else factory
        fn = getattr(target, "__init__") if isinstance(target, type) else target
        return typing.get_type_hints(fn)
    except Exception:  # annotations under TYPE_CHECKING, attrs-generated __init__...: no type check
        return {}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a recipe (TOML) value fits an annotation; annotations it does not know always fit."""
    import collections.abc as cabc
    import os
    import types
    import typing

    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint
    if isinstance(base, type) and issubclass(base, os.PathLike):
        return isinstance(value, (str, os.PathLike))
    if base in (dict, cabc.Mapping, cabc.MutableMapping):
        return isinstance(value, cabc.Mapping)
    if base in (list, tuple, cabc.Sequence):
        return isinstance(value, (list, tuple))
    return True


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def default_registry(allow: Iterable[str] | None = None, block: Iterable[str] | None = None) -> Registry:
    """A freshly discovered registry (plugins are cheap to find; importing them is lazy inside each)."""
    return Registry.discover(allow=allow, block=block)
