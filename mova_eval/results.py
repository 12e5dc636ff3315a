"""The run log: ``run.json`` (typed, versioned) and ``items.parquet`` (one row per item × generator × metric).

While a run is in progress, finished items are appended to ``items.partial.jsonl`` (one fsync'd line each), so a
killed run loses nothing it computed; the final tables are written atomically (temp file + rename).
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from mova_eval.cache import atomic_write_bytes, atomic_write_text

SCHEMA_VERSION = 1
ITEM_COLUMNS = ["run_id", "suite", "item_id", "category", "language", "generator", "seed", "family", "metric",
                "value", "error", "details", "clip_path", "clip_hash"]


class MetricStatus(BaseModel):
    name: str
    version: str
    available: bool
    reason: str = ""
    command: str | None = None
    aggregation: str = ""
    weights: dict[str, str] = Field(default_factory=dict)  # name -> sha256 (or 'absent')
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
    metrics: list[MetricStatus]
    packages: dict[str, str]
    git_revision: str | None
    python: str
    platform: str
    device: str
    timings: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    summary: list[SummaryRow] = Field(default_factory=list)
    generation: dict[str, dict[str, Any]] = Field(default_factory=dict)  # request id -> provenance / error


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_run_json(run_dir: Path, log: RunLog) -> None:
    data = log.model_dump(mode="json")
    for row in data["summary"]:
        for k in ("mean", "ci_low", "ci_high"):
            row[k] = _nan_to_none(row[k])
    atomic_write_text(run_dir / "run.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))


def read_run_json(run_dir: Path) -> RunLog:
    return RunLog.model_validate_json((Path(run_dir) / "run.json").read_text(encoding="utf-8"))


class ItemLog:
    """Append-only record of finished rows while the run is going, consolidated into items.parquet at the end."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.partial = self.run_dir / "items.partial.jsonl"
        self.final = self.run_dir / "items.parquet"

    def load(self) -> list[dict]:
        rows: list[dict] = []
        if self.final.is_file():
            rows.extend(pd.read_parquet(self.final).to_dict("records"))
        if self.partial.is_file():
            with open(self.partial, encoding="utf-8") as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        break  # a torn last line from a kill: that item is simply recomputed
        for r in rows:
            if r.get("value") is None:
                r["value"] = float("nan")
        return rows

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        blob = "".join(json.dumps({k: _nan_to_none(v) for k, v in r.items()}, ensure_ascii=False) + "\n" for r in rows)
        with open(self.partial, "a", encoding="utf-8") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())

    def finalize(self, rows: list[dict]) -> pd.DataFrame:
        frame = rows_to_frame(rows)
        import io

        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(self.final, buf.getvalue())
        self.partial.unlink(missing_ok=True)
        return frame


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS) if rows else pd.DataFrame(columns=ITEM_COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    for col in ITEM_COLUMNS:
        if col not in ("value", "seed"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame.sort_values(["generator", "item_id", "seed", "family", "metric"], kind="stable").reset_index(drop=True)


def load_runs(path: str | Path) -> pd.DataFrame:
    """All item rows of one run directory, or of every run directory below ``path``, as one DataFrame."""
    path = Path(path)
    dirs = [path] if (path / "run.json").is_file() else sorted(p.parent for p in path.rglob("run.json"))
    if not dirs:
        raise FileNotFoundError(f"{path}: no run.json found (not a run directory or a folder of runs)")
    frames = []
    for d in dirs:
        log = ItemLog(d)
        frames.append(rows_to_frame(log.load()))
    return pd.concat(frames, ignore_index=True) if frames else rows_to_frame([])
