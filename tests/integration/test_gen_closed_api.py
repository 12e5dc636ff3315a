"""Sora 2 and Veo 3 adapters against loopback fakes of the OpenAI Videos API and the Gemini API (127.0.0.1)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.context import RunContext
from mova_eval.generators.sora2 import Sora2
from mova_eval.generators.veo3 import Veo3
from mova_eval.runner import generate
from mova_eval.spec import GenRequest, SuiteItem

from .loopback import FakeGemini, FakeOpenAIVideos, Loopback

KEY_OPENAI = "sk-test-0123456789abcdefSECRET"
KEY_GEMINI = "AIzaTEST0123456789abcdefghijSECRET"


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("fixture")
    t = np.arange(8000) / 16000
    media.encode(d / "c.mp4", np.full((6, 72, 128, 3), 90, np.uint8), 24.0,
                 (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None], 16000)
    return (d / "c.mp4").read_bytes()


def _req(i=0, first_frame=None, seed=0):
    item = SuiteItem(id=f"i{i}", category="set2", prompt=f"Rain on a tin roof {i}.", first_frame=first_frame)
    return GenRequest(f"i{i}#s{seed}", item, seed, first_frame=first_frame)


def _gen(cls, name, url, **over):
    cfg = compose([f"generator={name}", f"generator.url={url}"])["generator"]
    cfg.update({"poll_interval_s": 0.01, "backoff_s": 0.01, "retries": 1, "requests_per_minute": None, **over})
    g = cls(cfg)
    g.load()
    return g


def _no_key_anywhere(root: Path, results, key: str):
    for p in root.rglob("*"):
        if p.is_file() and p.suffix != ".mp4":
            assert key not in p.read_text(errors="ignore"), p
    for r in results:
        assert key not in json.dumps(r.provenance, default=str) and key not in (r.error or "")


def test_sora2_request_cost_and_no_key_leak(tmp_path, monkeypatch, clip_bytes):
    from PIL import Image

    monkeypatch.setenv("OPENAI_API_KEY", KEY_OPENAI)
    Image.new("RGB", (640, 480), (200, 10, 10)).save(tmp_path / "ff.png")
    with Loopback(FakeOpenAIVideos(clip_bytes, KEY_OPENAI, polls_to_finish=2)) as srv:
        g = _gen(Sora2, "sora2", srv.url)
        out = generate(g, [_req(0), _req(1, str(tmp_path / "ff.png"))], cache_enabled=True, progress=False, context=RunContext.from_env())
        posts = [s for s in srv.seen if s.method == "POST"]
    res = list(out.values())
    assert all(r.ok for r in res), [r.error for r in res]
    assert posts[0].fields == {"model": "sora-2", "prompt": "Rain on a tin roof 0.", "seconds": "8", "size": "1280x720"}
    assert "input_reference" not in posts[0].files
    from io import BytesIO

    assert Image.open(BytesIO(posts[1].files["input_reference"][2])).size == (1280, 720)
    p = out["i0#s0"].provenance
    assert p["cost_usd"] == pytest.approx(0.8) and p["latency_s"] > 0 and p["seed_honoured"] is False
    assert p["prompt_sent"] == "Rain on a tin roof 0." and p["model"] == "sora-2"
    _no_key_anywhere(Path(__import__("os").environ["MOVA_EVAL_CACHE"]), res, KEY_OPENAI)


def test_sora2_bad_key_is_reported_without_the_key(tmp_path, monkeypatch, clip_bytes):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0123456789")
    with Loopback(FakeOpenAIVideos(clip_bytes, KEY_OPENAI)) as srv:
        g = _gen(Sora2, "sora2", srv.url)
        (res,) = g.generate([GenRequest(**{**_req().__dict__, "out_path": str(tmp_path / "a.mp4")})])
        assert sum(s.method == "POST" for s in srv.seen) == 1  # 401 is not retried
    assert "HTTP 401" in res.error and "sk-wrong-key-0123456789" not in res.error


def test_sora2_unservable_requests_are_per_item_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY_OPENAI)
    g = _gen(Sora2, "sora2", "http://127.0.0.1:9", duration=6)
    (res,) = g.generate([_req()])
    assert "4/8/12 s" in res.error
    g = _gen(Sora2, "sora2", "http://127.0.0.1:9", width=1792, height=1024)
    (res,) = g.generate([_req()])
    assert "needs sora-2-pro" in res.error


def test_sora2_moderation_failure(tmp_path, monkeypatch, clip_bytes):
    monkeypatch.setenv("OPENAI_API_KEY", KEY_OPENAI)
    with Loopback(FakeOpenAIVideos(clip_bytes, KEY_OPENAI, fail_jobs=True)) as srv:
        (res,) = _gen(Sora2, "sora2", srv.url).generate([GenRequest(**{**_req().__dict__, "out_path": str(tmp_path / "a.mp4")})])
    assert "moderation_blocked" in res.error


def test_missing_key_makes_ls_and_items_say_how_to_fix(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    cfg = compose(["generator=veo3"])["generator"]
    av = Veo3.availability(cfg)
    assert not av.ok and "GEMINI_API_KEY" in av.reason and av.command == "export GEMINI_API_KEY=..."
    g = Veo3(cfg)
    g.load()
    (res,) = g.generate([_req()])
    assert "GEMINI_API_KEY" in res.error


def test_veo3_operation_flow_header_key_and_image(tmp_path, monkeypatch, clip_bytes):
    from PIL import Image

    monkeypatch.setenv("GEMINI_API_KEY", KEY_GEMINI)
    Image.new("RGB", (300, 200), (0, 0, 250)).save(tmp_path / "ff.png")
    fake = FakeGemini(clip_bytes, KEY_GEMINI, polls_to_finish=2, fail_submits=[429])
    with Loopback(fake) as srv:
        fake._base = srv.url
        g = _gen(Veo3, "veo3", srv.url, retries=2)
        (res,) = g.generate([GenRequest(**{**_req(0, str(tmp_path / "ff.png")).__dict__,
                                           "out_path": str(tmp_path / "v.mp4")})])
        posts = [s for s in srv.seen if s.method == "POST"]
        assert all("key=" not in s.path for s in srv.seen)
    assert res.ok, res.error
    body = posts[-1].json
    assert body["parameters"] == {"aspectRatio": "16:9", "resolution": "720p", "durationSeconds": 8}
    assert body["instances"][0]["prompt"] == "Rain on a tin roof 0."
    assert body["instances"][0]["image"]["mimeType"] == "image/png"
    assert res.provenance["cost_usd"] == pytest.approx(3.2) and res.provenance["operation"].startswith("models/veo-3.0")
    _no_key_anywhere(tmp_path, [res], KEY_GEMINI)


def test_veo3_safety_block_and_duration_limit(tmp_path, monkeypatch, clip_bytes):
    monkeypatch.setenv("GEMINI_API_KEY", KEY_GEMINI)
    with Loopback(FakeGemini(clip_bytes, KEY_GEMINI, fail_jobs=True)) as srv:
        (res,) = _gen(Veo3, "veo3", srv.url).generate([GenRequest(**{**_req().__dict__, "out_path": str(tmp_path / "v.mp4")})])
    assert "safety filters" in res.error
    (res,) = _gen(Veo3, "veo3", "http://127.0.0.1:9", duration=10).generate([_req()])
    assert "at most 8 s" in res.error


def test_rate_limit_spaces_calls(tmp_path, monkeypatch, clip_bytes):
    monkeypatch.setenv("OPENAI_API_KEY", KEY_OPENAI)
    with Loopback(FakeOpenAIVideos(clip_bytes, KEY_OPENAI)) as srv:
        g = _gen(Sora2, "sora2", srv.url, requests_per_minute=300, concurrency=2)  # one call per 0.2 s
        t0 = time.monotonic()
        res = g.generate([GenRequest(**{**_req(i).__dict__, "out_path": str(tmp_path / f"{i}.mp4")}) for i in range(2)])
        elapsed = time.monotonic() - t0
        api_calls = [s for s in srv.seen if not s.path.endswith("/content")]
    assert all(r.ok for r in res)
    assert len(api_calls) == 4 and elapsed >= 3 * 0.2 - 0.02
