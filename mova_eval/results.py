"""The run log: ``run.json`` (typed, versioned) and ``items.parquet`` (one row per item × generator × metric).

While a run is in progress, finished items are appended to ``items.partial.jsonl`` (one fsync'd line each), so a
killed run loses nothing it computed; the final tables are written atomically (temp file + rename).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from mova_eval.cache import atomic_write_bytes, atomic_write_text
from mova_eval.errors import ResultsError, RunLockedError, storage_error

#: 2: typed rows; a ``model`` column; corpus ``numerator``/``denominator`` columns; set-level features moved out of
#: items.parquet into features.parquet (version 1 stored them as ``<family>.features`` rows, which reading converts)
SCHEMA_VERSION = 2
LEGACY_FEATURES_SUFFIX = ".features"  # schema 1's placeholder rows for set-level features


@dataclass(frozen=True)
class ItemRow:
    """One real metric output for one item × seed × generator (a row of items.parquet).

    ``value`` is NaN exactly when ``error`` says why. ``numerator``/``denominator`` are the corpus counts of a
    ``corpus`` metric (Σ errors / Σ reference length), None for every other rule. ``details`` is the metric's side
    information, stored as JSON text on disk."""

    run_id: str
    suite: str
    item_id: str
    category: str
    language: str
    generator: str   # registry name of the generator
    model: str       # the model label the numbers belong to (generator.label, else the generator name)
    seed: int
    family: str      # the metric's registry name
    metric: str      # the output's name, unique across metrics
    value: float
    error: str | None = None
    details: dict[str, Any] | None = None
    numerator: float | None = None
    denominator: float | None = None
    clip_path: str | None = None
    clip_hash: str | None = None


@dataclass(frozen=True)
class FeatureRow:
    """One set-level metric's features for one item × seed (a row of features.parquet): where they are cached, or
    the error that excluded the item. The metric's values are in run.json's summary, not per item."""

    run_id: str
    suite: str
    item_id: str
    category: str
    language: str
    generator: str
    model: str
    seed: int
    extractor: str            # the set-level metric's registry name
    cache_key: str | None     # key in the ``features`` cache namespace; None when extraction failed
    error: str | None = None
    clip_path: str | None = None
    clip_hash: str | None = None


ITEM_COLUMNS = [f.name for f in fields(ItemRow)]
FEATURE_COLUMNS = [f.name for f in fields(FeatureRow)]


@dataclass
class ScoredRows:
    """The score stage's output for some requests: real per-item outputs and set-level feature records."""

    items: list[ItemRow] = field(default_factory=list)
    features: list[FeatureRow] = field(default_factory=list)

    def extend(self, other: "ScoredRows") -> None:
        self.items.extend(other.items)
        self.features.extend(other.features)

    def all_rows(self) -> list[ItemRow | FeatureRow]:
        """The item rows, then the feature records."""
        return [*self.items, *self.features]

    def done_requests(self) -> set[tuple[str, int]]:
        return {(r.item_id, r.seed) for r in self.all_rows()}

    def records(self) -> list[dict[str, Any]]:
        """Both tables as plain dicts (item id, seed, clip path, category… are common to both)."""
        return [_record(r) for r in self.all_rows()]

    def __bool__(self) -> bool:
        return bool(self.items or self.features)


class MetricStatus(BaseModel):
    name: str
    version: str
    available: bool
    reason: str = ""
    command: str | None = None
    aggregation: str = ""
    weights: dict[str, str] = Field(default_factory=dict)  # name -> sha256 (or 'absent')
    #: weights whose licence forbids commercial use: name -> licence (ImageBind is CC-BY-NC-SA 4.0)
    non_commercial_weights: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    reference: str = ""


class SummaryRow(BaseModel):
    metric: str
    family: str
    generator: str
    category: str          # a category name, or "all"
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    excluded: int
    direction: str
    unit: str = ""
    aggregation: str = ""
    note: str = ""


class RuleFailure(BaseModel):
    """A rule that made the run fail (``mova-eval run`` exits 1): see :mod:`mova_eval.run_checks`."""

    rule: str       # unavailable | no_value | error_fraction
    detail: str


class RunLog(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: str = "running"  # running | complete | failed
    created: str
    finished: str | None = None
    config: dict[str, Any]
    config_hash: str
    suite: dict[str, Any]
    generator: dict[str, Any]
    model: str = ""        # the model label of every row (generator.label, else the generator name); schema ≥ 2
    metrics: list[MetricStatus]
    packages: dict[str, str]
    git_revision: str | None
    python: str
    platform: str
    device: str
    timings: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    summary: list[SummaryRow] = Field(default_factory=list)
    failures: list[RuleFailure] = Field(default_factory=list)  # why status is "failed" (empty when complete)
    generation: dict[str, dict[str, Any]] = Field(default_factory=dict)  # request id -> provenance / error
    #: request id -> how its clip was decoded (``mova_eval.spec.DecodeInfo``: audio track and why, orientation applied,
    #: displayed size, clipping_fraction); requests scored in an attempt that was killed before it ended are missing
    decode: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: what decode warned about (clipped audio, an unusable extra audio track, an odd display matrix), one line each
    warnings: list[str] = Field(default_factory=list)
    #: a run written by ``mova-eval merge``: the shard run directories it joined, in shard order (empty otherwise)
    merged_from: list[str] = Field(default_factory=list)
    #: ``seeds=all``: item id -> the seeds planned for it (the samples the generator listed; one seed 0 for an item
    #: with none, which then fails with the reason); empty for an explicit seed list (every item: ``config.seeds``)
    samples: dict[str, list[int]] = Field(default_factory=dict)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def nan_to_null(x: Any) -> Any:
    """``x`` with every non-finite float (NaN, ±inf) inside dicts and lists replaced by None, so it serialises as
    strict JSON (``null``) — the run log's rule for values that do not exist."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: nan_to_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_null(v) for v in x]
    return x


def write_run_json(run_dir: Path, log: RunLog) -> None:
    data = log.model_dump(mode="json")
    for row in data["summary"]:
        for k in ("mean", "ci_low", "ci_high"):
            row[k] = _nan_to_none(row[k])
    atomic_write_text(run_dir / "run.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))


def read_run_json(run_dir: Path) -> RunLog:
    """The run log of ``run_dir``; schema 1 logs read as they are (``model`` then defaults to the generator name);
    a log from a newer mova-eval, or one that is not a run log, is a ResultsError naming the file."""
    path = Path(run_dir) / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(path, f"cannot be read as JSON ({e})") from e
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(path, f"schema_version {version!r} is not one this mova-eval reads (1…{SCHEMA_VERSION}); "
                                 f"upgrade mova-eval")
    try:
        log = RunLog.model_validate(data)
    except ValidationError as e:
        raise ResultsError(path, f"is not a valid run log: {e}") from e
    if not log.model:
        log.model = str(log.generator.get("label") or log.generator.get("name", ""))
    return log


def _record(row: ItemRow | FeatureRow) -> dict[str, Any]:
    return asdict(row)


def _float(x: Any) -> float:
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _opt_float(x: Any) -> float | None:
    v = _float(x)
    return v if math.isfinite(v) else None


def _opt_str(x: Any) -> str | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return str(x)


def _details(x: Any) -> dict[str, Any] | None:
    if x is None or isinstance(x, dict):
        return x or None
    if isinstance(x, float):  # NaN from a parquet null
        return None
    parsed: dict[str, Any] | None = json.loads(x)
    return parsed


def item_row_from_record(r: dict[str, Any]) -> ItemRow:
    """An ItemRow from a record of items.parquet / the partial log (schema 1 or 2)."""
    details = _details(r.get("details"))
    metric = str(r["metric"])
    num, den = r.get("numerator"), r.get("denominator")
    if "numerator" not in r and details:  # schema 1 kept corpus counts in the details
        num, den = details.get(f"{metric}_num"), details.get(f"{metric}_den")
    return ItemRow(run_id=str(r["run_id"]), suite=str(r["suite"]), item_id=str(r["item_id"]),
                   category=str(r["category"]), language=str(r["language"]), generator=str(r["generator"]),
                   model=str(r.get("model") or r["generator"]), seed=int(r["seed"]), family=str(r["family"]),
                   metric=metric, value=_float(r.get("value")), error=_opt_str(r.get("error")), details=details,
                   numerator=_opt_float(num), denominator=_opt_float(den), clip_path=_opt_str(r.get("clip_path")),
                   clip_hash=_opt_str(r.get("clip_hash")))


def feature_row_from_record(r: dict[str, Any]) -> FeatureRow:
    if "extractor" not in r:  # schema 1: a ``<family>.features`` row of items.parquet, the key in its details
        details = _details(r.get("details")) or {}
        r = {**r, "extractor": r["family"], "cache_key": details.get("feature_key")}
    return FeatureRow(run_id=str(r["run_id"]), suite=str(r["suite"]), item_id=str(r["item_id"]),
                      category=str(r["category"]), language=str(r["language"]), generator=str(r["generator"]),
                      model=str(r.get("model") or r["generator"]), seed=int(r["seed"]),
                      extractor=str(r["extractor"]), cache_key=_opt_str(r.get("cache_key")),
                      error=_opt_str(r.get("error")), clip_path=_opt_str(r.get("clip_path")),
                      clip_hash=_opt_str(r.get("clip_hash")))


def _is_legacy_feature_record(r: dict[str, Any]) -> bool:
    return "extractor" not in r and str(r.get("metric", "")).endswith(LEGACY_FEATURES_SUFFIX)


class ItemLog:
    """Append-only record of finished items while the run is going, consolidated into items.parquet and
    features.parquet at the end.

    The partial log holds one JSON line per finished request (item × seed): ``{"request": [item_id, seed],
    "rows": [...], "sha256": ...}``, where each row is tagged ``"table": "items" | "features"`` and the checksum
    covers the rows. A request's rows are therefore written, fsync'd and read back as one unit: a line that is torn
    by a kill or fails its checksum is dropped and that request recomputed, never taken as finished with rows
    missing. Finalising is idempotent: a kill after items.parquet is written but before the partial log is removed
    leaves the same request in both places, and reading keeps one copy (the partial log's, which is newer).
    Partial logs of earlier versions (one untagged or tagged row per line) are read too.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.partial = self.run_dir / "items.partial.jsonl"
        self.final = self.run_dir / "items.parquet"
        self.features = self.run_dir / "features.parquet"
        #: requests whose partial-log line was torn or failed its checksum on the last ``load()`` (recomputed)
        self.dropped: list[str] = []

    def _read_parquet(self, path: Path, table: str) -> list[dict[str, Any]]:
        try:
            return [{**r, "table": table} for r in pd.read_parquet(path).to_dict("records")]
        except Exception as e:  # pyarrow raises its own types for truncated or foreign files
            raise ResultsError(path, f"cannot be read ({type(e).__name__}: {e}); it is damaged — delete it to "
                                     f"recompute its rows from the cache, or start a new run_id") from e

    def _read_partial(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """Requests of the partial log → their records; a later line for the same request wins."""
        by_request: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.dropped = []
        with open(self.partial, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.dropped.append(f"line {n + 1} (torn)")
                    continue
                if not isinstance(rec, dict):
                    self.dropped.append(f"line {n + 1} (not a record)")
                    continue
                if "rows" not in rec:  # an earlier version's one-row-per-line log: group its rows by request
                    try:
                        by_request.setdefault((str(rec["item_id"]), int(rec["seed"])), []).append(rec)
                    except (KeyError, TypeError, ValueError):
                        self.dropped.append(f"line {n + 1} (no request key)")
                    continue
                rows = rec.get("rows")
                if not isinstance(rows, list) or rec.get("sha256") != _rows_checksum(rows):
                    self.dropped.append(f"line {n + 1} (checksum mismatch)")
                    continue
                try:
                    key = (str(rec["request"][0]), int(rec["request"][1]))
                except (KeyError, IndexError, TypeError, ValueError):
                    self.dropped.append(f"line {n + 1} (no request key)")
                    continue
                by_request[key] = rows
        return by_request

    def load(self) -> ScoredRows:
        partial = self._read_partial() if self.partial.is_file() else {}
        newer = set(partial)
        records: list[dict[str, Any]] = []
        for path, table in ((self.final, "items"), (self.features, "features")):
            if path.is_file():
                for r in self._read_parquet(path, table):
                    try:
                        key = (str(r["item_id"]), int(r["seed"]))
                    except (KeyError, TypeError, ValueError):
                        key = None
                    if key not in newer:  # the partial log holds this request too: keep its (newer) copy
                        records.append(r)
        for rows in partial.values():
            records.extend(rows)
        out = ScoredRows()
        for r in records:
            try:
                if r.get("table") == "features" or _is_legacy_feature_record(r):
                    out.features.append(feature_row_from_record(r))
                else:
                    out.items.append(item_row_from_record(r))
            except (KeyError, TypeError, ValueError) as e:
                raise ResultsError(self.run_dir, f"a row of the item log cannot be read ({type(e).__name__}: {e}); "
                                                 f"was it written by a newer mova-eval?") from e
        return out

    def append(self, rows: ScoredRows) -> None:
        """Record one request's rows as a single checksummed, fsync'd line (``rows`` must be one request's)."""
        if not rows:
            return
        keys = rows.done_requests()
        if len(keys) != 1:
            raise ValueError(f"ItemLog.append takes one request's rows, got {sorted(keys)}")
        (item_id, seed), = keys
        recs = [{"table": "items", **_json_record(r)} for r in rows.items]
        recs += [{"table": "features", **_json_record(r)} for r in rows.features]
        recs = json.loads(json.dumps(recs, ensure_ascii=False, default=str))  # the checksum covers what is read back
        line = json.dumps({"request": [item_id, int(seed)], "rows": recs, "sha256": _rows_checksum(recs)},
                          ensure_ascii=False) + "\n"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.partial, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise storage_error(self.partial, e, needed=len(line.encode("utf-8"))) from e

    def finalize(self, rows: ScoredRows) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write both tables atomically, then drop the partial log. Safe to repeat after a kill at any point."""
        import io

        items, feats = items_frame(rows.items), features_frame(rows.features)
        for frame, path in ((items, self.final), (feats, self.features)):
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(path, buf.getvalue())
        self.partial.unlink(missing_ok=True)
        return items, feats


class RunLock:
    """An exclusive lock on a run directory for the life of one run, so two processes with the same ``run_id`` never
    write the same folder. ``run.lock`` names the holder (pid, host, start time) for the refusal message. The lock is
    the kernel's (``flock``): it goes away with the process, so a killed run leaves no stale lock to clean up. Where
    ``flock`` does not exist (Windows) or does not span machines (some network file systems), it guards only what
    the platform guards."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "run.lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform
            return self
        import socket

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(self.path, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
                who = f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"
            except (OSError, ValueError):
                who = "holder unknown"
            os.close(fd)
            raise RunLockedError(self.path.parent, who) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _rows_checksum(rows: list[dict[str, Any]]) -> str:
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _json_record(row: ItemRow | FeatureRow) -> dict[str, Any]:
    return {k: _nan_to_none(v) for k, v in _record(row).items()}


def items_frame(rows: list[ItemRow]) -> pd.DataFrame:
    """items.parquet's table: ``details`` as JSON text, NaN values, nullable integer seeds."""
    recs = [_record(r) for r in rows]
    for r in recs:
        r["details"] = json.dumps(r["details"], ensure_ascii=False, default=str) if r["details"] else None
    frame = pd.DataFrame(recs, columns=ITEM_COLUMNS) if recs else pd.DataFrame(columns=ITEM_COLUMNS)
    for col in ("value", "numerator", "denominator"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    for col in ITEM_COLUMNS:
        if col not in ("value", "numerator", "denominator", "seed"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame.sort_values(["generator", "model", "item_id", "seed", "family", "metric"],
                             kind="stable").reset_index(drop=True)


def features_frame(rows: list[FeatureRow]) -> pd.DataFrame:
    recs = [_record(r) for r in rows]
    frame = pd.DataFrame(recs, columns=FEATURE_COLUMNS) if recs else pd.DataFrame(columns=FEATURE_COLUMNS)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    for col in FEATURE_COLUMNS:
        if col != "seed":
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame.sort_values(["generator", "model", "item_id", "seed", "extractor"],
                             kind="stable").reset_index(drop=True)


def _run_dirs(path: Path) -> list[Path]:
    dirs = [path] if (path / "run.json").is_file() else sorted(p.parent for p in path.rglob("run.json"))
    if not dirs:
        raise FileNotFoundError(f"{path}: no run.json found (not a run directory or a folder of runs)")
    for d in dirs:
        read_run_json(d)  # refuses, by name, a log this version cannot read
    return dirs


def load_runs(path: str | Path) -> pd.DataFrame:
    """All item rows of one run directory, or of every run directory below ``path``, as one DataFrame (the
    partial log of an unfinished run included; schema-1 runs are converted: their feature placeholders are left
    out, ``model`` is the generator name and corpus counts come from the details)."""
    frames = [items_frame(ItemLog(d).load().items) for d in _run_dirs(Path(path))]
    return pd.concat(frames, ignore_index=True)


def load_features(path: str | Path) -> pd.DataFrame:
    """The set-level feature records (features.parquet) of one run directory or every run below ``path``."""
    frames = [features_frame(ItemLog(d).load().features) for d in _run_dirs(Path(path))]
    return pd.concat(frames, ignore_index=True)
