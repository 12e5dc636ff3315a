"""Cascades end to end on CPU: a tiny random Wan2.1 pipeline (video) + a video-to-audio stand-in, muxed into one
clip; resume after an audio-stage failure; the AudioLDM 2 stage on a tiny random pipeline; the HunyuanVideo-Foley
stage's real code path against a stand-in package with upstream's entry points (tests/integration/standins)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the generators extra (diffusers) is not installed")

from mova_eval import media  # noqa: E402
from mova_eval.config import compose  # noqa: E402
from mova_eval.context import RunContext  # noqa: E402
from mova_eval.generators.cascade import Cascade, Wan21MMAudio  # noqa: E402
from mova_eval.runner import generate  # noqa: E402
from mova_eval.spec import GenRequest, SuiteItem  # noqa: E402

TINY_WAN = {"name": "wan21", "pipeline_factory": "tests.integration.tiny_diffusers:tiny_wan", "width": 16, "height": 16,
            "num_frames": 9, "num_inference_steps": 2, "dtype": "float32", "offload": "none", "max_sequence_length": 16}


def _cfg():
    cfg = compose(["generator=wan21_mmaudio"])["generator"]
    cfg["video"] = TINY_WAN
    cfg["audio"] = {**cfg["audio"], "pipeline_factory": "tests.integration.tiny_diffusers:brightness_v2a"}
    return cfg


ITEM = SuiteItem(id="x", category="set2", prompt="a dog on the roof", audio_prompts=("rain on a tin roof", "thunder"))


@pytest.mark.slow
def test_wan21_then_v2a_makes_one_muxed_clip_and_resumes(tmp_path, monkeypatch):
    gen = Wan21MMAudio(_cfg())
    gen.load()
    assert gen._load_error is None, gen._load_error
    req = GenRequest("x#s0", ITEM, 0)
    monkeypatch.setenv("BRIGHTNESS_V2A_FAIL", "1")
    first = generate(gen, [req], cache_enabled=True, progress=False, context=RunContext.from_env())["x#s0"]
    assert first.path is None and "audio stage mmaudio" in first.error and "injected" in first.error
    monkeypatch.delenv("BRIGHTNESS_V2A_FAIL")
    res = generate(gen, [req], cache_enabled=True, progress=False, context=RunContext.from_env())["x#s0"]
    assert res.ok, res.error
    p = res.provenance
    assert p["video_stage_reused"] is True  # the silent video from the failed attempt was kept
    assert p["audio_stage"]["prompt_sent"] == "rain on a tin roof thunder" and p["audio_stage"]["kind"] == "v2a"
    assert p["video_stage"]["prompt_sent"] == "a dog on the roof" and p["video_stage"]["seed"] == 42
    clip = media.decode(res.path)
    silent = media.decode(res.path.replace(".mp4", ".video.mp4"))
    assert np.array_equal(clip.video, silent.video)  # the video stream is copied, not re-encoded
    assert clip.video.shape == (9, 16, 16, 3) and clip.fps == 16.0
    assert clip.sample_rate == 16000 and clip.has_audio
    assert abs(clip.audio.shape[-1] / 16000 - 9 / 16) < 0.1
    level = silent.video.mean() / 255.0
    assert np.abs(clip.audio).max() == pytest.approx(0.5 * level, rel=0.35)  # loudness follows the video
    gen.close()


def test_missing_audio_package_is_reported_by_ls_and_per_item(monkeypatch):
    cfg = compose(["generator=wan21_mmaudio"])["generator"]
    av = Wan21MMAudio.availability(cfg)
    assert not av.ok
    cfg["video"] = TINY_WAN
    av = Wan21MMAudio.availability(cfg)
    assert not av.ok and "mmaudio" in av.reason and "hkchengrex/MMAudio" in av.command
    gen = Wan21MMAudio(cfg)
    gen.load()
    (res,) = gen.generate([GenRequest("x#s0", ITEM, 0)])
    assert res.path is None and "hkchengrex/MMAudio" in res.error


def test_bad_audio_stage_name_is_a_config_error():
    from mova_eval.errors import ConfigError

    with pytest.raises(ConfigError, match="generator.audio.name must be one of"):
        Cascade({"name": "cascade", "video": {"name": "synthetic"}, "audio": {"name": "nope"}})


TINY_AUDIOLDM2 = {"name": "audioldm2", "pipeline_factory": "tests.integration.tiny_diffusers:tiny_audioldm2",
                  "num_inference_steps": 2}  # guidance and negative prompt: the stage's published defaults


def test_audioldm2_language_model_loop_matches_a_cache_free_recompute():
    """The stage's transformers-5 helper drives diffusers' GPT-2 loop (cached, one new position per step) to the
    same hidden states as recomputing the whole sequence without a cache, padded prompts included."""
    import torch
    import transformers

    from mova_eval.generators._audio_stages import AudioLDM2

    stage = AudioLDM2(TINY_AUDIOLDM2, "cpu")
    stage.load()
    lm = stage.pipe.language_model
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert not hasattr(type(lm), "_update_model_kwargs_for_generation")  # the gap the helper fills
    torch.manual_seed(1)
    x = torch.randn(2, 5, lm.config.n_embd)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0  # a padded prompt
    with torch.no_grad():
        got = stage.pipe.generate_language_model(x, attention_mask=mask, max_new_tokens=4)
        seq, m = x, mask
        for _ in range(4):
            h = lm(inputs_embeds=seq, attention_mask=m, use_cache=False).last_hidden_state[:, -1:]
            seq, m = torch.cat([seq, h], 1), torch.cat([m, m.new_ones((2, 1))], 1)
    assert got.shape == (2, 4, lm.config.n_embd)
    torch.testing.assert_close(got, seq[:, -4:], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_wan21_then_audioldm2_makes_one_muxed_clip():
    from mova_eval.generators._audio_stages import AudioLDM2

    stage = AudioLDM2(TINY_AUDIOLDM2, "cpu")
    stage.load()
    audio, sr = stage.make(None, 0.5, "rain on a roof", 3)
    audio = np.asarray(audio)
    assert sr == 16000 and audio.shape == (8000,) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    again, _ = stage.make(None, 0.5, "rain on a roof", 3)
    np.testing.assert_array_equal(audio, np.asarray(again))  # seeded

    cfg = compose(["generator=cascade"])["generator"]
    cfg["video"] = TINY_WAN
    cfg["audio"] = {**cfg["audio"], **TINY_AUDIOLDM2}
    gen = Cascade(cfg)
    gen.load()
    assert gen._load_error is None, gen._load_error
    res = generate(gen, [GenRequest("x#s0", ITEM, 0)], cache_enabled=False, progress=False, context=RunContext.from_env())["x#s0"]
    assert res.ok, res.error
    a = res.provenance["audio_stage"]
    assert a["name"] == "audioldm2" and a["kind"] == "t2a" and a["prompt_sent"] == "rain on a tin roof thunder"
    assert a["settings"]["num_inference_steps"] == 2 and a["settings"]["negative_prompt"] == "Low quality."
    assert a["settings"]["guidance_scale"] == 3.5
    clip = media.decode(res.path)
    silent = media.decode(res.path.replace(".mp4", ".video.mp4"))
    assert np.array_equal(clip.video, silent.video) and clip.video.shape == (9, 16, 16, 3)
    assert clip.has_audio and clip.sample_rate == 16000 and np.isfinite(clip.audio).all()
    assert abs(clip.audio.shape[-1] / 16000 - 9 / 16) < 0.1  # the stage was asked for the video's duration
    gen.close()


SYNTH = {"name": "synthetic", "duration": 1.0, "fps": 8, "width": 32, "height": 32, "tts": "none"}
STANDINS = Path(__file__).parent / "standins"


@pytest.fixture
def foley(tmp_path, monkeypatch):
    """The stand-in ``hunyuanvideo_foley`` importable, a weights folder and a model config; the calls it records."""
    monkeypatch.syspath_prepend(str(STANDINS))
    import hunyuanvideo_foley

    hunyuanvideo_foley.CALLS.clear()
    (tmp_path / "foley-weights").mkdir()
    (tmp_path / "foley.yaml").write_text("model_config:\n  model_kwargs:\n    text_length: 3\n")
    cfg = compose(["generator=cascade", "generator.audio.name=hunyuan_foley"])["generator"]
    cfg["video"] = SYNTH
    cfg["audio"].update(checkpoint=str(tmp_path / "foley-weights"), config_path=str(tmp_path / "foley.yaml"))
    yield cfg, hunyuanvideo_foley.CALLS
    for name in [m for m in sys.modules if m == "hunyuanvideo_foley" or m.startswith("hunyuanvideo_foley.")]:
        del sys.modules[name]


def test_hunyuan_foley_stage_shapes_the_request_and_muxes_its_audio(foley, tmp_path):
    import torch

    cfg, calls = foley
    gen = Cascade(cfg)
    gen.load()
    assert gen._load_error is None, gen._load_error
    (name, load), = calls
    assert name == "load_model" and load["model_path"] == str(tmp_path / "foley-weights")
    assert load["config_path"] == str(tmp_path / "foley.yaml") and load["device"] == torch.device("cpu")
    res = generate(gen, [GenRequest("x#s0", ITEM, 0)], cache_enabled=False, progress=False, context=RunContext.from_env())["x#s0"]
    assert res.ok, res.error
    silent_path = res.path.replace(".mp4", ".video.mp4")
    (_, feats), (_, denoise) = calls[1:]
    assert feats == {"video_path": silent_path, "prompt": "rain on a tin roof thunder", "neg_prompt": "noisy, harsh"}
    # the stage's published sampling, not the cascade preset's AudioLDM 2 settings
    assert denoise["guidance_scale"] == 4.5 and denoise["num_inference_steps"] == 50 and denoise["batch_size"] == 1
    assert denoise["device_type"] == "cpu" and denoise["audio_len_in_s"] == pytest.approx(1.0)
    a = res.provenance["audio_stage"]
    assert a["name"] == "hunyuan_foley" and a["kind"] == "v2a" and a["sample_rate"] == 48000 and a["seed"] == 0
    assert a["checkpoint_hash"] and "negative_prompt" not in a["settings"]
    clip, silent = media.decode(res.path), media.decode(silent_path)
    assert np.array_equal(clip.video, silent.video)
    assert clip.has_audio and clip.sample_rate == 48000 and abs(clip.audio.shape[-1] / 48000 - 1.0) < 0.05
    raw, sr = gen.stage.make(silent_path, 1.0, "rain on a tin roof thunder", 0)  # same seed → same audio
    raw2, _ = gen.stage.make(silent_path, 1.0, "rain on a tin roof thunder", 0)
    assert sr == 48000 and tuple(raw.shape) == (1, 1, 48000) and torch.equal(raw, raw2)
    rms = lambda x: float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))  # noqa: E731
    assert rms(clip.audio) == pytest.approx(rms(raw), rel=0.1)  # the muxed track is the stage's audio (AAC)
    gen.close()


def test_hunyuan_foley_stage_errors(foley, tmp_path, monkeypatch):
    from mova_eval.errors import ConfigError
    from mova_eval.generators._audio_stages import HunyuanFoley
    from mova_eval.generators.checkpoints import CheckpointMissingError

    cfg, _ = foley
    with pytest.raises(ConfigError, match="config_path"):
        HunyuanFoley({**cfg["audio"], "config_path": None}, "cpu").load()
    with pytest.raises(CheckpointMissingError, match="huggingface-cli download tencent/HunyuanVideo-Foley"):
        HunyuanFoley({**cfg["audio"], "checkpoint": str(tmp_path / "absent")}, "cpu").load()
    gen = Cascade(cfg)
    gen.load()
    monkeypatch.setenv("FOLEY_STANDIN_FAIL", "1")
    (res,) = gen.generate([GenRequest("x#s0", ITEM, 0, out_path=str(tmp_path / "x.mp4"))])
    assert res.path is None and res.error == "audio stage hunyuan_foley: RuntimeError: injected denoise failure"
    assert (tmp_path / "x.video.mp4").is_file() and not (tmp_path / "x.mp4").exists()  # the video stays for a re-run
    gen.close()


def test_missing_hunyuan_foley_package_names_the_install():
    from mova_eval.errors import MissingDependencyError
    from mova_eval.generators._audio_stages import HunyuanFoley

    av = HunyuanFoley.ready({"name": "hunyuan_foley"})
    assert not av.ok and "hunyuanvideo_foley" in av.reason and "Tencent-Hunyuan/HunyuanVideo-Foley" in av.command
    with pytest.raises(MissingDependencyError, match="HunyuanVideo-Foley"):
        HunyuanFoley({"name": "hunyuan_foley"}, "cpu").load()
