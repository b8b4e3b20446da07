"""run(recipe): source -> preprocessing -> fit -> generate -> filter -> bank -> evaluate -> report.

The runner is generic over the plugin protocols: it looks every part up in the registry by the
names the recipe gives and never imports a plugin. Each stage writes its outputs atomically into
the run's output directory; generation appends to a :class:`~augframe.bank.Bank` keyed per unit of
work, so re-running a killed run resumes where it stopped and ends with the same bank as an
uninterrupted run (same seeds, same accepted samples, no duplicates).

Output directory::

    recipe.toml          the resolved recipe (every default filled in)
    run.json             seeds, versions, plugins, data facts, per-stage timings, generation stats
    generator/           the generator's fit workdir (its checkpoints, logs)
    bank/                the synthetic bank (see augframe.bank)
    eval/NAME.json       one EvaluationResult per evaluator
    summary.json/.md     the run summary (generation stats, evaluator metrics), as JSON and text
    report.html/.json    the report page (augframe.report): generation, evaluations, source/synthetic strips
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import augframe
from augframe import atomic
from augframe.bank import BANK_META, Bank
from augframe.data.external import load_external_sets
from augframe.data.prepare import RunData
from augframe.errors import DataError, PluginError, RecipeError, ValidationError
from augframe.filterchain import ChainResult, FilterChain, chain_summary
from augframe.judges import JudgeRef, judge_ref
from augframe.plugins import Registry
from augframe.protocols import KINDS, EvalContext, EvaluationResult, GenerationRequest
from augframe.provenance import (
    generators_text,
    provenance_markdown,
    provenance_result,
    run_provenance,
)
from augframe.recipe import Recipe, check_plugins, parse_direction
from augframe.seeding import Stream, derive_seeds, numpy_rng
from augframe.signals import ECGBatch
from augframe.windows import ArrayWindows, as_windows, gather

STAGES = ("fit", "generate", "evaluate", "report")
_log = logging.getLogger(__name__)


@attrs.frozen
class RunResult:
    output_dir: Path
    bank_path: Path
    generation: Mapping[str, Any]
    evaluations: Mapping[str, Path]
    report: Path | None


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def run(recipe: Recipe, *, registry: Registry | None = None, stages: Sequence[str] = STAGES,
        progress: bool | None = None) -> RunResult:
    """Run the stages of ``recipe`` (all by default); returns where everything was written.

    Stage messages go to the ``augframe.pipeline`` logger (INFO); the CLI shows them on stderr.
    """
    for s in stages:
        if s not in STAGES:
            raise ValidationError(f"unknown stage {s!r}; stages are {STAGES}")
    show = recipe.run.progress if progress is None else progress
    registry = registry if registry is not None else Registry.discover(recipe.plugins.allow, recipe.plugins.block)
    check_plugins(recipe, registry)
    from augframe.training import resolve_device

    device = resolve_device(recipe.run.device)
    out = _output_dir(recipe)
    record: dict[str, Any] = {"recipe": recipe.run.name, "seed": recipe.run.seed, "device": device,
                              "versions": augframe.software_versions(), "plugins": _plugin_table(registry), "timings_s": {}}
    timer = _Timer(record["timings_s"])

    with timer("data"):
        _log.info(f"[data] source {recipe.data.source!r}")
        data = load_data(recipe, registry)
        train = as_windows(data.train)
        record["data"] = {"fingerprint": data.fingerprint, "train": len(train),
                          "test": None if data.test is None else len(data.test), "fs": train.fs,
                          "leads": list(train.leads), "class_names": list(train.class_names), **dict(data.info)}
        _log.info(f"[data] {len(train)} training windows, classes {list(train.class_names)}")
    _check_existing_bank(out / "bank", generation_plan(recipe, data.fingerprint))
    resolved = recipe.to_toml()  # written once the run is known to continue its own plan
    if not (out / "recipe.toml").is_file() or (out / "recipe.toml").read_text(encoding="utf-8", errors="replace") != resolved:
        atomic.write_text(out / "recipe.toml", resolved)  # unchanged: not rewritten (a finished run may be read-only)

    generator = None
    if "fit" in stages or "generate" in stages:
        generator = make_generator(recipe, registry, device)
        if "fit" in stages and recipe.generator.fit:
            with timer("fit"):
                _log.info(f"[fit] {recipe.generator.name}")
                generator.fit(data.train, seed=recipe.run.seed, workdir=out / "generator")

    bank_path = out / "bank"
    generation: dict[str, Any] = {}
    if "generate" in stages:
        chain = make_filter_chain(recipe, registry, device, data.train, data.all_windows)
        with timer("generate"):
            generation = generate_into_bank(recipe, generator, chain, train, bank_path, progress=show,
                                            data_fingerprint=data.fingerprint)
        record["generation"] = generation
        atomic.write_json(out / "run.json", record)

    evaluations: dict[str, Path] = {}
    if "evaluate" in stages and recipe.evaluators:
        with timer("evaluate"):
            evaluations = evaluate_bank(recipe, registry, data, bank_path, out / "eval", device, show)

    record["provenance"] = run_provenance(recipe, bank_path, record["plugins"])
    report_path = None
    if "report" in stages:
        with timer("report"):
            report_path = write_report(recipe, out, record, evaluations, data)
    atomic.write_json(out / "run.json", record)
    return RunResult(out, bank_path, generation, evaluations, report_path)


def make_generator(recipe: Recipe, registry: Registry, device: str) -> Any:
    """The recipe's generator (its params, its checkpoint, the run's device), unfitted."""
    return _create(registry, "generator", recipe.generator.name, recipe.generator.factory_params(), device)


def make_filter_chain(recipe: Recipe, registry: Registry, device: str, train: Any,
                      all_windows: Any = None) -> FilterChain:
    """The recipe's ``[[filters]]`` in order, given the run's device, training windows and every window of
    its data where they take them."""
    return FilterChain.from_specs(
        [attrs.evolve(f, params=_with_device(registry, "filter", f.name, f.params, device, train=train,
                                             all_windows=all_windows))
         for f in recipe.filters], registry)


def _check_existing_bank(bank_path: Path, plan: Mapping[str, Any]) -> None:
    """A bank already in the output folder must come from this recipe's plan, for every stage."""
    if (bank_path / "bank.json").exists():
        bank = Bank.open(bank_path, verify="none")
        try:
            bank.check_plan(plan)
        finally:
            bank.close()


def _output_dir(recipe: Recipe) -> Path:
    """The run's folder, made if needed; a path that is a file or a device is refused by name."""
    out = recipe.output_dir
    if out.exists() and not out.is_dir():
        raise RecipeError(f"run.output_dir = {str(out)!r} exists and is not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise RecipeError(f"run.output_dir = {str(out)!r}: a parent of it is a file ({exc})") from exc
    return out


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def load_data(recipe: Recipe, registry: Registry) -> RunData:
    """Source plugin -> preprocessing -> split -> normalisation fitted on the training split only.

    The data layer (``augframe.data.prepare_recipe_data``) owns all of it: the memmap cache, the
    patient-wise split and the normaliser; see docs/recipes.md and docs/data.md.
    """
    from augframe.data.prepare import prepare_recipe_data

    spec = recipe.data
    source = _create(registry, "source", spec.source, spec.params, None)
    return prepare_recipe_data(source, preprocessing=dict(spec.preprocessing), split=dict(spec.split),
                               classes=spec.classes, seed=recipe.run.seed)


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
@attrs.frozen
class WorkItem:
    """One candidate to make: its unit (one accepted sample per unit), attempt, seed and source."""

    unit: str
    attempt: int
    seed: int
    source: int  # index into the training windows; -1 for 'sample' requests
    label: int   # target class index


def work_plan(recipe: Recipe, train: Any) -> dict[str, tuple[int | None, list[list[WorkItem]]]]:
    """Per direction (or label): the wanted count and the work items, round by round, in priority order.

    Seeds and order are pure functions of (run seed, direction name, source position, attempt).
    """
    g = recipe.generation
    names = tuple(train.class_names)
    labels = np.asarray(train.labels)
    ids = _ids(train)
    plan: dict[str, tuple[int | None, list[list[WorkItem]]]] = {}
    if g.kind == "transfer":
        for direction in g.directions:
            src, dst = parse_direction(direction)
            for name, key in ((src, "source"), (dst, "target")):
                _check_class(f"generation.directions {direction!r}: {key} class", name, names)
            tag = f"{src}->{dst}"
            plan[tag] = (g.count, _source_rounds(tag, labels == names.index(src), names.index(dst), recipe, ids))
    elif g.kind == "complete":
        for name in g.labels or names:
            _check_class("generation.labels: class", name, names)
            tag = f"complete-{g.mask['task']}:{name}"
            plan[tag] = (g.count, _source_rounds(tag, labels == names.index(name), names.index(name), recipe, ids))
    else:
        if g.count is None:  # recipe loading checks this too; a Recipe built in code is not checked there
            raise RecipeError("generation.count is required for kind = 'sample' (samples wanted per label)")
        for name in g.labels:
            _check_class("generation.labels: class", name, names)
            tag = f"sample:{name}"
            total = int(g.count) * g.attempts_per_source
            seeds = derive_seeds(_name_seed(recipe.run.seed, tag), total)
            plan[tag] = (g.count, [[WorkItem(f"{tag}:{j}", 0, int(seeds[j]), -1, names.index(name))
                                    for j in range(total)]])
    return plan


def _check_class(what: str, name: str, names: Sequence[str]) -> None:
    if name not in names:
        raise RecipeError(f"{what} {name!r} is not in the data's classes {list(names)}{_hint(name, names)}")


def _source_rounds(tag: str, is_member: np.ndarray, target: int, recipe: Recipe, ids: Sequence[str]
                   ) -> list[list[WorkItem]]:
    """Attempt rounds over the member sources (seeded order), each source with its own seed per attempt."""
    tag_seed = _name_seed(recipe.run.seed, tag)
    members = np.flatnonzero(is_member)
    members = members[numpy_rng(tag_seed, Stream.PIPELINE_SOURCE_ROUNDS).permutation(len(members))]
    rounds = []
    for a in range(recipe.generation.attempts_per_source):
        seeds = derive_seeds(int(derive_seeds(tag_seed, 1, offset=a)[0]), len(members))
        rounds.append([WorkItem(f"{tag}:{ids[int(j)]}", a, int(s), int(j), target) for j, s in zip(members, seeds)])
    return rounds


def generate_into_bank(recipe: Recipe, generator: Any, chain: FilterChain, train: Any, bank_path: Path, *,
                       progress: bool = True,
                       data_fingerprint: str | None = None) -> dict[str, Any]:
    """Make, filter and bank candidates for every direction / label; resumes from what the bank holds.

    The bank is bound to the run's generation plan (:func:`generation_plan`): resuming into a bank
    made by another plan (other seed, data, generator, options or filters) raises BankError.
    """
    from augframe.progress import progress as progress_bar

    g = recipe.generation
    kind = g.kind
    if kind not in generator.request_kinds:
        raise RecipeError(f"generation.kind = {kind!r}, but generator {recipe.generator.name!r} serves only "
                          f"{sorted(generator.request_kinds)}")
    bank = Bank.open_or_create(bank_path, fs=train.fs, leads=train.leads, samples_per_window=_n_samples(train),
                               class_names=train.class_names, units=_units(train))
    try:
        bank.claim_plan(generation_plan(recipe, data_fingerprint))
    except BaseException:
        bank.close()
        raise
    stats: dict[str, Any] = {}
    state_path = bank_path.parent / "generation-state.json"
    state = _read_state(state_path)
    fingerprint = _plan_fingerprint(recipe)
    try:
        for tag, (count, rounds) in work_plan(recipe, train).items():
            done = state.get(tag, {})
            if done.get("plan") == fingerprint:  # this plan ran to its end before: nothing left to try
                stats[tag] = _skipped_stats(done["stats"])
                _log.info(f"[generate] {tag}: complete in an earlier run ({stats[tag]['accepted_total']} in bank)")
                continue
            stats[tag] = _generate_one(tag, count, rounds, recipe, generator, chain, train, bank, progress,
                                       progress_bar)
            state[tag] = {"plan": fingerprint, "stats": stats[tag]}
            atomic.write_json(state_path, state)
            s = stats[tag]
            _log.info(f"[generate] {tag}: {s['accepted_total']} in bank ({s['accepted_now']} new) from "
                f"{s['candidates']} candidates this run")
    finally:
        bank.close()
    return {"kind": kind, "bank": str(bank_path), "per_target": stats}


def _skipped_stats(earlier: Mapping[str, Any]) -> dict[str, Any]:
    """A target an earlier run finished: this run made no candidate (its counts are 0, its acceptance
    None); the figures of the run that finished it stay under ``earlier``, never as this run's."""
    return {"wanted": earlier.get("wanted"), "accepted_total": earlier.get("accepted_total"), "accepted_now": 0,
            "candidates": 0, "acceptance": None, "per_filter_acceptance": {},
            "shortfall": earlier.get("shortfall"), "note": "complete in an earlier run",
            "earlier": {k: earlier.get(k) for k in ("candidates", "acceptance", "per_filter_acceptance")}}


def _read_state(path: Path) -> dict[str, Any]:
    """generation-state.json (which targets ran to their end); a damaged one is rebuilt from the bank.

    The state only lets a finished target be skipped; the bank's keys say what is done, so an
    unreadable state costs a re-check of each target, never a wrong result.
    """
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _log.info(f"[generate] {path} is unreadable ({exc}); re-checking every target against the bank")
        return {}
    if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
        _log.info(f"[generate] {path} is not a table of targets; re-checking every target against the bank")
        return {}
    return state


def generation_plan(recipe: Recipe, data_fingerprint: str | None) -> dict[str, Any]:
    """Everything that decides which samples a bank holds: seed, data, generation request, generator
    and filters. ``generation.count`` is left out (a larger count extends the same plan);
    ``generation.batch_size`` stays in: a generator's float results may depend on how candidates
    are batched, and a resume must call it with the same batches."""
    gen = attrs.asdict(recipe.generation)
    gen.pop("count")
    return {"seed": recipe.run.seed, "data": data_fingerprint, "generation": gen,
            "generator": attrs.asdict(recipe.generator), "filters": [attrs.asdict(f) for f in recipe.filters]}


def _plan_fingerprint(recipe: Recipe) -> str:
    """What decides a generation plan's outcome: seed, generation, generator and filter specs."""
    spec = {"seed": recipe.run.seed, "generation": attrs.asdict(recipe.generation),
            "generator": attrs.asdict(recipe.generator), "filters": [attrs.asdict(f) for f in recipe.filters]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _generate_one(tag: str, count: int | None, rounds: list[list[WorkItem]], recipe: Recipe, generator: Any,
                  chain: FilterChain, train: Any, bank: Bank, show: bool, progress_bar: Any) -> dict[str, Any]:
    """One direction / label, round by round, in fixed chunks of ``generation.batch_size``.

    A chunk's members are a pure function of the plan (the round's items, less the units accepted
    in an earlier round), never of what this process has done so far, so a resumed run calls the
    generator with exactly the batches an uninterrupted run does: the bank is bit-identical even
    for a generator whose float results depend on batch composition.
    """
    g = recipe.generation
    prefix = f"{tag}:"
    tagged = [i for i, k in enumerate(bank.keys) if k.startswith(prefix)]
    done = {r["key"]: int(r.get("attempt", 0)) for r in bank.rows(tagged)} if tagged else {}
    n_units = len(rounds[0]) if rounds else 0
    wanted = n_units if count is None else (count if g.kind == "sample" else min(count, n_units))
    accepted_before = len(done)
    results: list[ChainResult] = []
    total_items = sum(len(r) for r in rounds)
    bar = progress_bar(total=total_items, desc=f"generate {tag}", enabled=None if show else False)
    for attempt, items in enumerate(rounds):
        pending = [it for it in items if done.get(it.unit, attempt) >= attempt]
        for start in range(0, len(pending), g.batch_size):
            if len(done) >= wanted:
                break
            chunk = pending[start:start + g.batch_size]
            cands, sources, res = _make_and_score(chunk, recipe, generator, chain, train)
            results.append(res)
            before = len(done) - sum(it.unit in done for it in chunk)  # a re-run chunk counts once
            order = np.flatnonzero(res.accept)[: wanted - before]  # priority order: trim to the count
            new = [i for i in order if chunk[i].unit not in done]
            if new:
                rows = [_manifest_row(chunk[i], cands, res, i, sources) for i in new]
                bank.append(cands.batch.select(np.asarray(new)), rows)
                done.update((chunk[i].unit, attempt) for i in new)
            bar.update(len(chunk))
        if len(done) >= wanted:
            break
    bar.close()
    summary = dict(chain_summary(results))
    return {"wanted": wanted, "accepted_total": len(done), "accepted_now": len(done) - accepted_before,
            "candidates": summary["candidates"], "acceptance": summary["acceptance"],
            "per_filter_acceptance": summary["per_filter"],
            "shortfall": max(0, wanted - len(done))}


def _make_and_score(chunk: list[WorkItem], recipe: Recipe, generator: Any, chain: FilterChain,
                    train: Any) -> tuple[Any, ECGBatch | None, ChainResult]:
    labels = np.array([it.label for it in chunk], dtype=np.int64)
    seeds = np.array([it.seed for it in chunk], dtype=np.int64)
    names = tuple(train.class_names)
    opts = dict(recipe.generation.options)
    if recipe.generation.kind == "transfer":
        sources = gather(train, [it.source for it in chunk])
        request = GenerationRequest("transfer", labels, seeds, sources=sources, class_names=names, options=opts)
    elif recipe.generation.kind == "complete":
        sources = gather(train, [it.source for it in chunk])
        mask = completion_mask(recipe.generation.mask, sources, seeds)
        request = GenerationRequest("complete", labels, seeds, sources=sources, mask=mask, class_names=names,
                                    options=opts)
    else:
        sources = None
        request = GenerationRequest("sample", labels, seeds, class_names=names, options=opts)
    cands = generator.generate(request)
    if len(cands) != len(chunk):
        raise PluginError(f"generator {recipe.generator.name!r} returned {len(cands)} candidates for "
                          f"{len(chunk)} requests")
    batch = cands.batch.to_numpy()
    if batch.labels is None or not np.array_equal(np.asarray(batch.labels), labels):
        raise PluginError(f"generator {recipe.generator.name!r} must label its candidates with the requested labels")
    if not batch.class_names:
        batch = attrs.evolve(batch, class_names=names)
    cands = attrs.evolve(cands, batch=batch)
    return cands, sources, chain.score(batch, sources, refused=cands.refused)


def completion_mask(spec: Mapping[str, Any], sources: ECGBatch, seeds: np.ndarray) -> np.ndarray:
    """The known-part mask (True = known) of each source for a ``[generation] mask`` table.

    Tasks: ``forecast`` (the last ``horizon_s`` seconds unknown), ``gap`` (one contiguous gap of
    ``fraction`` of the window at a seeded position), ``random_gaps`` (``fraction`` of the window in
    chunks of ``chunk_s`` at seeded positions), ``leads`` (the ``missing`` leads unknown). Positions
    depend only on each sample's seed.
    """
    n, n_leads, n_samples = sources.signals.shape
    mask = np.ones((n, n_leads, n_samples), dtype=bool)
    task = spec["task"]
    if task == "forecast":
        h = int(round(float(spec["horizon_s"]) * sources.fs))
        if not 0 < h < n_samples:
            raise RecipeError(f"generation.mask.horizon_s = {spec['horizon_s']} leaves nothing known or nothing "
                              f"to forecast in {n_samples / sources.fs:g} s windows")
        mask[..., n_samples - h:] = False
    elif task == "gap":
        length = max(1, int(round(float(spec["fraction"]) * n_samples)))
        for i, seed in enumerate(seeds):
            start = int(numpy_rng(int(seed), Stream.PIPELINE_MASK).integers(0, n_samples - length + 1))
            mask[i, :, start:start + length] = False
    elif task == "random_gaps":
        chunk = max(1, int(round(float(spec["chunk_s"]) * sources.fs)))
        n_chunks = n_samples // chunk
        k = int(round(float(spec["fraction"]) * n_chunks))
        if not 0 < k < n_chunks:
            raise RecipeError(f"generation.mask: fraction {spec['fraction']} of {n_chunks} chunks of "
                              f"{spec['chunk_s']} s hides {k} chunks; choose values that hide some but not all")
        for i, seed in enumerate(seeds):
            for c in numpy_rng(int(seed), Stream.PIPELINE_MASK).permutation(n_chunks)[:k]:
                mask[i, :, c * chunk:(c + 1) * chunk] = False
    else:  # leads
        missing = [str(x) for x in spec["missing"]]
        absent = [x for x in missing if x not in sources.leads]
        if absent or len(missing) >= n_leads:
            raise RecipeError(f"generation.mask.missing = {missing}: the data has leads {list(sources.leads)}; "
                              "name some (not all) of them")
        for lead in missing:
            mask[:, sources.leads.index(lead), :] = False
    return mask


def _manifest_row(item: WorkItem, cands: Any, res: ChainResult, i: int, sources: ECGBatch | None) -> dict[str, Any]:
    info = cands.info
    return {
        "key": item.unit, "attempt": item.attempt, "seed": int(cands.seeds[i]),
        "source_id": None if sources is None else sources.ids[i],
        "source_label": None if sources is None
        else sources.class_names[int(sources.require_labels("a bank manifest row's source_label")[i])],
        "target": cands.batch.class_names[int(cands.batch.labels[i])],
        "generator": {"name": info.name, "version": info.version, "checkpoint_sha256": info.checkpoint_sha256,
                      "params": dict(info.params),
                      "trained_against": None if info.trained_against is None
                      else [j.to_dict() for j in info.trained_against]},
        **res.sample_record(i),
    }


# --------------------------------------------------------------------------------------------
# evaluation and report
# --------------------------------------------------------------------------------------------
def evaluate_bank(recipe: Recipe, registry: Registry, data: RunData, bank_path: Path, eval_dir: Path,
                  device: str, progress: bool) -> dict[str, Path]:
    """Run every ``[[evaluators]]`` entry on (real, bank) and write eval/NAME.json."""
    if not (Path(bank_path) / BANK_META).exists():
        raise DataError(f"cannot evaluate: there is no bank at {bank_path}; run the generate stage first")
    bank = Bank.open(bank_path, verify="full")  # a corrupt bank is a BankError naming the file
    if len(bank) == 0:
        raise DataError(f"the bank at {bank_path} is empty: nothing was accepted, so there is nothing to evaluate")
    real_ds = as_windows(data.test if data.test is not None else data.train)
    train = as_windows(data.train)
    dependent, known = run_judges(recipe, bank)
    external = load_external_sets(recipe, registry, run_data=data)
    train_batch = gather(train, np.arange(len(train))) if data.test is not None else None
    for ref in dependent:
        _log.info(f"[evaluate] judge used in this run's making: {ref.classifier} ({ref.role})")
    if not known:
        _log.info("[evaluate] the generator does not declare which judges it trained against: no judge can be shown "
            "to be independent")
    out: dict[str, Path] = {}
    for i, spec in enumerate(recipe.evaluators):
        ev = _create(registry, "evaluator", spec.name, spec.params, device)
        rng = numpy_rng(recipe.run.seed, Stream.PIPELINE_EVALUATOR, i)
        syn_idx = _subset(len(bank), spec.max_samples, rng)
        real_idx = _subset(len(real_ds), spec.max_samples, rng)
        sources = _sources_of(bank, syn_idx, train)
        synthetic = _with_lineage(bank.batch(syn_idx), sources)
        real = gather(real_ds, real_idx)
        _log.info(f"[evaluate] {spec.name}: {len(real)} real vs {len(synthetic)} synthetic")
        key = result_key(recipe, i)
        ctx = EvalContext(seed=recipe.run.seed, device=device, workdir=eval_dir / key, progress=progress,
                          train=train_batch, external=external, dependent_judges=dependent, provenance_known=known)
        result = ev.evaluate(real, synthetic, sources=sources, context=ctx)
        if not isinstance(result, EvaluationResult):
            raise PluginError(f"evaluator {spec.name!r} returned {type(result).__name__}, not an EvaluationResult")
        path = eval_dir / f"{key}.json"
        atomic.write_text(path, result.to_json(indent=1))
        out[key] = path
    return out


def result_key(recipe: Recipe, i: int) -> str:
    """File name of evaluator i's result: its name, or ``name-<k>`` for the k-th repeat of a name
    (two fidelity evaluators with different judges must not overwrite each other)."""
    names = [e.name for e in recipe.evaluators]
    k = names[:i].count(names[i])
    return names[i] if k == 0 else f"{names[i]}-{k + 1}"


def run_judges(recipe: Recipe, bank: Bank) -> tuple[tuple[JudgeRef, ...], bool]:
    """Judges used in making the bank: what its generators trained against, and filters' judges.

    A filter uses a judge when its parameters name a classifier (``judge`` or ``classifier``, with
    ``judge_params`` / ``classifier_params``). Returns (judges, whether every generator declared its own).
    """
    refs: list[JudgeRef] = []
    known = True
    seen: set[str] = set()
    for row in bank.rows(np.arange(len(bank))):
        gen = row.get("generator") or {}
        tag = json.dumps(gen.get("trained_against"), sort_keys=True)
        if tag in seen:
            continue
        seen.add(tag)
        if gen.get("trained_against") is None:
            known = False
        else:
            refs += [JudgeRef.from_dict(d) for d in gen["trained_against"]]
    for spec in recipe.filters:
        for key in ("judge", "classifier"):
            name = spec.params.get(key)
            if isinstance(name, str):
                refs.append(judge_ref(name, spec.params.get(f"{key}_params", {}), role=f"filter {spec.name}"))
    return tuple(dict.fromkeys(refs)), known


def _with_lineage(synthetic: ECGBatch, sources: ECGBatch | None) -> ECGBatch:
    """Synthetic ECGs labelled with their source's id and patient, so evaluators can keep a patient's
    real and synthetic ECGs on the same side of every split (no source leakage)."""
    if sources is None:
        return synthetic
    meta = dict(synthetic.meta, source_id=np.asarray(sources.ids, dtype=object))
    for key in ("patient_id", "patient"):
        if key in sources.meta:
            meta["patient_id"] = np.asarray(sources.meta[key]).astype(str)
            break
    return attrs.evolve(synthetic, meta=meta)


def _sources_of(bank: Bank, syn_idx: np.ndarray, train: Any) -> ECGBatch | None:
    """The source ECG of each synthetic sample (transfer banks), aligned with the synthetic batch."""
    rows = bank.rows(syn_idx)
    if not rows or any(r.get("source_id") is None for r in rows):
        return None
    pos = {k: j for j, k in enumerate(_ids(train))}
    missing = [r["source_id"] for r in rows if r["source_id"] not in pos]
    if missing:
        return None  # the bank came from other data; evaluators then work without sources
    return gather(train, [pos[r["source_id"]] for r in rows])


def write_report(recipe: Recipe, out: Path, record: Mapping[str, Any], evaluations: Mapping[str, Path],
                 data: RunData | None = None) -> Path:
    """summary.json + summary.md always; report.html + report.json through augframe.report.write_report.

    The HTML report gets the generation statistics as a "generation" result, every evaluator's
    result, and up to six source / synthetic pairs from the bank drawn as ECG strips.
    """
    results = [EvaluationResult.from_dict(json.loads(path.read_text())) for path in evaluations.values()]
    metrics = {r.name: {"metrics": dict(r.metrics), "scale": r.scale, "notes": list(r.notes)} for r in results}
    summary = {"title": recipe.report.title or recipe.run.name, "run": dict(record), "evaluations": metrics}
    atomic.write_json(out / "summary.json", summary)
    atomic.write_text(out / "summary.md", _report_markdown(summary))
    path = out / "summary.md"
    if recipe.report.html:
        try:
            from augframe.report import write_report as render
        except ImportError:
            _log.info("[report] augframe.report is not available: wrote summary.json and summary.md only")
        else:
            gen = _generation_result(record)
            prov = record.get("provenance")
            made_by = generators_text(prov) if prov else recipe.generator.name
            pairs = _report_pairs(out / "bank", data)
            meta = {"run": recipe.run.name, "seed": recipe.run.seed, "device": record.get("device"),
                    "recipe": recipe.path or "", "generator": made_by,
                    **{f"data.{k}": v for k, v in record.get("data", {}).items()
                       if isinstance(v, (str, int, float, list)) or v is None}}
            subtitle = f"{len(results)} evaluator(s) · generator {made_by} · seed {recipe.run.seed}"
            shown = ([gen] if gen else []) + results + ([provenance_result(prov)] if prov else [])
            path = Path(render(shown, out, pairs=pairs, meta=meta, subtitle=subtitle,
                               title=recipe.report.title or f"augframe run {recipe.run.name}"))
    _log.info(f"[report] {path}")
    return path


def _generation_result(record: Mapping[str, Any]) -> EvaluationResult | None:
    from augframe.protocols import Table

    per = record.get("generation", {}).get("per_target", {})
    if not per:
        return None
    rows, metrics = [], {}
    for tag, s in per.items():
        filters = ", ".join(f"{k} {v:.0%}" for k, v in s.get("per_filter_acceptance", {}).items())
        rows.append((tag, s.get("wanted"), s["accepted_total"], s["accepted_now"], s["candidates"],
                     acceptance_text(s), filters or "-"))
        metrics[f"{tag}.in_bank"] = float(s["accepted_total"])
        if s["acceptance"] is not None:
            metrics[f"{tag}.acceptance"] = float(s["acceptance"])
    table = Table(("target", "wanted", "in bank", "new (this run)", "candidates (this run)", "acceptance (this run)",
                   "per filter (this run)"), rows,
                  caption="Candidates made, filtered and banked per direction / label; a target an earlier run "
                          "finished makes none in this one")
    total = sum(int(s["accepted_total"]) for s in per.values())
    return EvaluationResult("generation", metrics, {"generation": table}, scale=f"{total} synthetic ECGs in the bank")


def acceptance_text(s: Mapping[str, Any]) -> str:
    """This run's acceptance, or, for a target an earlier run finished, that it made nothing now."""
    if s["acceptance"] is not None:
        return f"{float(s['acceptance']):.1%}"
    earlier = s.get("earlier") or {}
    if earlier.get("acceptance") is None:
        return "- (nothing made)"
    return f"- (complete in an earlier run: {earlier['candidates']} candidates, {float(earlier['acceptance']):.1%})"


def _report_pairs(bank_path: Path, data: RunData | None, per_tag: int = 3) -> tuple[ECGBatch, ECGBatch] | None:
    """Up to ``per_tag`` (source, synthetic) pairs per direction, for the report's ECG strips."""
    if data is None or not (bank_path / "bank.json").exists():
        return None
    bank = Bank.open(bank_path, verify="none")
    by_tag: dict[str, list[int]] = {}
    for i, key in enumerate(bank.keys):
        by_tag.setdefault(key.split(":", 1)[0], []).append(i)
    idx = np.array(sorted(i for ids in by_tag.values() for i in ids[:per_tag]), dtype=np.int64)
    if not len(idx):
        return None
    sources = _sources_of(bank, idx, as_windows(data.train))
    return None if sources is None else (sources, bank.batch(idx))


def _report_markdown(summary: Mapping[str, Any]) -> str:
    run = summary["run"]
    lines = [f"# {summary['title']}", "", f"seed {run['seed']}, device {run['device']}, "
             f"augframe {run['versions'].get('augframe')}", ""]
    data = run.get("data", {})
    if data:
        lines += [f"Data: {data.get('train')} training windows ({data.get('test')} test), fs {data.get('fs')} Hz, "
                  f"leads {data.get('leads')}, classes {data.get('class_names')}", ""]
    gen = run.get("generation", {}).get("per_target", {})
    if gen:
        lines += ["| target | wanted | in bank | new (this run) | candidates (this run) | acceptance (this run) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {t} | {s['wanted']} | {s['accepted_total']} | {s['accepted_now']} | {s['candidates']} | "
                  f"{acceptance_text(s)} |" for t, s in gen.items()]
        lines.append("")
    lines += provenance_markdown(run.get("provenance") or {})
    for name, ev in summary["evaluations"].items():
        lines.append(f"## {name}" + (f" (scale: {ev['scale']})" if ev["scale"] else ""))
        lines += [f"- {k}: {v:.4g}" if isinstance(v, (int, float)) else f"- {k}: {v}" for k, v in ev["metrics"].items()]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _accepts(registry: Registry, kind: str, name: str, param: str) -> bool:
    try:
        sig = inspect.signature(registry.get(kind, name).factory)
    except (TypeError, ValueError):
        return False
    return param in sig.parameters


def _with_device(registry: Registry, kind: str, name: str, params: Mapping[str, Any], device: str | None,
                 train: Any = None, all_windows: Any = None) -> dict[str, Any]:
    """Run context for factories that take it and that the recipe left unset: the run's ``device``,
    and (for filters such as ``near-copy``) the run's training windows as ``train`` and every window of
    its data as ``all_windows``."""
    params = dict(params)
    for key, value in (("device", device), ("train", train), ("all_windows", all_windows)):
        if key not in KINDS[kind].run_context:
            continue
        if value is not None and key not in params and _accepts(registry, kind, name, key):
            params[key] = value
    return params


def _create(registry: Registry, kind: str, name: str, params: Mapping[str, Any], device: str | None) -> Any:
    return registry.create(kind, name, _with_device(registry, kind, name, params, device))


def _units(data: Any) -> str:
    """The physical unit of a window dataset's values ('mV' unless it says otherwise)."""
    return str(getattr(data, "units", None) or getattr(getattr(data, "batch", None), "units", None) or "mV")


def _ids(data: Any) -> list[str]:
    ids = getattr(data, "ids", None)
    return [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(data))]


def _n_samples(data: Any) -> int:
    if isinstance(data, ArrayWindows):
        return data.batch.n_samples
    return int(np.asarray(data[0][0]).shape[-1])


def _name_seed(seed: int, name: str) -> int:
    return int(derive_seeds(seed, 1, offset=zlib.crc32(name.encode()))[0])


def _subset(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(rng.permutation(n)[:cap])


def _hint(name: str, valid: Sequence[str]) -> str:
    from augframe.errors import suggest

    return suggest(name, valid)



def _plugin_table(registry: Registry) -> list[dict[str, Any]]:
    return [{"name": p.name, "version": p.version, "provides": [list(x) for x in p.provides], "error": p.error}
            for p in registry.plugins()]


class _Timer:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, name: str) -> Any:
        timer = self

        class _Ctx:
            def __enter__(self) -> None:
                self.t = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                timer.into[name] = round(time.perf_counter() - self.t, 3)

        return _Ctx()
