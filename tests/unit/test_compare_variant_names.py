"""compare/gates know the output names an option selects, by the runner's rule (the configured instance's
``requested_outputs()``): a run that set ``ib_score.scale: 100`` writes ``ib_score_x100``, a gate may name it; a
gate naming a variant neither run configured is refused with a message that says so."""
from __future__ import annotations

from pathlib import Path

import pytest

from mova_eval.compare import Side, known_outputs, load_gate
from mova_eval.errors import ConfigError
from mova_eval.registry import metric_classes
from mova_eval.results import MetricStatus, RunLog, write_run_json


def _run(tmp_path: Path, name: str, statuses: list[MetricStatus]) -> Side:
    d = tmp_path / name
    d.mkdir()
    write_run_json(d, RunLog(run_id=name, created="t", config={}, config_hash="h", suite={}, generator={},
                             metrics=statuses, packages={}, git_revision=None, python="3", platform="p", device="cpu"))
    return Side(d, name, [], None)


def _status(name: str, options: dict) -> MetricStatus:
    opts = dict(metric_classes()[name](options).options)  # as select_metrics records them: every declared key
    return MetricStatus(name=name, version="x", available=True, options=opts)


def _gate(tmp_path: Path, metric: str) -> Path:
    p = tmp_path / f"gate-{metric}.yaml"
    p.write_text(f"metrics:\n  {metric}: {{max_regression: 0.01}}\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("metric,options,name", [
    ("ib_score", {"scale": 100}, "ib_score_x100"),
    ("av_align", {"decode": "corrected"}, "av_align_corrected"),
    ("dnsmos", {"decode": "corrected", "outputs": ["dnsmos_p808", "dnsmos_ovrl"]}, "dnsmos_ovrl_corrected"),
    ("is", {"mode": "av_bench"}, "is_av_bench"),
])
def test_a_gate_may_name_what_the_runs_configured(tmp_path, metric, options, name):
    default = _run(tmp_path, "base", [_status(metric, {})])
    with pytest.raises(ConfigError, match=rf"{name}'? is what {metric} writes with other options"):
        load_gate(_gate(tmp_path, name), known_outputs([default, default]))
    configured = _run(tmp_path, "cand", [_status(metric, options)])
    gate = load_gate(_gate(tmp_path, name), known_outputs([default, configured]))
    assert [r.metric for r in gate.rules] == [name]


def test_default_names_and_typos(tmp_path):
    assert {"ib_score", "dnsmos_p808", "av_align", "is"} <= known_outputs()  # no run: the defaults
    assert "ib_score_x100" not in known_outputs()
    with pytest.raises(ConfigError, match="no metric of this mova-eval has an output named 'av_algin'.*av_align"):
        load_gate(_gate(tmp_path, "av_algin"))
