"""`mova-eval run` end to end on the embedded smoke suite, resume after a crash, and the run log's schema."""
import json
import math

import pandas as pd
import pytest

from mova_eval import load_runs
from mova_eval.cli import main
from mova_eval.config import compose
from mova_eval.errors import ConfigError
from mova_eval.metrics.loudness import LoudnessMetric
from mova_eval.results import ITEM_COLUMNS, read_run_json
from mova_eval.runner import run

from . import literal_metric

BASE = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.bootstrap=200"]


def test_cli_run_writes_run_json_and_items(tmp_path, capsys):
    rc = main(["run", f"output_dir={tmp_path}", "run_id=smoke", *BASE])
    assert rc == 0
    out = capsys.readouterr().out
    assert "lufs" in out and "rms_dbfs" in out and "95% CI" in out
    log = read_run_json(tmp_path / "smoke")
    assert log.status == "complete" and log.schema_version == 2 and log.model == "synthetic"
    assert log.suite["name"] == "smoke" and log.suite["items"] == 10
    assert log.config["generator"]["name"] == "synthetic" and log.packages["numpy"]
    assert {"generate", "score", "total"} <= set(log.timings)
    items = pd.read_parquet(tmp_path / "smoke" / "items.parquet")
    assert list(items.columns) == ITEM_COLUMNS
    assert len(items) == 20 and items["error"].isna().all()
    assert (items["model"] == "synthetic").all() and (items["generator"] == "synthetic").all()
    assert items["numerator"].isna().all()  # loudness is not a corpus metric
    assert len(pd.read_parquet(tmp_path / "smoke" / "features.parquet")) == 0  # no set-level metric ran
    assert set(items["metric"]) == {"lufs", "rms_dbfs"}
    assert items["value"].between(-60, 0).all()
    summary = [r for r in log.summary if r.category == "all" and r.metric == "lufs"][0]
    assert summary.n == 10 and summary.excluded == 0 and summary.ci_low <= summary.mean <= summary.ci_high
    assert load_runs(tmp_path).shape[0] == 20
    assert not (tmp_path / "smoke" / "items.partial.jsonl").exists()


@pytest.fixture
def literal_plugin():
    """The literal-valued test metric as a configuration plug-in, unregistered afterwards."""
    from mova_eval import registry

    registry.forget_plugins()
    yield f"plugins=[{literal_metric.PLUGIN}]"
    registry.forget_plugins()


def test_all_is_the_mean_of_category_means_worked_by_hand(tmp_path, literal_plugin):
    """A category_mean metric's ``all`` through the whole run (score → aggregate → run.json): the literal values of
    tests/integration/literal_metric.py give category means 2, 6, 10, 1, 4, 7 and ``all`` = 30 / 6 = 5.0 (the pooled
    mean would be 4.6)."""
    rc = main(["run", f"output_dir={tmp_path}", "run_id=lit", literal_plugin, "metrics.only=[test_literal]",
               "runtime.progress=false", "runtime.bootstrap=50"])
    assert rc == 0
    rows = {r.category: r for r in read_run_json(tmp_path / "lit").summary if r.metric == "test_literal"}
    assert rows["all"].n == 10 and rows["all"].mean == pytest.approx(literal_metric.SMOKE_ALL, abs=1e-12)
    assert {c: rows[c].mean for c in literal_metric.SMOKE_CATEGORY_MEANS} == pytest.approx(
        literal_metric.SMOKE_CATEGORY_MEANS, abs=1e-12)


def test_resume_after_crash_gives_identical_items(tmp_path, monkeypatch):
    # caching off, so the resumed run's identity with the reference comes from the item log, not from the cache
    cfg = compose([f"output_dir={tmp_path}", "run_id=r", *BASE, "runtime.cache=false"])
    reference = run(compose([f"output_dir={tmp_path / 'ref'}", "run_id=r", *BASE, "runtime.cache=false"])).items

    real_score = LoudnessMetric.score
    calls = {"n": 0}

    def crashing(self, clip, item):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # a kill in the middle of scoring
        return real_score(self, clip, item)

    monkeypatch.setattr(LoudnessMetric, "score", crashing)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    partial = (tmp_path / "r" / "items.partial.jsonl").read_text().splitlines()
    assert len(partial) == 5  # five finished items (one checksummed line each, two outputs per item) survived
    assert read_run_json(tmp_path / "r").status == "running"

    monkeypatch.setattr(LoudnessMetric, "score", real_score)
    resumed = run(cfg)
    assert resumed.log.counts["resumed_rows"] == 10
    cols = ["item_id", "metric", "value", "error"]
    pd.testing.assert_frame_equal(resumed.items[cols], reference[cols])


def test_resume_refuses_a_changed_config(tmp_path):
    run(compose([f"output_dir={tmp_path}", "run_id=r", *BASE, "suite.limit=2"]))
    with pytest.raises(ConfigError, match="different configuration"):
        run(compose([f"output_dir={tmp_path}", "run_id=r", *BASE, "suite.limit=3"]))


def test_a_failing_metric_is_nan_with_reason_and_the_run_goes_on(tmp_path, monkeypatch):
    real = LoudnessMetric.score

    def broken_on_music(self, clip, item):
        if item.category == "music":
            raise RuntimeError("model exploded")
        return real(self, clip, item)

    monkeypatch.setattr(LoudnessMetric, "score", broken_on_music)
    out = run(compose([f"output_dir={tmp_path}", "run_id=f", *BASE, "runtime.cache=false"]))
    bad = out.items[out.items.category == "music"]
    assert len(bad) == 2 and bad["value"].isna().all()
    assert bad["error"].str.contains("RuntimeError: model exploded").all()
    good = out.items[out.items.category != "music"]
    assert good["value"].notna().all()
    row = [r for r in out.log.summary if r.category == "all" and r.metric == "lufs"][0]
    assert row.n == 9 and row.excluded == 1


def test_explicitly_requested_unavailable_metric_records_nan_with_the_fix(tmp_path, monkeypatch):
    from mova_eval.metrics.base import Availability

    monkeypatch.setattr(LoudnessMetric, "availability", classmethod(
        lambda cls, context=None: Availability(False, "weights 'x' are missing", "mova-eval weights fetch x")))
    out = run(compose([f"output_dir={tmp_path}", "run_id=u", *BASE, "suite.limit=2", "runtime.cache=false"]))
    assert out.items["value"].isna().all()
    assert out.items["error"].str.contains("mova-eval weights fetch x").all()
    status = [m for m in out.log.metrics if m.name == "loudness"][0]
    assert not status.available and status.command == "mova-eval weights fetch x"


def test_run_json_is_strict_json_without_nan(tmp_path):
    run(compose([f"output_dir={tmp_path}", "run_id=j", *BASE, "suite.limit=1"]))
    text = (tmp_path / "j" / "run.json").read_text()
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_workers_give_the_same_results(tmp_path, monkeypatch):
    # cache off, and score() counted: both runs really compute every item (a warm cache would make this vacuous)
    import threading

    real = LoudnessMetric.score
    calls: list[str] = []
    threads: set[int] = set()

    def counted(self, clip, item):
        calls.append(item.id)
        threads.add(threading.get_ident())
        return real(self, clip, item)

    monkeypatch.setattr(LoudnessMetric, "score", counted)
    one = run(compose([f"output_dir={tmp_path}", "run_id=w1", *BASE, "runtime.cache=false"])).items
    assert len(calls) == 10
    two = run(compose([f"output_dir={tmp_path}", "run_id=w2", *BASE, "runtime.cache=false", "runtime.workers=2"])).items
    assert len(calls) == 20 and sorted(calls[:10]) == sorted(calls[10:])
    assert len(threads) >= 2  # the two-worker run did score on worker threads, not on the main thread
    cols = ["item_id", "metric", "value"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    assert not any(math.isnan(v) for v in one["value"])


def test_a_bad_configuration_leaves_no_run_folder(tmp_path):
    from mova_eval.errors import RegistryKeyError

    with pytest.raises(RegistryKeyError, match="unknown metric 'no_such_metric'"):
        run(compose([f"output_dir={tmp_path}", "run_id=bad", "metrics.only=[no_such_metric]"]))
    assert not (tmp_path / "bad").exists()
