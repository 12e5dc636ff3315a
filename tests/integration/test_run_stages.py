"""The run's stages called one by one, the features table of set-level metrics, and reading schema-1 run folders."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from mova_eval import load_runs
from mova_eval import runner as runner_mod
from mova_eval.config import compose
from mova_eval.errors import ResultsError
from mova_eval.metrics.base import SET_LEVEL, MetricInfo, Output, SetLevelMetric, SetResult
from mova_eval.metrics.loudness import LoudnessMetric
from mova_eval.registry import metric_classes
from mova_eval.results import (
    FEATURE_COLUMNS,
    ITEM_COLUMNS,
    FeatureRow,
    ItemRow,
    ScoredRows,
    load_features,
    read_run_json,
)
from mova_eval.runner import aggregate, finalise, generate_stage, plan, run, score

from . import literal_metric

BASE = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.bootstrap=50", "runtime.cache=false"]


@pytest.fixture
def literal_plugin():
    """The literal-valued test metric (tests/integration/literal_metric.py) as a plug-in, unregistered afterwards."""
    from mova_eval import registry

    registry.forget_plugins()
    yield f"plugins=[{literal_metric.PLUGIN}]"
    registry.forget_plugins()


def test_each_stage_takes_and_returns_typed_values(tmp_path, literal_plugin):
    p = plan(compose([f"output_dir={tmp_path}", "run_id=s", *BASE, "suite.limit=3", "+generator.label=my-model",
                      literal_plugin, "metrics.only=[loudness,test_literal]"]))
    assert [r.request_id for r in p.requests] == [f"{it.id}#s0" for it in p.suite.items]
    assert p.model == "my-model" and not p.previous and (tmp_path / "s" / "run.json").is_file()
    results = generate_stage(p)
    assert set(results) == {r.request_id for r in p.requests} and all(r.ok for r in results.values())
    rows = score(p, results)
    assert isinstance(rows, ScoredRows) and not rows.features
    assert len(rows.items) == 9 and all(isinstance(r, ItemRow) for r in rows.items)
    assert {r.model for r in rows.items} == {"my-model"} and {r.generator for r in rows.items} == {"synthetic"}
    assert all(math.isfinite(r.value) and r.error is None for r in rows.items)
    summary = aggregate(p, rows)
    lufs = [s for s in summary if s.metric == "lufs" and s.category == "all"][0]
    assert lufs.n == 3 and math.isfinite(lufs.mean)
    # the first three smoke items have the literal values 1, 3 (speech_en) and 5 (speech_zh): category means 2 and
    # 5, so ``all`` = (2 + 5) / 2 = 3.5 under the category_mean rule (the pooled mean would be 9 / 3 = 3.0)
    lit = {s.category: s.mean for s in summary if s.metric == "test_literal"}
    assert lit == pytest.approx({"speech_en": 2.0, "speech_zh": 5.0, "all": 3.5}, abs=1e-12)
    out = finalise(p, results, rows, summary)
    assert out.log.status == "complete" and out.log.model == "my-model"
    assert list(out.items["model"].unique()) == ["my-model"]
    assert not (tmp_path / "s" / "items.partial.jsonl").exists()


class _MeanLevel(SetLevelMetric):
    """A tiny set-level metric for tests: the mean over the group of each clip's mean absolute sample."""

    info = MetricInfo(name="test_mean_level", outputs=(Output("test_mean_level", "none"),), needs=frozenset({"audio"}),
                      aggregation=SET_LEVEL)

    def features(self, clip, item):
        if item.category == "music":
            raise RuntimeError("no features for music")
        return np.array([float(np.abs(clip.audio).mean())])

    def compute(self, features, items):
        return SetResult({"test_mean_level": float(np.mean([f[0] for f in features]))}, note=f"n={len(features)}")


@pytest.fixture
def with_set_level_metric(monkeypatch):
    classes = {**metric_classes(), "test_mean_level": _MeanLevel}
    monkeypatch.setattr(runner_mod, "metric_classes", lambda: classes)
    monkeypatch.setattr(runner_mod, "get_metric_class", lambda name: classes[name])


def test_set_level_features_go_to_features_parquet_never_to_items(tmp_path, with_set_level_metric):
    cfg = [f"output_dir={tmp_path}", "run_id=f", "metrics.only=[loudness,test_mean_level]", *BASE[1:]]
    out = run(compose(cfg))
    run_dir = tmp_path / "f"
    items = pd.read_parquet(run_dir / "items.parquet")
    feats = pd.read_parquet(run_dir / "features.parquet")
    assert set(items["metric"]) == {"lufs", "rms_dbfs"}  # only real metric outputs
    assert list(feats.columns) == FEATURE_COLUMNS and len(feats) == 10
    assert set(feats["extractor"]) == {"test_mean_level"} and (feats["model"] == "synthetic").all()
    bad = feats[feats["category"] == "music"]
    assert len(bad) == 1 and bad["cache_key"].isna().all() and bad["error"].str.contains("no features for music").all()
    good = feats[feats["category"] != "music"]
    assert good["error"].isna().all() and good["cache_key"].str.len().eq(64).all()
    row = [r for r in out.log.summary if r.metric == "test_mean_level" and r.category == "all"][0]
    assert row.n == 9 and row.excluded == 1 and row.note == "n=9" and row.mean > 0
    assert out.log.counts["feature_rows"] == 10 and out.log.counts["feature_errors"] == 1
    assert load_features(run_dir).to_dict("records") == out.features.to_dict("records")


def _as_schema_1(run_dir):
    """Rewrite a finished run folder as mova-eval schema 1 wrote it, with its rows left in the partial log."""
    items = pd.read_parquet(run_dir / "items.parquet")
    feats = pd.read_parquet(run_dir / "features.parquet")
    lines = []
    for r in items.to_dict("records"):
        details = json.loads(r["details"]) if r["details"] else {}
        if r["numerator"] == r["numerator"]:
            details.update({f"{r['metric']}_num": r["numerator"], f"{r['metric']}_den": r["denominator"]})
        lines.append({k: r[k] for k in ITEM_COLUMNS if k not in ("model", "numerator", "denominator")}
                     | {"details": json.dumps(details) if details else None, "seed": int(r["seed"]),
                        "value": None if r["value"] != r["value"] else r["value"]})
    for r in feats.to_dict("records"):
        lines.append({"run_id": r["run_id"], "suite": r["suite"], "item_id": r["item_id"], "category": r["category"],
                      "language": r["language"], "generator": r["generator"], "seed": int(r["seed"]),
                      "family": r["extractor"], "metric": r["extractor"] + ".features", "value": None,
                      "error": r["error"], "details": json.dumps({"feature_key": r["cache_key"]}) if r["cache_key"]
                      else None, "clip_path": r["clip_path"], "clip_hash": r["clip_hash"]})
    (run_dir / "items.partial.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run_dir / "items.parquet").unlink()
    (run_dir / "features.parquet").unlink()
    log = json.loads((run_dir / "run.json").read_text())
    log["schema_version"], log["status"] = 1, "running"
    del log["model"]
    (run_dir / "run.json").write_text(json.dumps(log))
    return len(items), len(feats)


def test_a_schema_1_run_folder_is_read_and_resumed(tmp_path, with_set_level_metric):
    cfg = compose([f"output_dir={tmp_path}", "run_id=old", "metrics.only=[loudness,test_mean_level]", *BASE[1:]])
    first = run(cfg)
    n_items, n_feats = _as_schema_1(tmp_path / "old")
    assert read_run_json(tmp_path / "old").model == "synthetic"  # filled from the generator for old logs
    old = load_runs(tmp_path / "old")
    assert len(old) == n_items and not old["metric"].str.endswith(".features").any()
    assert list(old.columns) == ITEM_COLUMNS and (old["model"] == "synthetic").all()
    assert len(load_features(tmp_path / "old")) == n_feats
    resumed = run(cfg)  # nothing left to score: every row comes from the schema-1 log
    assert resumed.log.counts["resumed_rows"] == n_items + n_feats and resumed.log.schema_version == 2
    cols = ["item_id", "metric", "value", "error"]
    pd.testing.assert_frame_equal(resumed.items[cols], first.items[cols])
    assert [r.mean for r in resumed.log.summary] == [r.mean for r in first.log.summary]


def test_corpus_counts_of_schema_1_rows_come_from_their_details():
    from mova_eval.results import item_row_from_record

    rec = {"run_id": "r", "suite": "s", "item_id": "a", "category": "c", "language": "en", "generator": "g",
           "seed": 0, "family": "wer", "metric": "wer", "value": 0.5, "error": None,
           "details": json.dumps({"wer_num": 1, "wer_den": 2}), "clip_path": None, "clip_hash": None}
    row = item_row_from_record(rec)
    assert (row.numerator, row.denominator, row.model) == (1.0, 2.0, "g")
    new = item_row_from_record({**rec, "model": "m", "numerator": 3.0, "denominator": 4.0})
    assert (new.numerator, new.denominator, new.model) == (3.0, 4.0, "m")


def test_a_run_folder_from_a_newer_version_is_refused_by_name(tmp_path):
    run(compose([f"output_dir={tmp_path}", "run_id=n", *BASE, "suite.limit=1"]))
    log = json.loads((tmp_path / "n" / "run.json").read_text())
    log["schema_version"] = 99
    (tmp_path / "n" / "run.json").write_text(json.dumps(log))
    with pytest.raises(ResultsError, match=r"n/run.json: schema_version 99 .* upgrade mova-eval"):
        load_runs(tmp_path)
    with pytest.raises(ResultsError, match="schema_version 99"):
        run(compose([f"output_dir={tmp_path}", "run_id=n", *BASE, "suite.limit=1"]))


def test_a_corpus_metric_must_give_its_counts(tmp_path, monkeypatch):
    from mova_eval.metrics.base import CORPUS, ItemScore

    monkeypatch.setattr(LoudnessMetric, "info", LoudnessMetric.info.__class__(
        **{**LoudnessMetric.info.__dict__, "aggregation": CORPUS}))
    monkeypatch.setattr(LoudnessMetric, "score", lambda self, clip, item: ItemScore({"lufs": 1.0, "rms_dbfs": 2.0}))
    out = run(compose([f"output_dir={tmp_path}", "run_id=c", *BASE, "suite.limit=1"]))
    assert out.items["value"].isna().all()
    assert out.items["error"].str.contains("gave values without counts").all()


def test_feature_rows_and_item_rows_share_the_request_columns():
    shared = ["run_id", "suite", "item_id", "category", "language", "generator", "model", "seed", "error",
              "clip_path", "clip_hash"]
    assert set(shared) <= set(ITEM_COLUMNS) and set(shared) <= set(FEATURE_COLUMNS)
    assert {f for f in FeatureRow.__dataclass_fields__} - set(shared) == {"extractor", "cache_key"}
