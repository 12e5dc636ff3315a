"""Ovi, UniVerse-1 and MM-Diffusion adapters (not on PyPI) against stand-ins with their upstream interfaces:
prompt formats, command lines, output pickup, and the install message when the repo is missing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.context import RunContext
from mova_eval.generators.mmdiffusion import MMDiffusionAIST
from mova_eval.generators.ovi import Ovi
from mova_eval.generators.universe1 import UniVerse1
from mova_eval.runner import generate
from mova_eval.spec import GenRequest, SuiteItem

STANDINS = Path(__file__).parent / "standins"
SPEECH_ITEM = SuiteItem(id="s1", category="set3", prompt='A woman smiles and says, "Good morning, everyone." Birds sing.',
                        speech_text="Good morning, everyone.", speaker="the woman", video_prompt="A woman smiles.",
                        audio_prompts=("Birds singing", "soft wind"), language="en")


def test_ovi_prompt_format_and_clip(tmp_path):
    from tests.integration.standins.ovi_engine import FakeOviEngine

    cfg = compose(["generator=ovi"])["generator"]
    cfg.update(engine_factory="tests.integration.standins.ovi_engine:make", width=64, height=48)
    gen = Ovi(cfg)
    gen.load()
    FakeOviEngine.calls.clear()
    res = generate(gen, [GenRequest("s1#s0", SPEECH_ITEM, 0)], cache_enabled=True, progress=False, context=RunContext.from_env())["s1#s0"]
    assert res.ok, res.error
    sent = FakeOviEngine.calls[0]
    assert sent["text_prompt"] == ("A woman smiles and says, <S>Good morning, everyone.<E> Birds sing. "
                                   "<AUDCAP>Birds singing. soft wind.<ENDAUDCAP>")
    assert sent["seed"] == 103 and sent["video_frame_height_width"] == [48, 64] and sent["slg_layer"] == 11
    assert res.provenance["prompt_sent"] == sent["text_prompt"]
    clip = media.decode(res.path)
    assert clip.video.shape == (121, 48, 64, 3) and clip.sample_rate == 16000 and clip.has_audio


def test_ovi_missing_package_says_how_to_install():
    cfg = compose(["generator=ovi"])["generator"]
    av = Ovi.availability(cfg)
    assert not av.ok and "character-ai/Ovi" in av.command
    gen = Ovi(cfg)
    gen.load()
    (res,) = gen.generate([GenRequest("s1#s0", SPEECH_ITEM, 0)])
    assert res.path is None and "character-ai/Ovi" in res.error


def _fake_repo(tmp_path: Path, rel: str, script: str) -> Path:
    repo = tmp_path / "repo"
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STANDINS / script, repo / rel)
    return repo


def test_universe1_runs_the_repo_script_with_verse_bench_json(tmp_path):
    from PIL import Image

    repo = _fake_repo(tmp_path, "fastvideo/sample/sample_universe.py", "sample_universe.py")
    Image.new("RGB", (1280, 800), (1, 2, 3)).save(tmp_path / "ff.jpg")
    cfg = compose(["generator=universe1", f"generator.repo_path={repo}"])["generator"]
    assert UniVerse1.availability(cfg).ok
    gen = UniVerse1(cfg)
    gen.load()
    item = SuiteItem(**{**SPEECH_ITEM.__dict__, "first_frame": str(tmp_path / "ff.jpg")})
    out = generate(gen, [GenRequest("s1#s0", item, 0), GenRequest("s2#s0", SPEECH_ITEM, 0)], cache_enabled=True,
                   progress=False, context=RunContext.from_env())
    res = out["s1#s0"]
    assert res.ok, res.error
    assert res.provenance["width"] == 768 and res.provenance["height"] == 480  # the script's aspect rule
    sent = json.loads(res.provenance["prompt_sent"])
    assert sent == {"video_prompt": "A woman smiles.", "audio_prompt": ["Birds singing", "soft wind"],
                    "speech_prompt": {"speaker": "the woman", "text": "Good morning, everyone."}}
    clip = media.decode(res.path)
    assert clip.fps == 25.0 and clip.video[0, 0, 0, 0] == pytest.approx(10240 % 256, abs=3)  # seed 10240 reached it
    assert "needs a first-frame image (IT2VA only)" in out["s2#s0"].error


def test_universe1_without_repo_is_actionable():
    cfg = compose(["generator=universe1"])["generator"]
    av = UniVerse1.availability(cfg)
    assert not av.ok and "Dorniwang/UniVerse-1-code" in av.command


def test_mmdiffusion_batch_fills_requests_and_ignores_prompts(tmp_path):
    repo = _fake_repo(tmp_path, "py_scripts/multimodal_sample_sr.py", "multimodal_sample_sr.py")
    (tmp_path / "AIST++.pt").write_bytes(b"base")
    (tmp_path / "AIST++_SR.pt").write_bytes(b"sr")
    cfg = compose(["generator=mmdiffusion_aist", f"generator.repo_path={repo}",
                   f"generator.multimodal_model_path={tmp_path / 'AIST++.pt'}",
                   f"generator.sr_model_path={tmp_path / 'AIST++_SR.pt'}"])["generator"]
    assert MMDiffusionAIST.availability(cfg).ok
    gen = MMDiffusionAIST(cfg)
    gen.load()
    reqs = [GenRequest(f"i{i}#s0", SuiteItem(id=f"i{i}", category="set1", prompt=f"p{i}"), 0) for i in range(3)]
    out = generate(gen, reqs, cache_enabled=True, progress=False, context=RunContext.from_env())
    paths = [out[r.request_id].path for r in reqs]
    assert all(paths) and len(set(paths)) == 3
    clips = [media.decode(p) for p in paths]
    assert all(c.video.shape == (16, 32, 32, 3) and c.fps == 10.0 for c in clips)
    assert not (clips[0].video == clips[1].video).all()  # distinct samples, not one copied three times
    p = out["i0#s0"].provenance
    assert p["unconditional"] is True and p["prompt_sent"] == "" and p["prompt_ignored"] == "p0"


def test_validate_reports_unservable_items_before_loading():
    from mova_eval.suites import load_suite

    suite = load_suite(compose(["suite=smoke"])["suite"])
    unavailable, unservable = UniVerse1(compose(["generator=universe1"])["generator"]).validate(suite)
    assert unavailable.kind == "unavailable" and "UniVerse-1 repo not found" in unavailable.message
    assert unservable.kind == "unservable" and unservable.items == tuple(it.id for it in suite.items)
    assert unservable.message == (f"universe1: universe1 needs a first-frame image (IT2VA only) and item … has none "
                                  f"({len(suite)} items)")
