"""A metric that fails on a clip records NaN under the outputs its instance reports, not the class's defaults: an
option that renames the outputs (a decode variant, a scale) must not file its failures under the other variant's
name."""
from __future__ import annotations

import math
from types import SimpleNamespace

from mova_eval import runner
from mova_eval.metrics.clap import ClapMova
from mova_eval.metrics.ib_score import IBScoreMetric
from mova_eval.spec import GenRequest, SuiteItem

CTX = SimpleNamespace(run_id="r", suite="s", generator="g", model="m")
REQ = GenRequest(request_id="a-0", item=SuiteItem(id="a", prompt="p", category="set1"), seed=0)


def _names(metric) -> list[str]:
    rows = runner._error_rows(CTX, REQ, metric, "MediaError: x").items
    assert all(math.isnan(r.value) and r.error == "MediaError: x" for r in rows)
    return [r.metric for r in rows]


def test_error_rows_carry_the_instance_output_names():
    assert _names(ClapMova({})) == ["clap_mova"]
    assert _names(ClapMova({"decode": "corrected"})) == ["clap_mova_corrected"]
    assert _names(IBScoreMetric({"scale": 100}))[0] == "ib_score_x100"
    assert _names(ClapMova) == ["clap_mova"]  # a class (the metric could not be built): its declared outputs
