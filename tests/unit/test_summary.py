"""summary.parquet: typed exclusion reasons, the groups (category, language, all), and the file round-trip."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mova_eval.summary import (
    ALL,
    REASONS,
    ExclusionReason,
    SummaryFileError,
    SummaryRecord,
    classify_error,
    describe_exclusions,
    frame_to_records,
    load_summary,
    records_to_frame,
    summarize_items,
    write_summary,
)


@pytest.mark.parametrize("error, reason", [
    ("GenerationError: no clip for item a1 in /clips (expected /clips/set1/a1*.mp4)", ExclusionReason.MISSING_CLIP),
    ("MissingStreamError: /c/a.mp4: has no audio stream", ExclusionReason.MEDIA_ERROR),
    ("UnreadableMediaError: /c/a.mp4: moov atom not found", ExclusionReason.MEDIA_ERROR),
    ("ShortClipError: /c/a.mp4: 10 frames < 16", ExclusionReason.MEDIA_ERROR),   # a MediaError defined in metrics/fvd
    ("NotApplicable: item a1 has no audio prompt", ExclusionReason.NOT_APPLICABLE),
    ("EnglishOnlyModel: model tiny.en is English-only", ExclusionReason.UNSUPPORTED_LANGUAGE),
    ("MetricUnavailable: lse is unavailable: weights missing", ExclusionReason.METRIC_UNAVAILABLE),
    ("unavailable: model tiny.en is English-only; use metrics.options.cer.model=…",  # wer.py's free text
     ExclusionReason.UNSUPPORTED_LANGUAGE),
    ("unavailable: weights missing", ExclusionReason.METRIC_UNAVAILABLE),
    ("ValueError: operands could not be broadcast", ExclusionReason.METRIC_ERROR),
    ("no value (metric gave no reason)", ExclusionReason.METRIC_ERROR),
    (None, ExclusionReason.METRIC_ERROR),
])
def test_errors_map_to_typed_reasons(error, reason):
    assert classify_error(error) is reason


def _items(values, errors=None, cats=None, langs=None, metric="av_align", family="av_align"):
    n = len(values)
    return pd.DataFrame({
        "run_id": "r", "suite": "verse", "item_id": [f"i{k}" for k in range(n)],
        "category": cats or ["set1"] * n, "language": langs or ["none"] * n, "generator": "synthetic",
        "model": "M", "seed": 0, "family": family, "metric": metric, "value": np.array(values, float),
        "error": errors or [None] * n, "details": None, "numerator": np.nan, "denominator": np.nan,
        "clip_path": None, "clip_hash": None})


def test_groups_means_and_exclusions_by_reason():
    items = _items([0.2, 0.4, np.nan, 0.9, np.nan, 0.1],
                   errors=[None, None, "GenerationError: no clip", None, "MissingStreamError: x: has no audio stream",
                           None],
                   cats=["set1", "set1", "set1", "set3", "set3", "set3"],
                   langs=["none", "none", "none", "en", "en", "zh"])
    recs = {(r.category, r.language): r for r in summarize_items(items, run_id="r", suite="verse", model="M",
                                                                   generator="synthetic", n_boot=50)}
    assert set(recs) == {(ALL, ALL), ("set1", ALL), ("set3", ALL), (ALL, "none"), (ALL, "en"), (ALL, "zh")}
    # av_align is a category-mean metric: all = mean(mean(set1), mean(set3)), hand-computed
    assert recs[(ALL, ALL)].mean == pytest.approx(((0.2 + 0.4) / 2 + (0.9 + 0.1) / 2) / 2)
    assert recs[("set3", ALL)].mean == pytest.approx(0.5) and recs[("set3", ALL)].aggregation == "pooled_mean"
    assert recs[(ALL, "zh")].mean == pytest.approx(0.1) and recs[(ALL, "zh")].n == 1
    a = recs[(ALL, ALL)]
    assert a.n == 4 and a.n_excluded == 2
    assert a.excluded[ExclusionReason.MISSING_CLIP] == 1 and a.excluded[ExclusionReason.MEDIA_ERROR] == 1
    assert a.note == "1 missing clip, 1 media error"
    assert recs[("set1", ALL)].excluded[ExclusionReason.MISSING_CLIP] == 1
    assert recs[("set1", ALL)].excluded[ExclusionReason.MEDIA_ERROR] == 0
    assert math.isfinite(a.ci_low) and a.ci_low <= a.mean <= a.ci_high


def test_all_nan_is_nan_never_zero():
    items = _items([np.nan, np.nan], errors=["ValueError: boom", "ValueError: boom"])
    rec = next(r for r in summarize_items(items, run_id="r", suite="verse", model="M", generator="g", n_boot=10)
               if r.category == ALL and r.language == ALL)
    assert math.isnan(rec.mean) and rec.n == 0 and rec.excluded[ExclusionReason.METRIC_ERROR] == 2


def test_summary_parquet_round_trips(tmp_path):
    rec = SummaryRecord(run_id="r1", suite="verse", model="MOVA-360p", generator="directory", family="dnsmos",
                        metric="dnsmos_p808", category="set3", language=ALL, mean=3.722, ci_low=3.70, ci_high=3.75,
                        n=40, excluded={**{r: 0 for r in REASONS}, ExclusionReason.MISSING_CLIP: 2,
                                        ExclusionReason.UNSUPPORTED_LANGUAGE: 1},
                        direction="higher", unit="MOS", aggregation="pooled_mean", note="2 missing clip",
                        config_hash="abc")
    empty = SummaryRecord(run_id="r1", suite="verse", model="MOVA-360p", generator="directory", family="lse",
                          metric="lse_c", category=ALL, language="zh", mean=math.nan, ci_low=math.nan,
                          ci_high=math.nan, n=0, direction="higher")
    run = tmp_path / "run"
    run.mkdir()
    path = write_summary(run, [rec, empty])
    back = frame_to_records(pd.read_parquet(path))
    assert back[0] == rec
    assert back[1].run_id == "r1" and math.isnan(back[1].mean) and back[1].n_excluded == 0
    frame = load_summary(path)
    assert list(frame.columns) == list(records_to_frame([rec]).columns)
    assert frame.loc[0, "excluded"] == 3 and frame.loc[0, "excluded_missing_clip"] == 2
    assert frame.loc[0, "excluded_unsupported_language"] == 1
    assert describe_exclusions(back[0].excluded) == "2 missing clip, 1 unsupported language"


def test_load_summary_refuses_what_is_not_a_summary(tmp_path):
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    with pytest.raises(SummaryFileError, match="missing columns"):
        load_summary(bad)
    with pytest.raises(SummaryFileError, match="does not exist"):
        load_summary(tmp_path / "nope")
    with pytest.raises(SummaryFileError, match="matches nothing"):
        load_summary(str(tmp_path / "runs-*"))
