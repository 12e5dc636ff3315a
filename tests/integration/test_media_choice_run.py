"""media.audio_track and the decode record of a run (issue 15 item 2), end to end with the directory generator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mova_eval import config, media, runner
from mova_eval.errors import ConfigError
from tests.unit.test_media_tracks import SR, _tone, _write_tracks


def _run(tmp_path, clips, *extra):
    cfg = config.compose(["suite=smoke", "suite.limit=1", "generator=directory", f"generator.path={clips}",
                          f"output_dir={tmp_path / 'runs'}", "metrics.only=[loudness]", "runtime.progress=false",
                          "runtime.bootstrap=0", "runtime.device=cpu", *extra])
    return runner.run(cfg)


@pytest.fixture
def clips(tmp_path):
    d = tmp_path / "clips"
    (d / "speech_en").mkdir(parents=True)
    # silent first track (flagged default by the mp4 muxer), a loud clipped second track
    _write_tracks(d / "speech_en" / "smoke_en_01_video_step1_seed0.mp4", [np.zeros((1, 2 * SR), np.float32), np.clip(_tone(2 * SR, 3.0), -1, 1)])
    return d


def test_run_records_the_track_and_warns_about_clipping(tmp_path, monkeypatch, clips):
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    out = _run(tmp_path, clips)
    rec = json.loads((out.run_dir / "run.json").read_text())
    (d,) = rec["decode"].values()
    assert d["audio_track"] == 1 and d["audio_tracks"] == 2
    assert d["clipping_fraction"] > media.CLIP_WARN_FRACTION
    assert any("clipped audio" in w for w in rec["warnings"])
    loud = out.items[out.items["error"].isna()]
    assert len(loud) and np.isfinite(loud["value"]).all()

    # the override picks the silent track: a different decode, so not the cached score of track 1
    out0 = _run(tmp_path, clips, "media.audio_track=0", "run_id=t0")
    rec0 = json.loads((out0.run_dir / "run.json").read_text())
    (d0,) = rec0["decode"].values()
    assert (d0["audio_track"], d0["audio_track_rule"]) == (0, "media.audio_track")
    assert not rec0["warnings"]
    merged = out.items.merge(out0.items, on="metric", suffixes=("_1", "_0"))
    assert (merged["value_1"].fillna(-1) != merged["value_0"].fillna(-1)).any()

    # both decodes are cached now: a re-run of each decodes nothing, with the same values and decode record
    calls = []
    real = media.decode
    monkeypatch.setattr(media, "decode", lambda path, **kw: calls.append(path) or real(path, **kw))
    for prev, extra in ((out, ()), (out0, ("media.audio_track=0",))):
        again = _run(tmp_path, clips, *extra, f"run_id=again{len(calls)}{len(extra)}")
        assert calls == [], calls
        assert again.items["value"].fillna(-1).tolist() == prev.items["value"].fillna(-1).tolist()
        assert json.loads((again.run_dir / "run.json").read_text())["decode"] == \
            json.loads((prev.run_dir / "run.json").read_text())["decode"]


def test_missing_track_is_an_item_error_and_bad_values_are_refused(tmp_path, monkeypatch, clips):
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    out = _run(tmp_path, clips, "media.audio_track=5")
    errs = out.items["error"].dropna()
    assert len(errs) and errs.str.contains("AudioTrackError").all()
    assert errs.str.contains("media.audio_track=5 does not exist").all()
    for bad in ("media.audio_track=-1", "media.audio_track=abc"):
        with pytest.raises(ConfigError, match="media.audio_track"):
            _run(tmp_path, clips, bad)
