"""Static shards: `suite.shard=0/2` + `1/2` run separately and `mova-eval merge` give the single run's tables and
summary (per-item and set-level metrics); shards that are not one experiment, or do not cover the suite exactly
once, are refused naming the directories."""
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mova_eval import registry as registry_mod
from mova_eval import runner as runner_mod
from mova_eval.cli import main
from mova_eval.config import compose
from mova_eval.errors import ConfigError, ResultsError
from mova_eval.merge import merge_runs
from mova_eval.metrics.base import SET_LEVEL, MetricInfo, Output, SetLevelMetric, SetResult
from mova_eval.registry import metric_classes
from mova_eval.results import read_run_json
from mova_eval.runner import run

BASE = ["metrics.only=[loudness,test_shard_level]", "runtime.progress=false", "runtime.bootstrap=50",
        "runtime.cache=false"]
ITEM_KEYS = ["suite", "item_id", "category", "language", "generator", "model", "seed", "family", "metric"]


class _ShardLevel(SetLevelMetric):
    """A set-level metric whose value depends on the whole group (a spread), so that a merge which averaged the
    shards' values instead of recomputing from the features would differ."""

    info = MetricInfo(name="test_shard_level", outputs=(Output("test_shard_level", "none"),),
                      needs=frozenset({"audio"}), aggregation=SET_LEVEL)

    def features(self, clip, item):
        if item.category == "music":
            raise RuntimeError("no features for music")
        return np.array([float(np.abs(clip.audio).mean())])

    def compute(self, features, items):
        v = [f[0] for f in features]
        return SetResult({"test_shard_level": float(np.max(v) - np.min(v) + np.mean(v))}, note=f"n={len(v)}")


@pytest.fixture(scope="module")
def runs():
    # a folder of its own rather than tmp_path_factory's: pytest runs of other sessions on this machine rotate the
    # shared /tmp/pytest-of-USER base folders, which can remove a module fixture's folder while its tests run
    tmp = Path(tempfile.mkdtemp(prefix="mova-eval-shards-"))
    classes = {**metric_classes(), "test_shard_level": _ShardLevel}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_mod, "metric_classes", lambda: classes)
        mp.setattr(runner_mod, "get_metric_class", lambda name: classes[name])
        mp.setattr(registry_mod, "get_metric_class", lambda name: classes[name])  # merge looks the class up there
        single = run(compose([f"output_dir={tmp}", "run_id=single", *BASE]))
        for i in range(2):
            run(compose([f"output_dir={tmp}", f"run_id=s{i}", f"suite.shard={i}/2", *BASE]))
        yield tmp, single
    shutil.rmtree(tmp, ignore_errors=True)


def _merge(tmp, dirs, out="merged"):
    return merge_runs([tmp / d for d in dirs], tmp / out)


def test_merged_shards_equal_the_single_run(runs, monkeypatch):
    tmp, single = runs
    classes = {**metric_classes(), "test_shard_level": _ShardLevel}
    monkeypatch.setattr(runner_mod, "metric_classes", lambda: classes)
    monkeypatch.setattr(runner_mod, "get_metric_class", lambda name: classes[name])
    s0, s1 = read_run_json(tmp / "s0"), read_run_json(tmp / "s1")
    assert 0 < s0.suite["items"] < 10 and s0.suite["items"] + s1.suite["items"] == 10
    merged = _merge(tmp, ["s1", "s0"], out="m")  # the order of the directories does not matter
    assert merged.log.status == "complete" and merged.log.run_id == "m"
    assert merged.log.config_hash == single.log.config_hash  # the unsharded configuration
    assert merged.log.suite == single.log.suite and merged.log.counts["items"] == 10
    cols = [*ITEM_KEYS, "value", "error"]
    pd.testing.assert_frame_equal(merged.items[cols], single.items[cols])
    # the merged rows carry the clip each shard scored (not the single run's: the shards generated their own
    # clips, whose bytes may differ in libx264's final bytes while decoding the same; see generators/synthetic.py)
    shard_rows = pd.concat([pd.read_parquet(tmp / d / "items.parquet") for d in ("s0", "s1")])
    by_request = shard_rows.set_index(["item_id", "seed", "metric"])["clip_hash"]
    carried = by_request.loc[list(zip(merged.items["item_id"], merged.items["seed"], merged.items["metric"]))]
    assert merged.items["clip_hash"].notna().all() and list(merged.items["clip_hash"]) == list(carried)
    assert (merged.items["run_id"] == "m").all()
    assert read_run_json(tmp / "m").merged_from == [str((tmp / "s0").resolve()), str((tmp / "s1").resolve())]
    assert single.log.merged_from == []
    fcols = ["item_id", "category", "seed", "extractor", "cache_key", "error"]
    pd.testing.assert_frame_equal(merged.features[fcols], single.features[fcols])
    # summary rows: means, CIs (stats.summarize seeds its bootstrap with 0), n and exclusions
    key = lambda r: (r.metric, r.category)  # noqa: E731
    want = sorted((r.model_dump() for r in single.log.summary), key=lambda d: (d["metric"], d["category"]))
    got = sorted((r.model_dump() for r in merged.log.summary), key=lambda d: (d["metric"], d["category"]))
    assert got == want
    level = {key(r): r for r in merged.log.summary if r.family == "test_shard_level"}
    assert level[("test_shard_level", "all")].n == 9 and level[("test_shard_level", "all")].excluded == 1
    shard_all = [r for lg in (s0, s1) for r in lg.summary if r.family == "test_shard_level" and r.category == "all"]
    assert all(r.mean != level[("test_shard_level", "all")].mean for r in shard_all)  # recomputed, not copied
    summ = lambda d: pd.read_parquet(d / "summary.parquet").drop(columns=["run_id"]).sort_values(  # noqa: E731
        ["metric", "category", "language"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(summ(tmp / "m"), summ(tmp / "single"))
    assert set(merged.log.generation) == set(single.log.generation)


def test_cli_merge(runs, monkeypatch, capsys):
    tmp, _ = runs
    classes = {**metric_classes(), "test_shard_level": _ShardLevel}
    monkeypatch.setattr(runner_mod, "metric_classes", lambda: classes)
    monkeypatch.setattr(runner_mod, "get_metric_class", lambda name: classes[name])
    assert main(["merge", str(tmp / "s0"), str(tmp / "s1"), "--out", str(tmp / "cli")]) == 0
    assert "lufs" in capsys.readouterr().out and (tmp / "cli" / "items.parquet").is_file()
    assert main(["merge", str(tmp / "s0"), str(tmp / "s1"), "--out", str(tmp / "cli")]) == 2  # already a run
    assert "already holds a run" in capsys.readouterr().err


def _copy(tmp, src, dst):
    shutil.copytree(tmp / src, tmp / dst, ignore=shutil.ignore_patterns("run.lock"))
    return tmp / dst


def _edit_log(d, fn):
    log = json.loads((d / "run.json").read_text())
    fn(log)
    (d / "run.json").write_text(json.dumps(log))


def test_a_missing_or_repeated_shard_is_refused(runs):
    tmp, _ = runs
    with pytest.raises(ConfigError, match=r"shard\(s\) 1/2 missing"):
        _merge(tmp, ["s0"], out="x1")
    dup = _copy(tmp, "s0", "s0_again")
    with pytest.raises(ConfigError, match=r"shard 0/2 is given twice: .*s0 and .*s0_again"):
        _merge(tmp, ["s0", "s0_again", "s1"], out="x2")
    with pytest.raises(ConfigError, match="not run with suite.shard"):
        _merge(tmp, ["single", "s1"], out="x3")
    assert not (tmp / "x1").exists() and not (tmp / "x2").exists() and dup.is_dir()


def test_shards_of_different_configurations_are_refused(runs):
    tmp, _ = runs
    other = _copy(tmp, "s1", "s1_other")
    _edit_log(other, lambda log: log["config"].update(seeds=[0, 1]))
    with pytest.raises(ConfigError, match=r"s1_other and .*s0 are not shards of one configuration.*seeds"):
        _merge(tmp, ["s0", "s1_other"], out="x4")
    boot = _copy(tmp, "s1", "s1_boot")
    _edit_log(boot, lambda log: log["config"]["runtime"].update(bootstrap=7))
    with pytest.raises(ConfigError, match="runtime.bootstrap"):
        _merge(tmp, ["s0", "s1_boot"], out="x5")
    fresh = _copy(tmp, "s1", "s1_workers")  # a runtime knob that does not change results may differ
    _edit_log(fresh, lambda log: log["config"]["runtime"].update(workers=3))
    assert _merge(tmp, ["s0", "s1_workers"], out="x6").log.status == "complete"


def test_unfinished_shards_and_bad_coverage_are_refused(runs):
    tmp, _ = runs
    running = _copy(tmp, "s1", "s1_running")
    _edit_log(running, lambda log: log.update(status="running", finished=None))
    with pytest.raises(ResultsError, match="s1_running: is not a finished run"):
        _merge(tmp, ["s0", "s1_running"], out="x7")
    s0 = read_run_json(tmp / "s0")
    stolen = sorted(s0.generation)[0]
    twice = _copy(tmp, "s1", "s1_twice")
    _edit_log(twice, lambda log: log["generation"].update({stolen: s0.generation[stolen]}))
    with pytest.raises(ResultsError, match=rf"s1_twice: request {stolen} is also in .*s0"):
        _merge(tmp, ["s0", "s1_twice"], out="x8")
    short = _copy(tmp, "s1", "s1_short")
    gone = sorted(read_run_json(short).generation)[0]
    item = gone.split("#s")[0]
    _edit_log(short, lambda log: log["generation"].pop(gone))
    for table in ("items.parquet", "features.parquet"):
        frame = pd.read_parquet(short / table)
        frame[frame["item_id"] != item].to_parquet(short / table, index=False)
    with pytest.raises(ResultsError, match=rf"1 request\(s\) missing, e.g. {gone} \(shard 1/2: .*s1_short\)"):
        _merge(tmp, ["s0", "s1_short"], out="x9")


def test_a_feature_cache_that_is_not_shared_is_refused(runs, tmp_path, monkeypatch):
    tmp, _ = runs
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "another-machine"))
    with pytest.raises(ResultsError, match=r"features of 9 item\(s\) recorded by the shards are not in this cache"):
        _merge(tmp, ["s0", "s1"], out="x10")
