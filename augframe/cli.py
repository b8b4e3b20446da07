"""The ``augframe`` command: plugins, recipe check, run, generate, evaluate.

Every command takes ``--help``. Exit status: 0 success; 2 a usage error (bad arguments, a recipe
or plugin configuration that is wrong: RecipeError, PluginError, ValidationError); 1 a runtime
failure (data, bank or checkpoint problems, and operating-system errors such as a full disk or a
read-only folder). Both print one line ``augframe: error: ...`` on stderr; anything else is a bug
and shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from augframe.errors import AugframeError, PluginError, RecipeError, ValidationError

EXIT_USAGE = 2
EXIT_FAILURE = 1
#: Errors that mean "the command or its recipe is wrong" (exit 2); other augframe errors exit 1.
USAGE_ERRORS = (RecipeError, PluginError, ValidationError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    handler = _log_to_stderr()
    try:
        return int(args.func(args) or 0)
    except AugframeError as exc:
        print(f"augframe: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE
    except OSError as exc:  # ENOSPC, EFBIG, EROFS, EACCES...: the environment, not a bug
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"augframe: error: {exc.strerror or exc}{where}; free space or fix permissions, then re-run "
              "the same command to resume", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:  # pragma: no cover
        print("augframe: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    finally:
        logging.getLogger("augframe").removeHandler(handler)
        logging.getLogger("augframe").setLevel(logging.NOTSET)  # the library never sets one itself


def _log_to_stderr() -> logging.Handler:
    """The command's one log handler: augframe's INFO messages, as plain lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("augframe")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Hold back ``logger``'s messages while the command reports the same facts itself."""
    log = logging.getLogger(logger)
    before, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = before


def _one_line(exc: BaseException) -> str:
    return " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="augframe",
        description="Make synthetic ECGs with generator plugins, filter them, bank them and measure them.",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    sp = sub.add_parser("plugins", help="list installed plugins and what each provides",
                        description="List the plugins of the 'augframe' entry-point group: name, version, "
                                    "kind and names provided; plugins that failed to load are shown with "
                                    "their error. AUGFRAME_PLUGINS / AUGFRAME_DISABLE_PLUGINS narrow the set.")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_plugins)

    rp = sub.add_parser("recipe", help="work with recipe files", description="Work with recipe files.")
    rsub = rp.add_subparsers(title="recipe commands", metavar="COMMAND")
    cp = rsub.add_parser("check", help="validate a recipe and print it resolved",
                         description="Validate a recipe (keys, types, plugin names and parameters, that every "
                                     "input path exists) and print it with every default filled in and "
                                     "relative paths resolved against the recipe's folder.")
    cp.add_argument("file", help="recipe .toml file")
    cp.add_argument("--no-plugins", action="store_true",
                    help="check keys and types only, not plugin names (no plugin is loaded)")
    cp.set_defaults(func=cmd_recipe_check)
    rp.set_defaults(func=lambda a: _help(rp))

    for name, helptext, desc in (
        ("run", "run a recipe: fit -> generate -> filter -> bank -> evaluate -> report",
         "Run every stage of a recipe. Re-running with the same output directory resumes generation "
         "from the bank (no duplicate, no lost sample)."),
        ("generate", "fit (if the recipe says so), generate, filter and bank only",
         "Run the fit and generate stages of a recipe: candidates are filtered and accepted ones appended "
         "to the run's bank."),
        ("evaluate", "evaluate the bank of a recipe's run and write the report",
         "Run the evaluators of a recipe on the bank its run already holds, then write the report."),
    ):
        sp = sub.add_parser(name, help=helptext, description=desc)
        sp.add_argument("recipe", help="recipe .toml file")
        sp.add_argument("--output-dir", help="override run.output_dir")
        sp.add_argument("--seed", type=int, help="override run.seed")
        sp.add_argument("--device", help="override run.device ('auto', 'cpu', 'cuda', 'cuda:N')")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        if name == "generate":
            sp.add_argument("--count", type=int, help="override generation.count")
        sp.set_defaults(func=cmd_stages, stages={
            "run": ("fit", "generate", "evaluate", "report"),
            "generate": ("fit", "generate"),
            "evaluate": ("evaluate", "report"),
        }[name])
    return p


def cmd_plugins(args: argparse.Namespace) -> int:
    from augframe.plugins import Registry

    with _quiet("augframe.plugins"):  # failures are listed below, with their errors
        reg = Registry.discover()
    rows: list[dict[str, Any]] = []
    for info in reg.plugins():
        descriptions = {(p.kind, p.name): p.description for p in reg.provisions(info.name)}
        rows.append({
            "name": info.name, "version": info.version, "module": info.module,
            "provides": [{"kind": k, "name": n, "description": descriptions.get((k, n), "")} for k, n in info.provides],
            "error": info.error, "blocked": None,
        })
    rows += [{"name": name, "version": "", "module": "", "provides": [], "error": None, "blocked": why}
             for name, why in sorted(reg.skipped.items())]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:  # blocked plugins are rows (BLOCKED: why), so this means none is installed
        from augframe.plugins import ENTRY_POINT_GROUP

        print(f"no augframe plugins are installed (entry-point group {ENTRY_POINT_GROUP!r})")
        return 0
    width = max(len(r["name"]) for r in rows)
    vwidth = max(len(r["version"]) for r in rows)
    for r in rows:
        head = f"{r['name']:<{width}}  {r['version']:<{vwidth}}"
        if r["blocked"]:
            print(f"{head}  BLOCKED: {r['blocked']}")
        elif r["error"]:
            print(f"{head}  FAILED TO LOAD ({r['module']}): {r['error']}")
        elif not r["provides"]:
            print(f"{head}  (provides nothing)")
        for j, prov in enumerate(r["provides"]):
            lead = head if j == 0 else " " * len(head)
            desc = f"  - {prov['description']}" if prov["description"] else ""
            print(f"{lead}  {prov['kind']:<10} {prov['name']}{desc}")
    failed = sum(1 for r in rows if r["error"])
    if failed:
        print(f"\n{failed} plugin(s) failed to load; the others are usable.", file=sys.stderr)
    return 0


def cmd_recipe_check(args: argparse.Namespace) -> int:
    from augframe import recipe as recipe_mod

    from augframe.paths import check_recipe_file

    recipe = recipe_mod.load(args.file)
    check_recipe_file(args.file)
    if not args.no_plugins:
        from augframe.plugins import Registry

        with _quiet("augframe.plugins"):  # check_plugins names the failures that matter
            reg = Registry.discover(recipe.plugins.allow, recipe.plugins.block)
        recipe_mod.check_plugins(recipe, reg)
    print(f"# {args.file}: OK" + (" (plugin names not checked)" if args.no_plugins else ""))
    print(recipe.to_toml())
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    import attrs

    from augframe import pipeline, recipe as recipe_mod

    from augframe.paths import check_recipe_file

    recipe = recipe_mod.load(args.recipe)
    check_recipe_file(args.recipe)
    recipe = recipe.evolve_run(output_dir=args.output_dir, seed=args.seed, device=args.device,
                               progress=False if args.no_progress else None)
    if getattr(args, "count", None) is not None:
        recipe = attrs.evolve(recipe, generation=attrs.evolve(recipe.generation, count=args.count))
        recipe_mod.parse(recipe.to_dict())  # re-validate with the override
    result = pipeline.run(recipe, stages=args.stages)
    print(f"output: {result.output_dir}")
    if result.generation:
        for tag, s in result.generation["per_target"].items():
            print(f"  {tag}: {s['accepted_total']} accepted in bank ({s['accepted_now']} new from "
                  f"{s['candidates']} candidates this run, acceptance {pipeline.acceptance_text(s)})")
    for name, path in result.evaluations.items():
        print(f"  evaluation {name}: {path}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _version() -> str:
    from augframe import __version__

    return f"augframe {__version__}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
