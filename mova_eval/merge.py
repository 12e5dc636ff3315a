"""``mova-eval merge``: join the run directories of static shards (``suite.shard=I/N``) into one run directory.

Each shard is an ordinary run of part of the suite (see :func:`mova_eval.suites.shard_of`), e.g. one task of a Slurm
array. Merging checks that the shards are one experiment — the same configuration apart from ``suite.shard`` (and
``run_id``, ``output_dir`` and the runtime knobs, of which only ``runtime.bootstrap`` must agree, since it changes
the CIs), every shard index 0…N-1 present once, the same metrics available — and that together they cover the
suite's requests (item × seed; with ``seeds=all`` each item's seeds as its own shard listed them in run.json
``samples``) exactly once. It then writes run.json, items.parquet, features.parquet and
summary.parquet as a single run of the unsharded configuration writes them: the rows are the shards' rows (with the
merged ``run_id``), and the summary is recomputed from them by the runner's own :func:`~mova_eval.runner.aggregate_rows`
and :func:`~mova_eval.runner.write_results` — set-level metrics (FVD, FAD, IS) from the features cache, through the
cache keys in the shards' features.parquet, so that cache (``runtime.cache_dir``) must be readable where merge runs.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, ResultsError
from mova_eval.results import ItemLog, RunLock, RunLog, ScoredRows, now, read_run_json

if TYPE_CHECKING:
    from mova_eval.runner import RunOutcome

#: config keys that may differ between the shards of one experiment (runtime knobs do not change results)
_FREE_KEYS = ("run_id", "output_dir", "runtime")


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in _FREE_KEYS}
    if isinstance(out.get("suite"), dict):
        out["suite"].pop("shard", None)
    return out


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} vs {b!r}"]


def _request_key(request_id: str) -> tuple[str, int] | None:
    item, sep, seed = request_id.rpartition("#s")
    try:
        return (item, int(seed)) if sep else None
    except ValueError:
        return None


def merge_runs(run_dirs: Sequence[str | Path], out: str | Path) -> RunOutcome:
    """Merge shard run directories into ``out`` (a new run directory; its name is the merged ``run_id``).
    Returns the :class:`~mova_eval.runner.RunOutcome`. Refuses (ConfigError / ResultsError naming the directories)
    shards that are not one experiment, a shard missing or given twice, an unfinished shard, or an ``out`` that
    already holds a run."""
    from mova_eval import references, runner
    from mova_eval.metrics.base import Metric, SetLevelMetric
    from mova_eval.registry import get_metric_class, use_plugins
    from mova_eval.suites import load_suite, parse_shard, shard_of

    started = time.perf_counter()
    dirs = [Path(d).expanduser() for d in run_dirs]
    if not dirs:
        raise ConfigError("merge needs at least one shard run directory")
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise ConfigError(f"merge: a run directory is named twice in {[str(d) for d in dirs]}")
    out = Path(out).expanduser()
    if (out / "run.json").exists():
        raise ConfigError(f"merge --out {out}: already holds a run (run.json); choose a new directory")
    logs: list[RunLog] = []
    for d in dirs:
        log = read_run_json(d)
        if log.status == "running" or log.finished is None:
            raise ResultsError(d, "is not a finished run (status running): finish or resume that shard first")
        logs.append(log)

    # one experiment: the same configuration apart from the shard and the runtime knobs
    base, first = _comparable(logs[0].config), dirs[0]
    for d, log in zip(dirs[1:], logs[1:]):
        diff = _differences(base, _comparable(log.config))
        if diff:
            raise ConfigError(f"merge: {d} and {first} are not shards of one configuration (besides suite.shard): "
                              + "; ".join(diff[:5]) + (f" (+{len(diff) - 5} more)" if len(diff) > 5 else ""))
    boots = {int((log.config.get("runtime") or {}).get("bootstrap", 1000)) for log in logs}
    if len(boots) != 1:
        raise ConfigError(f"merge: the shards used different runtime.bootstrap values {sorted(boots)}")
    available = [sorted(m.name for m in log.metrics if m.available) for log in logs]
    for d, av in zip(dirs[1:], available[1:]):
        if av != available[0]:
            raise ConfigError(f"merge: {d} ran metrics {av} but {first} ran {available[0]} (the shards ran in "
                              "different environments); re-run the shard where the same metrics can run")

    # every shard index once
    shards: dict[int, Path] = {}
    count: int | None = None
    for d, log in zip(dirs, logs):
        spec = parse_shard((log.config.get("suite") or {}).get("shard"))
        if spec is None:
            raise ConfigError(f"merge: {d} was not run with suite.shard=I/N (it is a whole run, not a shard)")
        index, n = spec
        if count is not None and n != count:
            raise ConfigError(f"merge: {d} is shard {index}/{n} but {shards[min(shards)]} is one of {count} shards")
        count = n
        if index in shards:
            raise ConfigError(f"merge: shard {index}/{n} is given twice: {shards[index]} and {d}")
        shards[index] = d
    assert count is not None  # dirs is not empty (checked above), and every shard set it
    missing_shards = sorted(set(range(count)) - set(shards))
    if missing_shards:
        raise ConfigError(f"merge: shard(s) {', '.join(f'{i}/{count}' for i in missing_shards)} missing "
                          f"(given: {', '.join(f'{i}/{count} = {p}' for i, p in sorted(shards.items()))})")

    # the merged run: the unsharded configuration, named by the output folder
    cfg = copy.deepcopy(logs[0].config)
    cfg["suite"]["shard"] = None
    cfg["run_id"], cfg["output_dir"] = out.name, str(out.parent)
    rt = cfg.get("runtime") or {}
    context = RunContext.from_config(rt, device="cpu")  # compute() needs features, not the models
    suite = load_suite(cfg["suite"])
    use_plugins(cfg.get("plugins"))  # the shards' package.module:ClassName metrics, for their set-level stage
    seeds = runner.parse_seeds(cfg.get("seeds"))
    owner = shard_of(suite.items, count)
    samples: dict[str, list[int]] = {}  # seeds=all: each item's seeds, as its own shard listed them
    if seeds == runner.SEEDS_ALL:
        for i, d in sorted(shards.items()):
            log = logs[dirs.index(d)]
            stray_items = sorted(k for k in log.samples if owner.get(k) != i)
            if stray_items:
                raise ResultsError(d, f"lists samples (seeds=all) for items that are not in shard {i}/{count}: "
                                      f"{', '.join(stray_items[:5])}")
            samples.update(log.samples)
        unlisted = [it.id for it in suite.items if it.id not in samples]
        if unlisted:
            raise ResultsError(out, f"the shards do not cover the suite: {len(unlisted)} item(s) have no samples "
                                    f"listed (seeds=all), e.g. {unlisted[0]} (shard {owner[unlisted[0]]}/{count}: "
                                    f"{shards[owner[unlisted[0]]]})")
        samples = {it.id: list(samples[it.id]) for it in suite.items}  # suite order, as a single run writes it
        expected = {(k, s) for k, ss in samples.items() for s in ss}
    else:
        expected = {(it.id, s) for it in suite.items for s in seeds}

    # the suite's requests exactly once
    rows = ScoredRows()
    covered: dict[tuple[str, int], Path] = {}
    generation: dict[str, dict[str, Any]] = {}
    for d, log in zip(dirs, logs):
        shard_rows = ItemLog(d).load()
        mine = {k for k in map(_request_key, log.generation) if k is not None} | shard_rows.done_requests()
        stray = sorted(mine - expected)
        if stray:
            raise ResultsError(d, f"holds requests that are not in the suite {suite.name!r}: "
                                  f"{', '.join(f'{i}#s{s}' for i, s in stray[:5])}")
        for key in sorted(mine):
            if key in covered:
                raise ResultsError(d, f"request {key[0]}#s{key[1]} is also in {covered[key]} (an item may be in "
                                      "one shard only)")
            covered[key] = d
        rows.items += [replace(r, run_id=cfg["run_id"]) for r in shard_rows.items]
        rows.features += [replace(r, run_id=cfg["run_id"]) for r in shard_rows.features]
        generation.update(log.generation)
    missing = sorted(expected - set(covered))
    if missing:
        shown = ", ".join(f"{i}#s{s} (shard {owner[i]}/{count}: {shards[owner[i]]})" for i, s in missing[:5])
        raise ResultsError(out, f"the shards do not cover the suite: {len(missing)} request(s) missing, e.g. {shown}")

    # set-level metrics are recomputed from the cached features: refuse a cache that does not hold them (a shard's
    # cache that is not shared with this machine) rather than report those items as excluded
    from mova_eval.cache import Cache

    feature_cache = Cache("features", enabled=True, context=context)
    absent = [r for r in rows.features
              if r.error is None and r.cache_key and not feature_cache.path(r.cache_key).is_file()]
    if absent:
        raise ResultsError(context.cache_root, f"the features of {len(absent)} item(s) recorded by the shards are not in this "
                                         f"cache (e.g. {absent[0].extractor} of {absent[0].item_id}); set-level metrics "
                                         "need the shards' cache: share runtime.cache_dir (or $MOVA_EVAL_CACHE) with "
                                         "the machine that merges")

    # the summary, as a single run computes it
    settings = runner.RunSettings.from_config(rt)
    mcfg = references.with_suite_references(cfg.get("metrics", {}), suite)
    options = mcfg.get("options") or {}
    set_metrics: list[Metric] = []
    for name in [m.name for m in logs[0].metrics if m.available]:  # the order a single run loads them in
        cls = get_metric_class(name)
        if issubclass(cls, SetLevelMetric):
            set_metrics.append(cls(options.get(name, {}), device=context.device, context=context))
    summary = runner.aggregate_rows(rows, suite, set_metrics, cfg["generator"]["name"], settings.bootstrap, context)

    from mova_eval.suites import summarize

    only = set((cfg.get("metrics") or {}).get("only") or ())
    failed_requested = {m.name: m.reason + (f" — fix: {m.command}" if m.command else "")
                        for m in logs[0].metrics if not m.available and m.name in only}
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out).acquire()
    try:
        log = RunLog(run_id=cfg["run_id"], created=now(), config=cfg, config_hash=runner.config_hash(cfg),
                     suite={"name": suite.name, "version": suite.version, "source": suite.source, **summarize(suite)},
                     generator=dict(logs[0].generator), model=logs[0].model, metrics=logs[0].metrics,
                     packages=logs[0].packages, git_revision=logs[0].git_revision, python=logs[0].python,
                     platform=logs[0].platform, device=logs[0].device, generation=generation,
                     merged_from=[str(p.resolve()) for _, p in sorted(shards.items())], samples=samples)
        log.timings = {"merge": round(time.perf_counter() - started, 3),
                       **{f"shard{i}.total": float(logs[dirs.index(p)].timings.get("total", 0.0))
                          for i, p in sorted(shards.items())}}
        resumed = sum(int(lg.counts.get("resumed_rows", 0)) for lg in logs)
        items, feats = runner.write_results(ItemLog(out), log, rows, summary, settings, failed_requested,
                                            n_items=len(suite), resumed_rows=resumed)
    finally:
        lock.release()
    return runner.RunOutcome(out, log, items, feats)
