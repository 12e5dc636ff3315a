"""The runner decodes only the streams the run's metrics need (issue 14 item 2): audio-only metrics never decode
every frame to RGB; a metric that needs video still gets it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mova_eval import media, runner
from mova_eval.config import compose


@pytest.mark.parametrize("metric,row,video_expected", [("loudness", "lufs", False), ("av_align", "av_align", True)])
def test_runner_decodes_only_the_needed_streams(tmp_path, monkeypatch, metric, row, video_expected):
    sr = 16_000
    t = np.arange(2 * sr) / sr
    clips = tmp_path / "clips"
    frames = (np.random.default_rng(0).integers(0, 255, (48, 32, 32, 3))).astype(np.uint8)
    media.encode(clips / "a1_video.mp4", frames, 24, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"set1": {"a1": {"prompt": "a tone", "video_prompt": "", "audio_prompt": []}}}))
    calls = []
    real = media.decode

    def spy(path, **kw):
        clip = real(path, **kw)
        calls.append((kw, clip.video is not None, clip.audio is not None))
        return clip

    monkeypatch.setattr(media, "decode", spy)
    cfg = compose(["generator=directory", f"generator.path={clips}", f"suite.path={suite}", "suite.name=tiny",
                   f"metrics.only=[{metric}]", f"output_dir={tmp_path / 'runs'}", "runtime.progress=false",
                   "runtime.bootstrap=10", "runtime.cache=false"])
    out = runner.run(cfg)
    assert calls, "the runner did not decode through media.decode"
    assert all(has_video == video_expected and has_audio for _, has_video, has_audio in calls)
    items = out.items if isinstance(out.items, pd.DataFrame) else pd.DataFrame(out.items)
    scored = items[items.metric == row]
    assert len(scored) == 1 and scored["value"].notna().all(), scored
