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


def test_broken_plugin_is_recorded_and_others_load(caplog):
    reg = Registry()

    def boom(register, factory):
        raise RuntimeError("no weights")

    reg.register_module(_plugin("broken", boom, _Pass))
    assert "plugin 'broken' failed to load" in caplog.text
    reg.register_module(_plugin("good", lambda r, f: r("pass", f), _Pass))
    assert "RuntimeError: no weights" in reg.load_errors["broken"]
    assert reg.names("filter") == ["pass"]
    with pytest.raises(PluginError, match="broken"):
        reg.create("filter", "other")


def test_protocol_is_checked_and_names_clash(caplog):
    reg = Registry()
    reg.register_module(_plugin("bad", lambda r, f: r("bad", f), lambda: object()))
    with pytest.raises(PluginError, match="does not satisfy"):
        reg.create("filter", "bad")
    reg.register_module(_plugin("dup", lambda r, f: r("bad", f), _Pass))
    assert "clashes" in caplog.text


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


def test_register_hooks_run_through_pluggy_with_wrappers():
    reg = Registry()
    seen = []
    wrapper = types.ModuleType("wrapper")

    @augframe.hookimpl(wrapper=True)
    def augframe_register_filters(register):
        seen.append("before")
        result = yield
        seen.append("after")
        return result

    wrapper.augframe_register_filters = augframe_register_filters
    reg.register_module(wrapper)
    reg.register_module(_plugin("good", lambda r, f: r("pass", f), _Pass))
    assert seen == ["before", "after", "before", "after"]  # its own (empty) call, then around 'good'
    assert reg.plugins()[0].name == "good" and reg.provisions("good")[0].name == "pass"


def test_blocked_plugin_is_not_registered_and_factory_bugs_keep_their_traceback():
    reg = Registry()
    reg.block("nope", "blocked in this test")
    reg.register_module(_plugin("nope", lambda r, f: r("pass", f), _Pass))
    assert reg.names("filter") == [] and reg.skipped == {"nope": "blocked in this test"}

    def buggy(threshold: float = 0.5):
        return len(None)  # a TypeError inside the factory: a bug, not a user error

    reg.register_module(_plugin("buggy", lambda r, f: r("buggy", f), buggy))
    with pytest.raises(TypeError, match="NoneType"):
        reg.create("filter", "buggy", {"threshold": 0.1})
