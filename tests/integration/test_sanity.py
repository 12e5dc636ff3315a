"""`mova-eval sanity` on the smoke suite: AV-Align detects a 200 ms offset, WER detects SNR 0 dB, and a metric that
cannot see the defect is called blind (that metric is defined here, never registered in the package)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mova_eval.metrics.base import ItemScore, Metric, MetricInfo, Output
from mova_eval.spec import Clip, SuiteItem


class BlindToSound(Metric):
    """Test-only: claims to see A/V sync and noise, but reads only the first frame's brightness."""

    __abstract__ = True  # never registered, even if a registry walked this module
    info = MetricInfo(name="blind_test", outputs=(Output("blind_test", "higher"),), needs=frozenset({"audio", "video"}))
    sanity_expectations = {"blind_test": {"audio_offset": "falls", "noise": "falls"}}

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        return ItemScore({"blind_test": float(np.asarray(clip.video[0], np.float64).mean())})


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from mova_eval.config import compose
    from mova_eval.generators.synthetic import Espeak
    from mova_eval.sanity import run_sanity

    if not Espeak.get().available:
        pytest.skip("WER needs spoken synthetic clips: espeak-ng is not usable here")
    out = tmp_path_factory.mktemp("sanity")
    cfg = compose(["metrics.only=[av_align,wer]", "runtime.progress=false", "runtime.bootstrap=400"])
    return run_sanity(cfg, out, kinds=["audio_offset", "noise"],
                      strengths={"audio_offset": [200], "noise": [0]}, extra_metrics=[BlindToSound()])


def _verdict(result, output, defect):
    return next(v for v in result.verdicts if v.output == output and v.defect == defect)


@pytest.mark.slow
def test_known_sensitivities_and_a_blind_metric(result):
    av = _verdict(result, "av_align", "audio_offset")
    assert av.verdict == "detects" and av.detected == ["audio_offset +200 ms"], av
    wer = _verdict(result, "wer", "noise")
    assert wer.verdict == "detects" and wer.smallest == "noise 0 dB SNR", wer
    for defect in ("audio_offset", "noise"):
        assert _verdict(result, "blind_test", defect).verdict == "blind"
    cell = next(c for c in result.cells if c.output == "av_align" and c.defect == "audio_offset")
    assert cell.n == 10 and cell.delta < 0 and cell.ci_high < 0
    blind = next(c for c in result.cells if c.output == "blind_test" and c.defect == "audio_offset")
    assert blind.n == 10 and blind.delta == 0.0
    # AV-Align reads the picture, WER does not: WER is never re-scored under a video defect, and a metric
    # with nothing to say about an item (WER on music) is not scored at all.
    wer_rows = result.rows[result.rows["metric"] == "wer"]
    assert set(wer_rows["item_id"]) == {"smoke_en_01", "smoke_en_02", "smoke_dialogue_01"}


@pytest.mark.slow
def test_outputs_record_every_defect_and_write_cards(result):
    out = result.out_dir
    data = json.loads((out / "sanity.json").read_text())
    assert data["counts"]["variants"] == 20 and data["counts"]["defected_scored"] > 0
    records = [json.loads(line) for line in (out / "defects.jsonl").read_text().splitlines()]
    offsets = [r for r in records if r["kind"] == "audio_offset"]
    assert len(offsets) == 10 and all(r["details"]["shift_samples"] == 3200 for r in offsets)  # 16 kHz clips
    assert all(r["seed"] == 0 and r["source_hash"] for r in records)
    for family in ("av_align", "wer", "blind_test"):
        md = (out / "cards" / f"{family}.md").read_text()
        assert "| audio_offset +200 ms |" in md or family == "wer"
        assert (out / "cards" / f"{family}.html").read_text().startswith("<!doctype html>")
    assert (out / "cards" / "plots" / "av_align.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "| av_align | ✓ ≥+200 ms |" in summary and "| blind_test | blind | blind |" in summary


@pytest.mark.slow
def test_a_rerun_scores_nothing_new(result, tmp_path):
    from mova_eval.config import compose
    from mova_eval.sanity import run_sanity

    cfg = compose(["metrics.only=[av_align,wer]", "runtime.progress=false", "runtime.bootstrap=400"])
    again = run_sanity(cfg, tmp_path, kinds=["audio_offset", "noise"], strengths={"audio_offset": [200], "noise": [0]})
    assert again.counts["scored"] == 0 and again.counts["cache_hits"] > 0
    a = {(c.output, c.defect): c.delta for c in again.cells}
    b = {(c.output, c.defect): c.delta for c in result.cells if c.output != "blind_test"}
    assert a == b and all(math.isfinite(v) for v in a.values())


def test_expectations_are_declared_data(tmp_path):
    from mova_eval.errors import ConfigError
    from mova_eval.metrics.wer import WerMetric
    from mova_eval.sanity import _parse, expectations_for, packaged_expectations

    table = packaged_expectations()
    assert table["lse_c"]["audio_offset"] == "falls" and table["desync"]["audio_offset"] == "rises"
    assert table["wer"]["noise"] == "rises" and table["clap"]["swap_audio"] == "falls"
    e = expectations_for(WerMetric())
    assert e[("wer", "noise")].expect == "rises" and e[("wer", "noise")].source == "packaged"
    assert expectations_for(BlindToSound())[("blind_test", "noise")].source == "metric"
    with pytest.raises(ConfigError):
        _parse("x", "noise", "wobbles", "metric")
    with pytest.raises(ConfigError):
        _parse("x", "noise", {"expect": "unchanged"}, "metric")
    with pytest.raises(ConfigError):
        _parse("x", "no_such_defect", "falls", "metric")


def _cell(strength, delta, lo, hi, n=10, defect="noise"):
    from mova_eval import defects
    from mova_eval.sanity import Cell

    k = defects.get(defect)
    return Cell("x", "fam", defect, strength, defects.format_strength(defect, strength, k.unit), k.magnitude(strength),
                n, 0, 0, "", 1.0, 1.0 + delta, delta, lo, hi)


class _Declares(Metric):
    __abstract__ = True
    info = MetricInfo(name="fam", outputs=(Output("x", "lower"),), needs=frozenset({"audio"}))


def _judge(table, cells):
    from mova_eval.sanity import judge

    cls = type("Declared", (_Declares,), {"sanity_expectations": table, "__abstract__": True})
    (v,) = judge(cells, [cls()])
    return v


def test_verdict_rules():
    rises = {"x": {"noise": "rises"}}
    v = _judge(rises, [_cell(30, 0.01, -0.01, 0.03), _cell(10, 0.2, 0.1, 0.3), _cell(0, 0.5, 0.4, 0.6)])
    assert (v.verdict, v.smallest, v.monotone) == ("detects", "noise 10 dB SNR", True)
    v = _judge(rises, [_cell(10, 0.5, 0.4, 0.6), _cell(0, 0.1, 0.05, 0.2)])
    assert v.verdict == "detects" and v.monotone is False  # the stronger defect moves it significantly less
    assert _judge(rises, [_cell(0, -0.3, -0.4, -0.2)]).verdict == "wrong direction"
    assert _judge(rises, [_cell(10, 0.3, 0.2, 0.4), _cell(0, -0.3, -0.4, -0.2)]).verdict == "mixed"
    assert _judge(rises, [_cell(0, 0.3, -0.1, 0.7)]).verdict == "blind"
    assert _judge(rises, [_cell(0, 0.3, float("nan"), float("nan"), n=1)]).verdict == "too few items"
    assert _judge(rises, [_cell(0, float("nan"), float("nan"), float("nan"), n=0)]).verdict == "undefined"
    same = {"x": {"noise": {"expect": "unchanged", "tolerance": 0.1}}}
    assert _judge(same, [_cell(0, 0.0, -0.05, 0.05)]).verdict == "invariant"
    assert _judge(same, [_cell(0, 0.3, 0.2, 0.4)]).verdict == "violated"
    assert _judge(same, [_cell(0, 0.05, -0.05, 0.15)]).verdict == "inconclusive"
    v = _judge({}, [_cell(0, 0.3, 0.2, 0.4)])
    assert v.verdict == "not declared" and v.moves
