"""The machine-readable summary of runs: ``summary.parquet`` (one row per model × metric × category × language) and
:func:`load_summary`, which reads it back from run directories, globs or exported files.

Each row carries the mean, its bootstrap 95 % CI (resampling prompts), ``n`` (items in the mean) and the items left
out, counted by a typed :class:`ExclusionReason` — never free text, so a report can say "3 missing clips, 1 media
error" and a CI gate can ask for "no more than 5 % missing". The reason is read from the error the runner stored on
each NaN row (``ErrorType: file: problem``): the exception type decides it, through the class hierarchy of
:mod:`mova_eval.errors` (a ``MediaError`` subclass is a media error wherever it was defined).

Groups: the ``all`` × ``all`` row uses the metric's own aggregation rule (MOVA: mean of per-category means; LSE:
pooled; WER: corpus); a category row pools that category's items (corpus metrics stay corpus); a language row
applies the metric's rule to that language's items. Set-level metrics (IS, FVD, FAD) have only the rows the run
computed (category × ``all``), copied from ``run.json``; their exclusions come from ``features.parquet``.
"""
from __future__ import annotations

import glob
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np
import pandas as pd

from mova_eval.errors import MovaEvalError

if TYPE_CHECKING:
    from mova_eval.results import RunLog, SummaryRow

ALL = "all"
SUMMARY_FILE = "summary.parquet"
SUMMARY_SCHEMA = 1


class ExclusionReason(str, Enum):
    """Why an item in a metric's scope has no value."""

    MISSING_CLIP = "missing_clip"                # no clip: absent from the folder, or the generator failed
    NOT_APPLICABLE = "not_applicable"            # the metric had nothing to measure (no face, no audio prompt…)
    UNSUPPORTED_LANGUAGE = "unsupported_language"  # e.g. an English-only ASR model on a Chinese item
    MEDIA_ERROR = "media_error"                  # the clip cannot be decoded, lacks a stream, is too short…
    METRIC_ERROR = "metric_error"                # the metric raised, or gave no value
    METRIC_UNAVAILABLE = "metric_unavailable"    # the metric was asked for but cannot run here (extra, weights)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


REASONS: tuple[ExclusionReason, ...] = tuple(ExclusionReason)


class SummaryFileError(MovaEvalError):
    """A summary file or run directory cannot be read as a summary; names the path and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


def _error_classes() -> dict[str, ExclusionReason]:
    """Exception type name → reason, from the class hierarchy (subclasses defined anywhere in the package)."""
    from mova_eval import errors

    try:  # the metric modules define their own subclasses (ShortClipError is a MediaError …)
        from mova_eval.registry import metric_classes

        metric_classes()
    except Exception:  # a broken optional metric module must not stop a report
        pass
    roots = [(errors.MediaError, ExclusionReason.MEDIA_ERROR), (errors.NotApplicable, ExclusionReason.NOT_APPLICABLE),
             (errors.MetricUnavailable, ExclusionReason.METRIC_UNAVAILABLE),
             (errors.MissingDependencyError, ExclusionReason.METRIC_UNAVAILABLE),
             (errors.WeightsMissingError, ExclusionReason.METRIC_UNAVAILABLE),
             (errors.GenerationError, ExclusionReason.MISSING_CLIP)]
    out: dict[str, ExclusionReason] = {}
    for root, reason in roots:
        stack = [root]
        while stack:
            cls = stack.pop()
            out.setdefault(cls.__name__, reason)
            stack.extend(cls.__subclasses__())
    # The ASR feature's "model cannot transcribe this language" is a language limit, not a metric failure.
    out["EnglishOnlyModel"] = ExclusionReason.UNSUPPORTED_LANGUAGE
    return out


_CLASSES: dict[str, ExclusionReason] | None = None


#: free-text per-output errors some metrics give (ItemScore.errors) instead of an exception: (marker, reason),
#: checked in order when the text does not start with a known exception type
_TEXT_MARKERS: tuple[tuple[str, ExclusionReason], ...] = (
    ("english-only", ExclusionReason.UNSUPPORTED_LANGUAGE),      # wer/cer/cpcer with an English-only ASR model
    ("cannot transcribe language", ExclusionReason.UNSUPPORTED_LANGUAGE),
    ("unavailable:", ExclusionReason.METRIC_UNAVAILABLE),
)


def classify_error(error: str | None) -> ExclusionReason:
    """The reason behind a stored error text: the exception type it starts with (``ErrorType: …``), else a known
    free-text marker; anything else (and an empty error on a NaN) is a metric error."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _error_classes()
    if not error:
        return ExclusionReason.METRIC_ERROR
    head = str(error).split(":", 1)[0].strip()
    if head in _CLASSES:
        return _CLASSES[head]
    text = str(error).lower()
    for marker, reason in _TEXT_MARKERS:
        if marker in text:
            return reason
    return ExclusionReason.METRIC_ERROR


def count_reasons(errors: Iterable[str | None]) -> dict[ExclusionReason, int]:
    counts = {r: 0 for r in REASONS}
    for e in errors:
        counts[classify_error(e)] += 1
    return counts


def describe_exclusions(counts: Mapping[ExclusionReason, int]) -> str:
    """'3 missing clip, 1 media error' (reasons in enum order, zeros left out)."""
    return ", ".join(f"{counts[r]} {r.label}" for r in REASONS if counts.get(r, 0))


@dataclass(frozen=True)
class SummaryRecord:
    """One row of summary.parquet. ``mean``/``ci_*`` are NaN when there is no value (never 0); ``excluded`` maps
    every reason to its count, and ``n + sum(excluded)`` is the number of rows of that group."""

    run_id: str               # the run, or several joined by "+" when runs of one model were merged
    suite: str
    model: str                # the label the numbers belong to
    generator: str            # the adapter(s) that made the clips
    family: str               # the metric's registry name
    metric: str               # the output
    category: str             # a category (Verse-Bench set) or "all"
    language: str             # en / zh / none, or "all"
    mean: float
    ci_low: float
    ci_high: float
    n: int
    excluded: dict[ExclusionReason, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    direction: str = "none"   # higher / lower / none: which way is better
    unit: str = ""
    aggregation: str = ""     # how the group's value is formed (the metric's rule for "all", else pooled/corpus)
    note: str = ""
    config_hash: str = ""

    @property
    def n_excluded(self) -> int:
        return int(sum(self.excluded.values()))

    @property
    def has_value(self) -> bool:
        return math.isfinite(self.mean)


REASON_COLUMNS = [f"excluded_{r.value}" for r in REASONS]
SUMMARY_COLUMNS = [f.name for f in fields(SummaryRecord) if f.name != "excluded"] + ["excluded"] + REASON_COLUMNS
_FLOATS = ("mean", "ci_low", "ci_high")
_INTS = ("n", "excluded", *REASON_COLUMNS)


def records_to_frame(records: Iterable[SummaryRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        d = asdict(r)
        excl = d.pop("excluded")
        d["excluded"] = int(sum(excl.values()))
        for reason in REASONS:
            d[f"excluded_{reason.value}"] = int(excl.get(reason, 0))
        rows.append(d)
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for c in _FLOATS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    for c in _INTS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0).astype("int64")
    for c in SUMMARY_COLUMNS:
        if c not in _FLOATS and c not in _INTS:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str)
    return frame


def frame_to_records(frame: pd.DataFrame, source: str | Path = "<frame>") -> list[SummaryRecord]:
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise SummaryFileError(source, f"is not a mova-eval summary (missing columns {missing})")
    out = []
    for d in frame.to_dict("records"):
        excl = {r: int(d[f"excluded_{r.value}"]) for r in REASONS}
        kw = {f.name: d[f.name] for f in fields(SummaryRecord) if f.name != "excluded"}
        for c in _FLOATS:
            kw[c] = float(kw[c]) if kw[c] is not None else math.nan
        kw["n"] = int(kw["n"])
        for c in ("run_id", "suite", "model", "generator", "family", "metric", "category", "language", "direction",
                  "unit", "aggregation", "note", "config_hash"):
            kw[c] = "" if kw[c] is None or (isinstance(kw[c], float) and math.isnan(kw[c])) else str(kw[c])
        out.append(SummaryRecord(**kw, excluded=excl))
    return out


# ----------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class OutputMeta:
    direction: str
    unit: str
    aggregation: str


def _output_meta(family: str, metric: str, fallback: Mapping[str, OutputMeta]) -> OutputMeta | None:
    from mova_eval.registry import metric_classes

    cls = metric_classes().get(family)
    if cls is not None:
        try:
            o = cls.info.output(metric)
            return OutputMeta(o.direction, o.unit, cls.info.aggregation)
        except KeyError:
            pass
    return fallback.get(metric)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def summarize_items(items: pd.DataFrame, *, run_id: str, suite: str, model: str, generator: str,
                    config_hash: str = "", n_boot: int = 1000,
                    fallback: Mapping[str, OutputMeta] | None = None) -> list[SummaryRecord]:
    """Summary records of per-item metrics (items.parquet rows of one model and suite): per metric, the ``all``
    row in the metric's rule, one pooled row per category and one row per language in the metric's rule."""
    from mova_eval import stats
    from mova_eval.metrics.base import CORPUS

    fallback = fallback or {}
    out: list[SummaryRecord] = []
    if items.empty:
        return out
    for (family, metric), grp in items.groupby(["family", "metric"], sort=True):
        meta = _output_meta(str(family), str(metric), fallback)
        if meta is None:
            continue  # an output this mova-eval does not know, with no run.json row describing it
        rule = meta.aggregation
        num, den = ("numerator", "denominator") if rule == CORPUS else (None, None)
        groups: list[tuple[str, str, pd.DataFrame, str]] = [(ALL, ALL, grp, rule)]
        for cat, sub in grp.groupby("category", sort=False):
            groups.append((str(cat), ALL, sub, CORPUS if rule == CORPUS else "pooled_mean"))
        for lang, sub in grp.groupby("language", sort=True):
            groups.append((ALL, str(lang), sub, rule))
        for cat, lang, sub, sub_rule in groups:
            s = stats.summarize(sub, sub_rule, n_boot=n_boot, numerator=num, denominator=den)
            excl = count_reasons(sub.loc[~np.isfinite(sub["value"].to_numpy(float)), "error"])
            out.append(SummaryRecord(run_id=run_id, suite=suite, model=model, generator=generator,
                                     family=str(family), metric=str(metric), category=cat, language=lang,
                                     mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high, n=s.n, excluded=excl,
                                     direction=meta.direction, unit=meta.unit, aggregation=sub_rule,
                                     note=describe_exclusions(excl), config_hash=config_hash))
    return out


def set_level_records(summary_rows: Iterable[SummaryRow], features: pd.DataFrame, *, run_id: str, suite: str, model: str,
                      generator: str, config_hash: str = "") -> list[SummaryRecord]:
    """Records for set-level metrics, from the run's own summary rows (``run.json``) and the exclusions recorded in
    features.parquet for the metric's extractor."""
    from mova_eval.metrics.base import SET_LEVEL

    out: list[SummaryRecord] = []
    for r in summary_rows:
        if r.aggregation != SET_LEVEL:
            continue
        feats = features[features["extractor"] == r.family] if len(features) else features
        if r.category != ALL and len(feats):
            feats = feats[feats["category"] == r.category]
        errs = feats.loc[feats["error"].notna(), "error"] if len(feats) else []
        excl = count_reasons(errs)
        missing_cache = int(r.excluded) - int(sum(excl.values()))
        if missing_cache > 0:  # features recorded but no longer in the cache when the run aggregated
            excl[ExclusionReason.METRIC_ERROR] += missing_cache
        note = "; ".join(x for x in (describe_exclusions(excl), r.note) if x)
        out.append(SummaryRecord(run_id=run_id, suite=suite, model=model, generator=generator, family=r.family,
                                 metric=r.metric, category=r.category, language=ALL, mean=_nan(r.mean),
                                 ci_low=_nan(r.ci_low), ci_high=_nan(r.ci_high), n=int(r.n), excluded=excl,
                                 direction=r.direction, unit=r.unit, aggregation=r.aggregation, note=note,
                                 config_hash=config_hash))
    return out


def summarize_run(run_dir: str | Path) -> list[SummaryRecord]:
    """Every summary record of one run directory, computed from run.json, items.parquet and features.parquet
    (also for a run made before summary.parquet existed)."""
    from mova_eval.results import load_features, load_runs, read_run_json

    run_dir = Path(run_dir)
    log = read_run_json(run_dir)
    items = load_runs(run_dir)
    feats = load_features(run_dir)
    n_boot = int((log.config.get("runtime") or {}).get("bootstrap", 1000))
    return records_for_run(log, items, feats, n_boot=n_boot)


def records_for_run(log: RunLog, items: pd.DataFrame, features: pd.DataFrame, *, n_boot: int) -> list[SummaryRecord]:
    """Summary records of one run from its log and tables (what the runner writes as summary.parquet)."""
    model = log.model or str(log.generator.get("label") or log.generator.get("name", ""))
    gen = str(log.generator.get("name", ""))
    suite = str(log.suite.get("name", ""))
    fallback = {r.metric: OutputMeta(r.direction, r.unit, r.aggregation) for r in log.summary}
    recs = summarize_items(items, run_id=log.run_id, suite=suite, model=model, generator=gen,
                           config_hash=log.config_hash, n_boot=n_boot, fallback=fallback)
    recs += set_level_records(log.summary, features, run_id=log.run_id, suite=suite, model=model, generator=gen,
                              config_hash=log.config_hash)
    return recs


def write_summary(run_dir: str | Path, records: Iterable[SummaryRecord]) -> Path:
    """Write ``RUN_DIR/summary.parquet`` atomically."""
    from mova_eval.cache import atomic_write_bytes

    path = Path(run_dir) / SUMMARY_FILE
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    frame = records_to_frame(records)

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"mova_eval_summary_schema"] = str(SUMMARY_SCHEMA).encode()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------------------------- reading


def _read_file(path: Path) -> list[SummaryRecord]:
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a file that is not parquet
            raise SummaryFileError(path, f"cannot be read as parquet ({type(e).__name__}: {e})") from e
        return frame_to_records(frame, path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SummaryFileError(path, f"cannot be read as JSON ({e})") from e
        rows = data.get("summary") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise SummaryFileError(path, "has no top-level \"summary\" list (export one with "
                                         "`mova-eval report RUN --format json --out DIR`)")
        frame = pd.DataFrame(rows)
        for c in _FLOATS:
            if c in frame:
                frame[c] = pd.to_numeric(frame[c], errors="coerce")
        return frame_to_records(frame, path)
    raise SummaryFileError(path, "is neither a run directory nor a summary .parquet/.json file")


def resolve_sources(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories and summary files named by ``paths`` (each a run dir, a folder of runs, a file or a glob)."""
    out: list[Path] = []
    for raw in paths:
        raw = str(raw)
        matches = sorted(glob.glob(raw)) if any(ch in raw for ch in "*?[") else [raw]
        if not matches:
            raise SummaryFileError(raw, "matches nothing")
        for m in matches:
            p = Path(m).expanduser()
            if p.is_file():
                out.append(p)
            elif (p / "run.json").is_file():
                out.append(p)
            elif p.is_dir():
                found = sorted(q.parent for q in p.rglob("run.json"))
                if not found:
                    raise SummaryFileError(p, "holds no run directory (no run.json below it)")
                out.extend(found)
            else:
                raise SummaryFileError(p, "does not exist")
    seen: dict[Path, None] = {}
    for p in out:
        seen.setdefault(p.resolve(), None)
    return list(seen)


def read_records(source: Path) -> list[SummaryRecord]:
    """The records of one run directory (its summary.parquet when present, else computed) or summary file."""
    source = Path(source)
    if source.is_dir():
        f = source / SUMMARY_FILE
        return _read_file(f) if f.is_file() else summarize_run(source)
    return _read_file(source)


def load_summary(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Summary rows of runs as one DataFrame (columns :data:`SUMMARY_COLUMNS`): ``paths`` may be run directories,
    folders of runs, globs, ``summary.parquet`` files or exported JSON summaries."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    recs: list[SummaryRecord] = []
    for src in resolve_sources(paths):
        recs.extend(read_records(src))
    return records_to_frame(recs)
