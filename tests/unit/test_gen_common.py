"""Pure helpers shared by the generator adapters: frame/audio conversion (mova_eval/frames.py), prompts,
HTTP helpers (generators/_remote.py), checkpoint fingerprints, and ModelGenerator planning (generators/base.py)."""
from __future__ import annotations

import numpy as np
import pytest

from mova_eval.errors import GenerationError
from mova_eval.frames import to_audio, to_uint8_frames
from mova_eval.generators._remote import RateLimiter, redact
from mova_eval.generators.base import Capabilities, ModelGenerator
from mova_eval.generators.checkpoints import checkpoint_fingerprint
from mova_eval.generators.prompts import speech_tagged
from mova_eval.spec import GenRequest, SuiteItem


@pytest.mark.parametrize("layout", ["thwc", "tchw", "cthw", "list"])
def test_frames_from_any_layout(layout):
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, size=(5, 6, 8, 3)).astype(np.float32)
    x = {"thwc": ref, "tchw": ref.transpose(0, 3, 1, 2), "cthw": ref.transpose(3, 0, 1, 2), "list": list(ref)}[layout]
    out = to_uint8_frames(x)
    assert out.dtype == np.uint8 and out.shape == (5, 6, 8, 3)
    assert np.array_equal(out, np.round(ref * 255).astype(np.uint8))


def test_frames_in_minus_one_to_one_and_odd_sizes():
    v = np.full((2, 7, 9, 3), -1.0, np.float32)
    v[..., 0] = 1.0
    out = to_uint8_frames(v)
    assert out.shape == (2, 6, 8, 3)  # cropped to even sizes for yuv420p
    assert out[0, 0, 0].tolist() == [255, 0, 0]


def test_audio_shapes_and_nan():
    assert to_audio(np.zeros(100)).shape == (1, 100)
    assert to_audio(np.zeros((1, 1, 100))).shape == (1, 100)
    assert to_audio(np.zeros((100, 2))).shape == (2, 100)
    with pytest.raises(GenerationError, match="NaN"):
        to_audio(np.array([0.0, np.nan]))


def test_speech_tags():
    assert speech_tagged('He says "Hello there." loudly.', "Hello there.", "<S>", "<E>") == "He says <S>Hello there.<E> loudly."
    # curly quotes and slight differences (Verse-Bench has 23 such items) still replace the quoted copy
    assert speech_tagged("She says “It’s fine,” and leaves.", "It's fine.", "<S>", "<E>") == \
        "She says <S>It's fine.<E> and leaves."
    assert speech_tagged("A quiet street.", "Hi.", "<S>", "<E>") == "A quiet street. <S>Hi.<E>"
    assert speech_tagged("A quiet street.", "", "<S>", "<E>") == "A quiet street."


def test_redact_known_and_key_shaped_secrets():
    text = "Bearer sk-abcdef123456789 url?key=AIzaSyA1234567890123456789012&x=1 token=mytoken"
    out = redact(text, ("mytoken",))
    assert "sk-abcdef" not in out and "AIzaSy" not in out and "mytoken" not in out and "x=1" in out


def test_checkpoint_fingerprint_changes_with_content(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"x" * 10)
    fp1 = checkpoint_fingerprint(tmp_path)
    (tmp_path / "a.safetensors").write_bytes(b"y" * 10)
    import os

    os.utime(tmp_path, None)
    os.utime(tmp_path / "a.safetensors", (1, 2))
    assert checkpoint_fingerprint(tmp_path) != fp1


def test_rate_limiter_spacing():
    import time

    lim = RateLimiter(600)  # 0.1 s apart
    t0 = time.monotonic()
    for _ in range(4):
        lim.wait()
    assert time.monotonic() - t0 >= 0.29


class _Toy(ModelGenerator):
    name = "toy"
    capabilities = Capabilities(modes=("t2va",), resolutions=((64, 48),), max_duration_s=2.0, fps=(24.0,))


def _plan_error(cfg, item=None):
    g = _Toy({"name": "toy", "width": 64, "height": 48, "fps": 24, "num_frames": 24, **cfg})
    item = item or SuiteItem(id="a", category="c", prompt="p")
    try:
        g.plan(GenRequest("a#s0", item, 3))
    except GenerationError as e:
        return str(e)
    return None


def test_plan_capability_errors(tmp_path):
    assert _plan_error({}) is None
    assert "cannot generate 32x32" in _plan_error({"width": 32, "height": 32})
    assert "at most 2 s" in _plan_error({"num_frames": 72})
    assert "at 30 fps" in _plan_error({"fps": 30})
    ff = tmp_path / "f.png"
    ff.write_bytes(b"")
    assert "text-to-video+audio only (T2VA)" in _plan_error({}, SuiteItem(id="a", category="c", prompt="p",
                                                                           first_frame=str(ff)))
    assert _plan_error({"ignore_first_frame": True}, SuiteItem(id="a", category="c", prompt="p", first_frame=str(ff))) is None


def test_seed_is_preset_plus_run_seed():
    g = _Toy({"name": "toy", "width": 64, "height": 48, "fps": 24, "num_frames": 24, "seed": 42})
    assert g.plan(GenRequest("a#s3", SuiteItem(id="a", category="c", prompt="p"), 3)).seed == 45


def test_every_verse_bench_speech_line_is_tagged_in_place(verse_prompts):
    """Ovi's <S>…<E> replaces the quoted copy of the line in all 243 Verse-Bench speech prompts."""
    import json
    import re

    data = json.loads(verse_prompts.read_text())
    speech = [v for items in data.values() for v in items.values() if v["speech_prompt"]["text"].strip()]
    assert len(speech) == 243
    for v in speech:
        text = v["speech_prompt"]["text"].strip()
        out = speech_tagged(v["prompt"], text, "<S>", "<E>")
        said = re.sub(r"^Speaker\d+:\s*", "", text)  # 2 transcripts carry a speaker label
        assert out.count("<S>") == 1 and f"<S>{said}<E>" in out
        rest = out.replace(f"<S>{said}<E>", "")
        assert len(rest) < len(v["prompt"]) - 3  # the quoted copy was replaced, not left with the tag appended
