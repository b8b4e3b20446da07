"""Write docs/reference.md, the plugin author's API reference, from the docstrings of the public API.

    python scripts/make_reference.py            # rewrite docs/reference.md
    python scripts/make_reference.py --check    # exit 1 if docs/reference.md is stale

tests/core/test_core_reference.py regenerates the page and compares, so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "reference.md"
# The modules a plugin author uses, in reading order.
MODULES = ("augframe.protocols", "augframe.signals", "augframe.judges", "augframe.hookspecs", "augframe.plugins",
           "augframe.testing", "augframe.seeding", "augframe.checkpoint", "augframe.paths", "augframe.errors")
HEADER = """# API reference for plugin authors

Generated from the docstrings by `python scripts/make_reference.py` (a test keeps it current): every
public class and function of the modules a plugin uses, with the fields of the value types. The guide
is [Writing a plugin](writing-a-plugin.md).
"""


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _public(module: Any) -> list[tuple[str, Any]]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__ and (inspect.isclass(v) or inspect.isfunction(v))]
    out = []
    for name in names:
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == module.__name__:
            out.append((name, obj))
    return out


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _default(field: attrs.Attribute) -> str:
    if field.default is attrs.NOTHING:
        return "required"
    if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return f"`{field.default.factory.__name__}()`"
    return f"`{field.default!r}`"


def _fields(cls: type) -> list[str]:
    rows = ["| field | type | default |", "|---|---|---|"]
    for f in attrs.fields(cls):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        kind = kind.replace("|", "\\|")  # a pipe inside a table cell
        rows.append(f"| `{f.name}` | `{kind}` | {_default(f)} |")
    return rows


def _methods(cls: type) -> list[str]:
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, (classmethod, property))):
            continue
        fn = member.__func__ if isinstance(member, classmethod) else member.fget if isinstance(member, property) else member
        first = _doc(fn).split("\n\n")[0].replace("\n", " ")
        sig = "" if isinstance(member, property) else _signature(fn).replace("(self, ", "(").replace("(self)", "()")
        out.append(f"- `{name}{sig}`" + (f": {first}" if first else ""))
    return out


def _class(name: str, cls: type) -> list[str]:
    lines = [f"### `{name}`", ""]
    if _doc(cls):
        lines += [_doc(cls), ""]
    if attrs.has(cls):
        lines += _fields(cls) + [""]
    methods = _methods(cls)
    if methods:
        lines += ["Methods and properties:", ""] + methods + [""]
    return lines


def _function(name: str, fn: Any) -> list[str]:
    return [f"### `{name}{_signature(fn)}`", ""] + ([_doc(fn), ""] if _doc(fn) else [])


def render() -> str:
    lines = [HEADER]
    for modname in MODULES:
        module = importlib.import_module(modname)
        lines += [f"## `{modname}`", ""]
        if _doc(module):
            lines += [_doc(module), ""]
        for name, obj in _public(module):
            lines += _class(name, obj) if inspect.isclass(obj) else _function(name, obj)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the page is stale instead of writing it")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        stale = not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text
        print(f"{PAGE} is {'stale: run python scripts/make_reference.py' if stale else 'current'}")
        return int(stale)
    from augframe.atomic import write_text

    write_text(PAGE, text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
