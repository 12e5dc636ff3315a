"""The exit rules of `mova-eval run` on hand-made summary records (the integration tests run each rule for real)."""
from __future__ import annotations

import math

from mova_eval.run_checks import check_run
from mova_eval.summary import ALL, REASONS, ExclusionReason, SummaryRecord


def rec(family, metric, mean, n, **excl):
    counts = {r: 0 for r in REASONS}
    for k, v in excl.items():
        counts[ExclusionReason(k)] = v
    return SummaryRecord(run_id="r", suite="smoke", model="m", generator="synthetic", family=family, metric=metric,
                         category=ALL, language=ALL, mean=mean, ci_low=math.nan, ci_high=math.nan, n=n,
                         excluded=counts, aggregation="corpus")


def rules(records, **kw):
    args = dict(failed_requested={}, allow_unavailable=False, fail_on_error=None, error_rows=0, total_rows=10)
    return [r for r, _ in check_run(records=records, **{**args, **kw})]


def test_nothing_fires_on_a_good_run():
    assert rules([rec("wer", "wer", 0.1, 3)]) == []


def test_unsupported_language_only_fails_when_the_metric_was_asked_for():
    cer = rec("cer", "cer", math.nan, 0, unsupported_language=2)
    assert rules([cer]) == []                       # picked by the default run: nothing it could measure
    assert rules([cer], requested=["cer"]) == ["no_value"]
    assert rules([rec("cer", "cer", math.nan, 0, metric_error=2)]) == ["no_value"]
    assert rules([rec("cer", "cer", math.nan, 0)]) == []  # no item in scope at all


def test_unavailable_requested_metric():
    lse = rec("lse", "lse_c", math.nan, 0, metric_unavailable=6)
    out = rules([lse], failed_requested={"lse": "weights missing"}, requested=["lse"])
    assert out == ["unavailable"]  # no second no_value line for the same cause
    assert rules([lse], failed_requested={"lse": "weights missing"}, requested=["lse"], allow_unavailable=True) == []


def test_error_fraction():
    assert rules([rec("wer", "wer", 0.1, 3)], fail_on_error=0.2, error_rows=3, total_rows=10) == ["error_fraction"]
    assert rules([rec("wer", "wer", 0.1, 3)], fail_on_error=0.3, error_rows=3, total_rows=10) == []


def test_an_output_nan_by_design_does_not_fail_a_metric_that_measured():
    # IS in MOVA's mode reports no is_std (one split): `is` has its value, so the metric measured something
    is_mean = rec("is", "is", 4.2, 8)
    is_std = rec("is", "is_std", math.nan, 8, metric_error=0)
    std_only = [SummaryRecord(**{**is_std.__dict__, "aggregation": "set_level"})]
    assert rules([is_mean, *std_only], requested=["is"]) == []
    assert rules(std_only, requested=["is"]) == ["no_value"]  # alone, the same record still fires
