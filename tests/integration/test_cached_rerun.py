"""A fully cached re-run decodes nothing (issue 14 item 2): the score and feature keys depend only on the clip's
bytes, so the runner reads every metric's value from the caches before decoding and decodes only a clip that some
metric still has to score (a failure is never cached, so that clip is decoded again)."""
from __future__ import annotations

import numpy as np
import pytest

from mova_eval import media
from mova_eval import runner as runner_mod
from mova_eval.config import compose
from mova_eval.metrics.base import SET_LEVEL, MetricInfo, Output, SetLevelMetric, SetResult
from mova_eval.registry import metric_classes


class _Peak(SetLevelMetric):
    """Set-level test metric: mean over the group of each clip's peak; fails on the items named in ``FAIL_ON``."""

    FAIL_ON: set[str] = set()
    info = MetricInfo(name="test_peak", outputs=(Output("test_peak", "none"),), needs=frozenset({"audio"}),
                      aggregation=SET_LEVEL)

    def features(self, clip, item):
        if item.id in self.FAIL_ON:
            raise RuntimeError("no features for this item")
        return np.array([float(np.abs(clip.audio).max())])

    def compute(self, features, items):
        return SetResult({"test_peak": float(np.mean([f[0] for f in features]))})


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """The run with a tmp cache root, the test metric registered, and every media.decode call counted."""
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    classes = {**metric_classes(), "test_peak": _Peak}
    monkeypatch.setattr(runner_mod, "metric_classes", lambda: classes)
    monkeypatch.setattr(runner_mod, "get_metric_class", lambda name: classes[name])
    monkeypatch.setattr(_Peak, "FAIL_ON", set())
    calls: list[str] = []
    real = media.decode

    def spy(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(media, "decode", spy)

    def run(run_id):
        calls.clear()
        out = runner_mod.run(compose([f"output_dir={tmp_path / 'runs'}", f"run_id={run_id}", "suite.limit=4",
                                      "metrics.only=[loudness,test_peak]", "runtime.progress=false",
                                      "runtime.bootstrap=20"]))
        return out, list(calls)

    return run


def _values(out):
    items = out.items.sort_values(["item_id", "metric"])
    return items[["item_id", "metric", "value"]].to_dict("records")


def test_a_fully_cached_rerun_decodes_no_clip(counted):
    first, first_calls = counted("a")
    assert len(first_calls) == 4, first_calls  # the cold run decodes each clip once
    second, second_calls = counted("b")
    assert second_calls == [], f"a fully cached re-run decoded {second_calls}"
    assert _values(second) == _values(first) and len(_values(first)) == 8
    assert second.log.decode == first.log.decode and len(first.log.decode) == 4  # run.json's decode record too
    feats = second.features.sort_values("item_id")
    assert feats["error"].isna().all() and feats["cache_key"].tolist() == \
        first.features.sort_values("item_id")["cache_key"].tolist()
    peak = [r.mean for r in second.log.summary if r.metric == "test_peak" and r.category == "all"]
    assert peak == [r.mean for r in first.log.summary if r.metric == "test_peak" and r.category == "all"]
    assert np.isfinite(peak[0])


def test_only_the_clip_with_an_uncached_failure_is_decoded_again(counted, monkeypatch, tmp_path):
    probe, _ = counted("probe")  # learn the item ids; then start again from an empty cache
    failing = sorted(probe.items["item_id"].unique())[1]
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setattr(_Peak, "FAIL_ON", {failing})
    first, first_calls = counted("a")
    assert len(first_calls) == 4
    second, second_calls = counted("b")
    clip = first.features.set_index("item_id").loc[failing, "clip_path"]
    assert second_calls == [clip], f"expected only {clip} (its failure is never cached) to be decoded: {second_calls}"
    row = second.features.set_index("item_id").loc[failing]
    assert "no features for this item" in row["error"] and row["cache_key"] is None
