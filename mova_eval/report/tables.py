"""Report tables as data (renderer-independent): the leaderboard, named layouts such as ``mova_table4``, and the
per-set / per-language breakdowns.

A :class:`Cell` is either a value (mean, CI, n, exclusions, the summary record it came from) or "–" with the
reason as a footnote; renderers (Markdown, HTML, LaTeX, CSV, JSON) only format what is here. Best and second-best
per column (by the column's direction) are marked over every row that has a value, published rows included, as the
paper marks bold and underline.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mova_eval.errors import ConfigError
from mova_eval.report.data import ModelRuns, ReportData
from mova_eval.summary import ALL, ExclusionReason, SummaryRecord, describe_exclusions

DASH = "–"
LEADERBOARD = "leaderboard"


@dataclass
class Cell:
    mean: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int | None = None
    excluded: int | None = None
    note: str = ""                       # exclusions by reason, protocol remarks
    footnotes: list[int] = field(default_factory=list)
    rank: int | None = None              # 1 = best in the column, 2 = second
    record: SummaryRecord | None = None

    @property
    def has_value(self) -> bool:
        return math.isfinite(self.mean)

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2 if self.has_ci else math.nan


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    metric: str
    direction: str = "none"
    unit: str = ""
    digits: int | None = None            # fixed decimals (paper tables); None: 4 significant digits
    protocol: str = ""                   # e.g. "set3", "mean of set1, set2, set3"
    suite: str | None = None


@dataclass
class Row:
    label: str
    group: str                            # suite name (leaderboard), "ours" / "published" (layouts)
    cells: dict[str, Cell]
    published: bool = False
    model: str = ""


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)

    def footnote(self, text: str) -> int:
        """The 1-based number of a footnote, added once."""
        if text not in self.footnotes:
            self.footnotes.append(text)
        return self.footnotes.index(text) + 1

    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.rows))


def format_number(x: float, digits: int | None = None) -> str:
    if not math.isfinite(x):
        return DASH
    if digits is not None:
        return f"{x:.{digits}f}"
    return f"{x:.4g}"


def mark_best(table: Table, *, per_group: bool) -> None:
    """rank 1 / 2 on the best and second-best value of every directional column, over every row (a paper table
    with its published rows) or within each group (a leaderboard: models on different suites are not compared).
    Nothing is marked where fewer than two rows have a value."""
    groups = [table.rows] if not per_group else [[r for r in table.rows if r.group == g] for g in table.groups()]
    for col in table.columns:
        if col.direction not in ("higher", "lower"):
            continue
        for rows in groups:
            cells = [r.cells[col.key] for r in rows if col.key in r.cells and r.cells[col.key].has_value]
            values = sorted({c.mean for c in cells}, reverse=col.direction == "higher")
            for c in cells:
                c.rank = None
                if len(cells) < 2:
                    continue
                if c.mean == values[0]:
                    c.rank = 1
                elif len(values) > 1 and c.mean == values[1]:
                    c.rank = 2


def _value_cell(rec: SummaryRecord) -> Cell:
    return Cell(mean=rec.mean, ci_low=rec.ci_low, ci_high=rec.ci_high, n=rec.n, excluded=rec.n_excluded,
                note=describe_exclusions(rec.excluded), record=rec)


def _metric_families() -> dict[str, tuple[str, Any]]:
    """Output name → (family, Output) over every registered metric."""
    from mova_eval.registry import metric_classes

    out = {}
    for fam, cls in metric_classes().items():
        for o in cls.info.outputs:
            out[o.name] = (fam, o)
    return out


def absent_reason(mr: ModelRuns | None, metric: str, suite: str) -> str:
    """Why a model has no record for ``metric`` (a footnote's text)."""
    known = _metric_families()
    if metric not in known:
        return (f"`{metric}` is not a metric of this mova-eval (not implemented yet); the column fills in once a "
                f"metric with that output id is installed")
    family = known[metric][0]
    if mr is None:
        return f"no run of suite `{suite}` for this model (`{metric}` comes from suite {suite})"
    state = mr.metric_state(family)
    if state is None:
        return f"`{family}` was not run (add it: metrics.only=[…,{family}])"
    if not state.available:
        return f"`{family}` could not run: {state.reason}" + (f" (fix: {state.command})" if state.command else "")
    return f"`{metric}` has no summary in the runs of suite {suite}"


# ----------------------------------------------------------------------------------------------- leaderboard


def leaderboard(data: ReportData) -> Table:
    """One row per model (grouped by suite), one column per metric output (its ``all`` value in the metric's own
    aggregation), mean ± CI, n/excl."""
    known = _metric_families()
    keys: dict[str, Column] = {}
    for mr in data.models:
        for _family, metric in mr.metrics():
            if metric in keys:
                continue
            rec = mr.get(metric)
            assert rec is not None, metric  # mr.metrics() lists the metrics of its `all` records
            keys[metric] = Column(key=metric, header=metric, metric=metric, direction=rec.direction, unit=rec.unit,
                                  protocol=rec.aggregation.replace("_", " "))
    order = sorted(keys, key=lambda m: (known.get(m, (m,))[0], m))
    t = Table(LEADERBOARD, "Leaderboard", [keys[k] for k in order], [],
              caption="Each cell: the metric's `all` value in its own aggregation rule, ± half the width of the "
                      "95 % bootstrap CI (resampling prompts; exact bounds in the CSV/JSON), n items / items "
                      "excluded. ↑ higher is better, ↓ lower is better; best in bold, second underlined.")
    for suite in data.suites():
        for mr in data.in_suite(suite):
            cells = {}
            for col in t.columns:
                rec = mr.get(col.metric)
                if rec is None:
                    cells[col.key] = Cell(footnotes=[t.footnote(absent_reason(mr, col.metric, suite))])
                elif not rec.has_value:
                    cells[col.key] = _value_cell(rec)
                    cells[col.key].footnotes.append(t.footnote(f"`{col.metric}` has no value on {suite} "
                                                               f"({mr.model}): {_no_value_reason(rec)}"))
                else:
                    cells[col.key] = _value_cell(rec)
            t.rows.append(Row(mr.model, suite, cells, model=mr.model))
    mark_best(t, per_group=True)
    t.provenance = provenance_lines(data)
    return t


def provenance_lines(data: ReportData) -> list[str]:
    out = []
    for mr in data.models:
        out += [f"Warning: {w}" for w in mr.warnings]
        for run in mr.runs:
            if run.from_summary_file:
                out.append(f"{mr.model} on {mr.suite}: summary file {run.path} (run {run.run_id}, config "
                           f"{run.config_hash or '?'})")
            else:
                out.append(f"{mr.model} on {mr.suite}: run {run.run_id} ({run.generator}, config {run.config_hash}, "
                           f"git {(run.git_revision or 'unknown')[:12]}, mova-eval "
                           f"{run.packages.get('mova-eval', '?')}, {run.status})")
    return out


# ----------------------------------------------------------------------------------------------- layouts


def layout_names() -> list[str]:
    folder = resources.files("mova_eval.report").joinpath("layouts")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_layout(name: str) -> dict[str, Any]:
    names = layout_names()
    if name not in names:
        raise ConfigError(f"unknown table layout {name!r}; known: {', '.join([LEADERBOARD, *names])}")
    text = resources.files("mova_eval.report").joinpath("layouts", f"{name}.yaml").read_text(encoding="utf-8")
    spec: dict[str, Any] = yaml.safe_load(text)
    for i, col in enumerate(spec.get("columns") or []):
        if "metric" not in col or "id" not in col:
            raise ConfigError(f"layout {name}: column {i} needs `id` and `metric`")
        if ("category" in col) == ("over" in col):
            raise ConfigError(f"layout {name}: column {col['id']} needs exactly one of `category` or `over`")
    return spec


def paper_protocols(suite: str) -> dict[str, tuple[str, str]]:
    """Metric output → (category, layout title) for every layout column that reads a single set of ``suite``
    (MOVA Table 4: DNSMOS, LSE-D and LSE-C on Verse-Bench set3) — what the console shows beside ``all``."""
    out: dict[str, tuple[str, str]] = {}
    for name in layout_names():
        spec = load_layout(name)
        for c in spec["columns"]:
            if c.get("suite") == suite and c.get("category", ALL) != ALL:
                out.setdefault(c["metric"], (str(c["category"]), str(spec.get("title", name))))
    return out


def published_dir() -> Path:
    """``$MOVA_EVAL_PUBLISHED``, else ``results/published`` of the source tree this package runs from."""
    env = os.environ.get("MOVA_EVAL_PUBLISHED")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "results" / "published"


def _no_value_reason(*recs: SummaryRecord) -> str:
    """Why summary rows have no value: their exclusions by reason summed ("every item excluded (4 media error)"),
    with any other note; "no items" when there were none."""
    excl: dict[ExclusionReason, int] = {}
    for r in recs:
        for k, v in r.excluded.items():
            excl[k] = excl.get(k, 0) + v
    counts = describe_exclusions(excl)
    notes = []
    for r in recs:  # a record's note starts with its own exclusion counts (summary.py); keep what follows
        own = describe_exclusions(r.excluded)
        rest = r.note[len(own):].lstrip("; ") if own and r.note.startswith(own) else r.note
        if rest and rest not in notes:
            notes.append(rest)
    parts = ([f"every item excluded ({counts})"] if counts else []) + notes
    return "; ".join(parts) or "no items"


def _over_cell(mr: ModelRuns, col: dict[str, Any]) -> tuple[Cell | None, str | None]:
    """The mean of the per-set values; the CI of the run's ``all`` row only when that row is the same statistic."""
    sets = list(col["over"])
    found = [mr.get(col["metric"], s) for s in sets]
    missing = [s for s, r in zip(sets, found) if r is None]
    if missing:
        have = mr.categories(col["metric"])
        return None, (f"`{col['metric']}`: the paper's value is the mean over {', '.join(sets)}, but the run of "
                      f"{mr.suite} has {', '.join(have) or 'no sets'} ({', '.join(missing)} missing)")
    recs = [r for r in found if r is not None]  # every set has its record (none missing)
    empty = [(s, r) for s, r in zip(sets, recs) if not r.has_value]
    if empty:
        why = _no_value_reason(*(r for _, r in empty))
        return None, f"`{col['metric']}` has no value on {', '.join(s for s, _ in empty)} ({mr.model}): {why}"
    mean = sum(r.mean for r in recs) / len(recs)
    cell = Cell(mean=mean, n=sum(r.n for r in recs), excluded=sum(r.n_excluded for r in recs))
    excl: dict[ExclusionReason, int] = {}
    for r in recs:
        for k, v in r.excluded.items():
            excl[k] = excl.get(k, 0) + v
    cell.note = describe_exclusions(excl)
    whole = mr.get(col["metric"])
    if whole is not None and whole.has_value and math.isclose(whole.mean, mean, rel_tol=1e-9, abs_tol=1e-12):
        cell.ci_low, cell.ci_high, cell.record = whole.ci_low, whole.ci_high, whole
    return cell, None


def _options_mismatch(mr: ModelRuns, col: dict[str, Any]) -> str | None:
    want = col.get("options") or {}
    if not want:
        return None
    fam = _metric_families().get(col["metric"], (None,))[0]
    state = mr.metric_state(fam) if fam else None
    if state is None:
        return None
    bad = {k: state.options[k] for k, v in want.items() if k in state.options and state.options[k] != v}
    if bad:
        got = ", ".join(f"{k}={v}" for k, v in bad.items())
        need = ", ".join(f"{k}={v}" for k, v in want.items())
        return f"`{fam}` ran with {got}; the paper's column is {need}"
    return None


def layout_table(data: ReportData, name: str, *, published: bool = False) -> Table:
    """A named layout (``layouts/NAME.yaml``): one row per model label, each cell in the layout's protocol."""
    spec = load_layout(name)
    known = _metric_families()
    cols = []
    for c in spec["columns"]:
        proto = f"{c['category']}" if "category" in c else "mean of " + ", ".join(c["over"])
        direction = c.get("direction") or (known[c["metric"]][1].direction if c["metric"] in known else "none")
        unit = known[c["metric"]][1].unit if c["metric"] in known else ""
        if c.get("scale") is not None:
            unit = c.get("unit", f"{unit} × {c['scale']}")
        cols.append(Column(key=c["id"], header=c.get("header", c["id"]), metric=c["metric"], direction=direction,
                           unit=unit, digits=c.get("digits"), protocol=f"{c['suite']} {proto}", suite=c["suite"]))
    t = Table(name, spec.get("title", name), cols, [], caption=spec.get("caption", ""))
    for model in data.labels():
        cells = {}
        for c, col in zip(spec["columns"], cols):
            mr = data.find(c["suite"], model)
            cell, why = None, None
            if mr is None or mr.get(c["metric"], ALL) is None and not mr.categories(c["metric"]):
                why = absent_reason(mr, c["metric"], c["suite"])
            else:
                why = _options_mismatch(mr, c)
                if why is None:
                    if "over" in c:
                        cell, why = _over_cell(mr, c)
                    else:
                        rec = mr.get(c["metric"], c["category"])
                        if rec is None:
                            have = mr.categories(c["metric"])
                            why = (f"`{c['metric']}`: the paper's value is on {c['category']}, which the run of "
                                   f"{c['suite']} does not have (it has {', '.join(have) or 'no sets'})")
                        elif not rec.has_value:
                            why = f"`{c['metric']}` has no value on {c['category']} ({model}): {_no_value_reason(rec)}"
                        else:
                            cell = _value_cell(rec)
            if cell is not None and c.get("scale") is not None:
                # the paper prints another unit than the metric's (cpCER: MOVA writes percent, Table 4 a fraction)
                k = float(c["scale"])
                cell.mean, cell.ci_low, cell.ci_high = cell.mean * k, cell.ci_low * k, cell.ci_high * k
            if cell is None:
                assert why is not None, c["id"]  # every branch that leaves no cell says why
                cell = Cell(footnotes=[t.footnote(why)])
            cells[col.key] = cell
        t.rows.append(Row(model, "ours", cells, model=model))
    if published:
        add_published(t, spec)
    mark_best(t, per_group=False)
    t.provenance = provenance_lines(data) + ([spec["published"]["provenance"].strip()]
                                             if published and spec.get("published") else [])
    src = spec.get("source")
    if src:
        t.provenance.insert(0, f"Layout: {src}; each column in the paper's protocol (suite, set, aggregation).")
    return t


def add_published(t: Table, spec: dict[str, Any]) -> None:
    pub = spec.get("published")
    if not pub:
        raise ConfigError(f"layout {t.name} has no published rows")
    path = published_dir() / pub["file"]
    if not path.is_file():
        raise ConfigError(f"published table {path} is not there (set MOVA_EVAL_PUBLISHED to the folder holding "
                          f"{pub['file']}, e.g. results/published of a mova-eval checkout)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_col = {c["id"]: c.get("published") for c in spec["columns"]}
    for r in rows:
        label = r[pub.get("model_column", "model")]
        extras = [f"{k}={r[k]}" for k in pub.get("label_columns") or [] if r.get(k)]
        if extras:
            label += f" ({', '.join(extras)})"
        cells = {}
        for col in t.columns:
            raw = (r.get(by_col.get(col.key) or "") or "").strip()
            try:
                cells[col.key] = Cell(mean=float(raw)) if raw else Cell(note="– in the paper")
            except ValueError:
                raise ConfigError(f"{path}: {label}: column {by_col[col.key]} is not a number: {raw!r}") from None
        t.rows.append(Row(label, "published", cells, published=True, model=r[pub.get("model_column", "model")]))


# ----------------------------------------------------------------------------------------------- breakdowns


def breakdown(data: ReportData, metric: str, by: str) -> Table | None:
    """Rows = models (grouped by suite), columns = the metric's categories (``by="category"``) or languages
    (``by="language"``) and ``all``; None when no model has such rows for the metric."""
    t = Table(f"{metric}-by-{by}", f"{metric} by {by}", [], [])
    keys: list[str] = []
    direction, unit = "none", ""
    for mr in data.models:
        ks = mr.categories(metric) if by == "category" else mr.languages(metric)
        keys.extend(k for k in ks if k not in keys)
        rec = mr.get(metric)
        if rec is not None:
            direction, unit = rec.direction, rec.unit
    if not keys:
        return None
    t.columns = [Column(key=k, header=k, metric=metric, direction=direction, unit=unit) for k in [*keys, ALL]]
    for mr in data.models:
        if mr.get(metric) is None:
            continue
        cells = {}
        for k in [*keys, ALL]:
            rec = mr.get(metric, k, ALL) if by == "category" else mr.get(metric, ALL, k)
            if k == ALL:
                rec = mr.get(metric)
            cells[k] = _value_cell(rec) if rec is not None else Cell(note=f"no {by} {k}")
        t.rows.append(Row(mr.model, mr.suite, cells, model=mr.model))
    mark_best(t, per_group=True)
    return t


def breakdowns(data: ReportData, metrics: list[str]) -> list[Table]:
    out = []
    for m in metrics:
        for by in ("category", "language"):
            b = breakdown(data, m, by)
            if b is not None:
                out.append(b)
    return out
