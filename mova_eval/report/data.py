"""What a report is built from: the summary records of every model on every suite, with the provenance of the runs
behind them.

Runs are grouped by (suite, model label): two runs with the same label and suite are one model. When a model has
several run directories their item rows are merged (a later run's row replaces an earlier one for the same item,
seed and metric output — a rerun supersedes) and the per-item summaries are recomputed over the union; a set-level
metric (IS, FVD, FAD) cannot be recomputed without its features, so it is taken from the latest run that has it and
the record's note says so. Exported summary files carry no items: they only fill in metric outputs the run
directories lack, and among several files the one named last wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from mova_eval.summary import ALL, SummaryRecord, read_records, resolve_sources


@dataclass(frozen=True)
class MetricState:
    """Whether a run considered a metric family, could run it, and with which options and weights."""

    available: bool
    reason: str = ""
    command: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    version: str = ""


@dataclass(frozen=True)
class RunInfo:
    """The provenance of one run, as a report shows it."""

    run_id: str
    path: str
    suite: str
    model: str
    generator: str
    status: str = ""
    created: str = ""
    finished: str | None = None
    config_hash: str = ""
    git_revision: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    device: str = ""
    suite_source: str = ""
    generator_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricState] = field(default_factory=dict)
    from_summary_file: bool = False

    @property
    def weights(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for st in self.metrics.values():
            out.update(st.weights)
        return out


@dataclass
class ModelRuns:
    """One model (label) on one suite: its summary records and the runs they come from."""

    suite: str
    model: str
    runs: list[RunInfo]
    records: list[SummaryRecord]
    items: pd.DataFrame | None = None      # merged item rows (None when built from summary files only)
    warnings: list[str] = field(default_factory=list)
    _index: dict[tuple[str, str, str], SummaryRecord] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {(r.metric, r.category, r.language): r for r in self.records}

    def get(self, metric: str, category: str = ALL, language: str = ALL) -> SummaryRecord | None:
        return self._index.get((metric, category, language))

    def metrics(self) -> list[tuple[str, str]]:
        """(family, metric) of every output with an ``all`` × ``all`` record, in family/metric order."""
        return sorted({(r.family, r.metric) for r in self.records if r.category == ALL and r.language == ALL})

    def categories(self, metric: str) -> list[str]:
        return list(dict.fromkeys(r.category for r in self.records
                                  if r.metric == metric and r.category != ALL and r.language == ALL))

    def languages(self, metric: str) -> list[str]:
        return list(dict.fromkeys(r.language for r in self.records
                                  if r.metric == metric and r.language != ALL and r.category == ALL))

    def metric_state(self, family: str) -> MetricState | None:
        """The latest run's view of a metric family (None when no run considered it)."""
        for run in reversed(self.runs):
            if family in run.metrics:
                return run.metrics[family]
        return None


@dataclass
class ReportData:
    models: list[ModelRuns]

    def suites(self) -> list[str]:
        return list(dict.fromkeys(m.suite for m in self.models))

    def labels(self) -> list[str]:
        return list(dict.fromkeys(m.model for m in self.models))

    def find(self, suite: str, model: str) -> ModelRuns | None:
        for m in self.models:
            if m.suite == suite and m.model == model:
                return m
        return None

    def in_suite(self, suite: str) -> list[ModelRuns]:
        return [m for m in self.models if m.suite == suite]


def _run_info(run_dir: Path) -> RunInfo:
    from mova_eval.results import read_run_json

    log = read_run_json(run_dir)
    metrics = {m.name: MetricState(m.available, m.reason, m.command, dict(m.options), dict(m.weights), m.version)
               for m in log.metrics}
    gen = dict(log.generator)
    return RunInfo(run_id=log.run_id, path=str(run_dir), suite=str(log.suite.get("name", "")),
                   model=log.model or str(gen.get("label") or gen.get("name", "")), generator=str(gen.get("name", "")),
                   status=log.status, created=log.created, finished=log.finished, config_hash=log.config_hash,
                   git_revision=log.git_revision, packages=dict(log.packages), device=log.device,
                   suite_source=str(log.suite.get("source", "")), generator_config=gen, metrics=metrics)


def _file_info(path: Path, records: list[SummaryRecord]) -> list[RunInfo]:
    seen: dict[tuple[str, str, str], RunInfo] = {}
    for r in records:
        key = (r.run_id, r.suite, r.model)
        if key not in seen:
            seen[key] = RunInfo(run_id=r.run_id, path=str(path), suite=r.suite, model=r.model,
                                generator=r.generator, config_hash=r.config_hash, from_summary_file=True)
    return list(seen.values())


def _merge_runs(suite: str, model: str, dirs: list[Path]) -> ModelRuns:
    """Several run directories of one model: merge items (later runs win) and recompute the summaries."""
    from mova_eval.results import load_features, load_runs, read_run_json

    logs = sorted(((read_run_json(d), d) for d in dirs), key=lambda t: (t[0].created, t[0].run_id))
    infos = [_run_info(d) for _, d in logs]
    frames = []
    for order, (_log, d) in enumerate(logs):
        f = load_runs(d)
        f["_order"] = order
        frames.append(f)
    items = pd.concat(frames, ignore_index=True)
    items = (items.sort_values("_order", kind="stable")
             .drop_duplicates(["item_id", "seed", "family", "metric"], keep="last")
             .drop(columns="_order").reset_index(drop=True))
    latest = logs[-1][0]
    n_boot = int((latest.config.get("runtime") or {}).get("bootstrap", 1000))
    run_ids = "+".join(log.run_id for log, _ in logs)
    gens = "+".join(dict.fromkeys(str(log.generator.get("name", "")) for log, _ in logs))
    from mova_eval.summary import OutputMeta, set_level_records, summarize_items

    fallback = {r.metric: OutputMeta(r.direction, r.unit, r.aggregation) for log, _ in logs for r in log.summary}
    records = summarize_items(items, run_id=run_ids, suite=suite, model=model, generator=gens,
                              config_hash="+".join(dict.fromkeys(log.config_hash for log, _ in logs)),
                              n_boot=n_boot, fallback=fallback)
    have = {r.metric for r in records}
    for log, d in reversed(logs):  # set-level metrics: the latest run that computed them
        recs = set_level_records(log.summary, load_features(d), run_id=log.run_id, suite=suite, model=model,
                                 generator=str(log.generator.get("name", "")), config_hash=log.config_hash)
        new = [r for r in recs if r.metric not in have]
        for r in new:
            note = f"from run {log.run_id} only (a set-level value is not recomputed over merged runs)"
            records.append(SummaryRecord(**{**r.__dict__, "note": "; ".join(x for x in (r.note, note) if x)}))
        have |= {r.metric for r in new}
    warnings = []
    hashes = dict.fromkeys(log.config_hash for log, _ in logs)
    if len(hashes) > 1:
        warnings.append(f"{model} on {suite} merges runs made with different configurations "
                        f"({', '.join(f'{log.run_id}: {log.config_hash}' for log, _ in logs)}); give each "
                        f"configuration its own generator.label if they are different models")
    return ModelRuns(suite, model, infos, records, items, warnings)


def load_report_data(paths: Iterable[str | Path]) -> ReportData:
    """Read every run directory / summary file named by ``paths`` and group them into models."""
    sources = resolve_sources(paths)
    dirs: dict[tuple[str, str], list[Path]] = {}
    files: dict[tuple[str, str], list[tuple[Path, list[SummaryRecord]]]] = {}
    order: list[tuple[str, str]] = []
    for src in sources:
        if src.is_dir():
            info = _run_info(src)
            key = (info.suite, info.model)
            dirs.setdefault(key, []).append(src)
        else:
            recs = read_records(src)
            for key in dict.fromkeys((r.suite, r.model) for r in recs):
                files.setdefault(key, []).append((src, [r for r in recs if (r.suite, r.model) == key]))
        for key in [*dirs, *files]:
            if key not in order:
                order.append(key)
    models: list[ModelRuns] = []
    for key in order:
        suite, model = key
        run_dirs = dirs.get(key, [])
        if len(run_dirs) > 1:
            mr = _merge_runs(suite, model, run_dirs)
        elif run_dirs:
            d = run_dirs[0]
            from mova_eval.results import load_runs

            mr = ModelRuns(suite, model, [_run_info(d)], read_records(d), load_runs(d))
        else:
            mr = ModelRuns(suite, model, [], [], None)
        from_runs = {r.metric for r in mr.records}
        from_files: dict[str, list[SummaryRecord]] = {}
        for path, recs in files.get(key, []):  # exported summaries: fill in outputs the runs do not have
            for metric in dict.fromkeys(r.metric for r in recs):
                if metric not in from_runs:
                    from_files[metric] = [r for r in recs if r.metric == metric]  # a later file replaces
            mr.runs.extend(_file_info(path, recs))
        for recs in from_files.values():
            mr.records.extend(recs)
        mr.__post_init__()
        models.append(mr)
    return ReportData(models)


__all__ = ["ModelRuns", "ReportData", "RunInfo", "MetricState", "load_report_data"]
