import types

import numpy as np
import pytest

import augframe
from augframe import FilterResult, PluginError
from augframe.plugins import Registry


class _Pass:
    name = "pass"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def score(self, candidates, sources=None):
        n = len(candidates)
        return FilterResult(self.name, np.ones(n), np.ones(n, bool))


def _plugin(name, hook, factory):
    mod = types.ModuleType(name)

    @augframe.hookimpl
    def augframe_register_filters(register):
        hook(register, factory)

    mod.augframe_register_filters = augframe_register_filters
    return mod


def test_register_create_and_check_params():
    reg = Registry()
    reg.register_module(_plugin("good", lambda r, f: r("pass", f, description="d"), _Pass), version="1.2")
    assert reg.names("filter") == ["pass"]
    assert reg.create("filter", "pass", {"threshold": 0.7}).threshold == 0.7
    with pytest.raises(PluginError, match="did you mean 'threshold'"):
        reg.create("filter", "pass", {"treshold": 0.7})
    with pytest.raises(PluginError, match="did you mean 'pass'"):
        reg.create("filter", "pas")
    assert reg.plugins()[0].provides == (("filter", "pass"),)


def test_broken_plugin_is_recorded_and_others_load():
    reg = Registry()

    def boom(register, factory):
        raise RuntimeError("no weights")

    with pytest.warns(UserWarning, match="broken"):
        reg.register_module(_plugin("broken", boom, _Pass))
    reg.register_module(_plugin("good", lambda r, f: r("pass", f), _Pass))
    assert "RuntimeError: no weights" in reg.load_errors["broken"]
    assert reg.names("filter") == ["pass"]
    with pytest.raises(PluginError, match="broken"):
        reg.create("filter", "other")


def test_protocol_is_checked_and_names_clash():
    reg = Registry()
    reg.register_module(_plugin("bad", lambda r, f: r("bad", f), lambda: object()))
    with pytest.raises(PluginError, match="does not satisfy"):
        reg.create("filter", "bad")
    with pytest.warns(UserWarning, match="clashes"):
        reg.register_module(_plugin("dup", lambda r, f: r("bad", f), _Pass))


def test_env_allow_and_block(monkeypatch):
    monkeypatch.setenv("AUGFRAME_PLUGINS", "nothing-called-this")
    assert Registry.discover().plugins() == []
    monkeypatch.delenv("AUGFRAME_PLUGINS")
    monkeypatch.setenv("AUGFRAME_DISABLE_PLUGINS", "sources")
    reg = Registry.discover()
    assert "sources" not in [p.name for p in reg.plugins()]
    assert reg.skipped["sources"] == "blocked by AUGFRAME_DISABLE_PLUGINS"
    with pytest.raises(PluginError, match="plugin 'sources' is installed but blocked by AUGFRAME_DISABLE_PLUGINS"):
        reg.get("source", "sources")
    with pytest.raises(PluginError, match="plugin 'sources' was not loaded: blocked by AUGFRAME_DISABLE_PLUGINS"):
        reg.get("source", "demo")  # what the blocked plugin would have provided


def test_lazy_factory_exposes_target_signature():
    import inspect

    from augframe.plugins import lazy

    f = lazy("augframe.training.EMA")
    assert list(inspect.signature(f).parameters) == ["module", "decay", "warmup"]
    reg = Registry()
    reg.register_module(_plugin("lz", lambda r, _: r("lazy-pass", lazy(f"{__name__}._Pass")), None))
    assert reg.create("filter", "lazy-pass", {"threshold": 0.2}).threshold == 0.2
    with pytest.raises(PluginError, match="did you mean 'threshold'"):
        reg.create("filter", "lazy-pass", {"threshol": 0.2})
