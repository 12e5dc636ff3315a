"""LTX-2 adapter end to end on a tiny random LTX2Pipeline (built from config, CPU, 2 steps) → a real muxed clip."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the generators extra (diffusers) is not installed")

from mova_eval import media  # noqa: E402
from mova_eval.config import compose  # noqa: E402
from mova_eval.context import RunContext  # noqa: E402
from mova_eval.generators.ltx2 import LTX2  # noqa: E402
from mova_eval.runner import generate  # noqa: E402
from mova_eval.spec import GenRequest, SuiteItem  # noqa: E402

TINY = {"pipeline_factory": "tests.integration.tiny_diffusers:tiny_ltx2", "width": 32, "height": 32, "num_frames": 9,
        "num_inference_steps": 2, "max_sequence_length": 16, "dtype": "float32", "offload": "none",
        "stg_scale": 0.0, "audio_stg_scale": 0.0, "spatio_temporal_guidance_blocks": None}


@pytest.fixture(scope="module")
def ltx():
    cfg = compose(["generator=ltx2"])["generator"]
    cfg.update(TINY)
    g = LTX2(cfg, device="cpu")
    g.load()
    assert g._load_error is None, g._load_error
    yield g
    g.close()


@pytest.mark.slow
def test_t2va_and_it2va_make_real_clips(ltx, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (250, 0, 0)).save(tmp_path / "ff.png")
    reqs = [GenRequest("a#s0", SuiteItem(id="a", category="set1", prompt="a robot dancing"), 0),
            GenRequest("b#s0", SuiteItem(id="b", category="set1", prompt="a cat", first_frame=str(tmp_path / "ff.png")), 0)]
    out = generate(ltx, reqs, cache_enabled=True, progress=False, context=RunContext.from_env())
    for rid, mode in (("a#s0", "t2va"), ("b#s0", "it2va")):
        r = out[rid]
        assert r.ok, r.error
        clip = media.decode(r.path)
        assert clip.video.shape == (9, 32, 32, 3) and clip.fps == 24.0
        assert clip.has_audio and clip.sample_rate == 16000 and clip.audio.shape[0] == 2
        assert r.provenance["mode"] == mode and r.provenance["seed"] == 42
        assert r.provenance["sampler"]["guidance_scale"] == 3.0
    assert out["b#s0"].provenance["pipeline"] == "LTX2ImageToVideoPipeline"
    # same request, same seed → the cache answers; a new seed → a different clip
    again = generate(ltx, reqs[:1], cache_enabled=True, progress=False, context=RunContext.from_env())["a#s0"]
    assert again.provenance.get("cached") and again.path == out["a#s0"].path
    other = generate(ltx, [GenRequest("a#s1", reqs[0].item, 1)], cache_enabled=True, progress=False, context=RunContext.from_env())["a#s1"]
    assert not np.array_equal(media.decode(other.path).video, media.decode(out["a#s0"].path).video)


def test_frame_count_rule_is_a_per_item_error(ltx):
    bad = LTX2({**ltx.config, "num_frames": 10})
    bad._loaded, bad._t2v = True, ltx._t2v
    (res,) = bad.generate([GenRequest("a#s0", SuiteItem(id="a", category="c", prompt="p"), 0)])
    assert "(num_frames - 1) % 8" in res.error


def test_missing_checkpoint_offline_is_actionable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    g = LTX2(compose(["generator=ltx2"])["generator"])
    g.load()
    (res,) = g.generate([GenRequest("a#s0", SuiteItem(id="a", category="c", prompt="p"), 0)])
    assert res.path is None and "Lightricks/LTX-2" in res.error and "huggingface-cli download" in res.error
