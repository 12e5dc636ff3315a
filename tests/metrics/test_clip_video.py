"""clip_video: CLIP ViT-B/32 towers against open_clip (seeded random weights in the OpenAI layout) and the metric's
value against open_clip's encoders on the metric's own prepared frames. open_clip needs the torchvision stub to
import (tests/stubs/torchvision_stub.py); the project code never imports open_clip."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mova_eval.metrics import clip_video
from mova_eval.metrics.features import clip_bpe
from mova_eval.metrics.features import clip_vit as cv
from mova_eval.spec import Clip, SuiteItem

ITEM = SuiteItem(id="x", category="c", prompt="A red car drives past a barking dog in the rain.")


@pytest.fixture(scope="module")
def pair():
    pytest.importorskip("transformers")  # imported before the stub (environment.md §3)
    if __import__("importlib").util.find_spec("open_clip") is None:
        pytest.skip("open-clip-torch is not installed (requirements/nodeps.txt)")
    from tests.stubs import torchvision_stub

    torchvision_stub.install()
    try:
        import open_clip

        ref = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    finally:
        torchvision_stub.uninstall()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for _, p in ref.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 else 0.05))
    net = cv.ClipModel().eval()
    net.load_state_dict(ref.state_dict(), strict=True)
    return ref, net


def test_towers_match_open_clip(pair):
    ref, net = pair
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 224, 224, generator=g)
    ids = torch.randint(1, 49000, (2, 77), generator=g)
    ids[0, 5], ids[0, 6:] = clip_bpe.EOT, 0
    ids[1, 76] = clip_bpe.EOT
    with torch.no_grad():
        a, b = ref.encode_image(x), net.encode_image(x, batch=2)
        t, u = ref.encode_text(ids), net.encode_text(ids)
    assert (a - b).abs().max() < 1e-4 and (t - u).abs().max() < 1e-4
    assert (a[0] - a[1]).abs().max() > 1e-2 and (t[0] - t[1]).abs().max() > 1e-2


def test_torchscript_release_loads(pair, tmp_path):
    _, net = pair
    scripted = torch.jit.script(_Holder(net.state_dict()))
    scripted.save(str(tmp_path / "ViT-B-32.pt"))
    loaded = cv.load(tmp_path / "ViT-B-32.pt")
    assert torch.equal(loaded.visual.proj, net.visual.proj.half().float())  # fp16 in the archive, float32 out
    assert loaded.visual.proj.dtype == torch.float32


class _Holder(torch.nn.Module):
    """A TorchScript archive holding a state_dict under the OpenAI names, plus the three integer entries."""

    def __init__(self, state):
        super().__init__()
        self.m = torch.nn.Module()
        for k, v in state.items():
            parent = self
            *path, leaf = k.split(".")
            for p in path:
                if not hasattr(parent, p):
                    parent.add_module(p, torch.nn.Module())
                parent = getattr(parent, p)
            parent.register_buffer(leaf, v.half())
        self.register_buffer("input_resolution", torch.tensor(224))

    def forward(self, x):
        return x


def _clip(n=60, size=(240, 400), seed=0):
    g = np.random.default_rng(seed)
    frames = g.integers(0, 255, (n, size[0] // 8, size[1] // 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    return Clip(path=f"m{seed}.mp4", content_hash=str(seed), video=frames, fps=24.0, audio=None, sample_rate=None,
                duration=n / 24)


def test_frame_indices_are_javisbench_linspace():
    assert list(clip_video.frame_indices(192))[:3] == [0, 4, 8] and clip_video.frame_indices(192)[-1] == 191
    assert len(clip_video.frame_indices(10)) == 48  # fewer frames: repeated indices, still 48 reads


def test_metric_equals_open_clip_on_the_prepared_frames(pair, monkeypatch):
    ref, net = pair
    monkeypatch.setattr(clip_video, "shared_network", lambda device, context=None: net)
    clip = _clip()
    res = clip_video.ClipVideoMetric().score(clip, ITEM)
    x, d = clip_video.prepare(clip, "bgr")
    assert x.shape == (48, 3, 224, 224) and d["channel_order"] == "bgr"
    ids = torch.tensor([clip_bpe.ClipTokenizer()(ITEM.prompt, "eot")[0]])
    with torch.no_grad():
        img = torch.nn.functional.normalize(ref.encode_image(x), dim=-1)
        txt = torch.nn.functional.normalize(ref.encode_text(ids), dim=-1)
    want = float((img @ txt[0]).mean())
    assert abs(res.values["clip_video"] - want) < 1e-4 and abs(want) > 1e-4
    rgb_metric = clip_video.ClipVideoMetric({"channel_order": "rgb"})
    rgb = rgb_metric.score(clip, ITEM)
    assert [o.name for o in rgb_metric.info.outputs] == ["clip_video_rgb"]
    assert abs(rgb.values["clip_video_rgb"] - res.values["clip_video"]) > 1e-5  # the channel order reaches CLIP
    xr, _ = clip_video.prepare(clip, "rgb")
    assert torch.allclose(xr[:, 0] * clip_video.STD[0] + clip_video.MEAN[0],
                          x[:, 2] * clip_video.STD[2] + clip_video.MEAN[2], atol=1e-6)


def test_no_prompt_and_bad_options():
    from mova_eval.errors import ConfigError

    res = clip_video.ClipVideoMetric().score(_clip(n=5), SuiteItem(id="y", category="c", prompt=""))
    assert math.isnan(res.values["clip_video"]) and "no prompt" in res.errors["clip_video"]
    for bad in ({"channel_order": "bgra"}, {"frame_batch": 0}, {"frames": 8}):
        with pytest.raises(ConfigError):
            clip_video.ClipVideoMetric(bad)


def test_weights_entry_pins_openai_sha(monkeypatch, tmp_path):
    from mova_eval import weights

    spec = weights.get("clip_vit_b32_openai")
    assert spec.sha256 in spec.urls[0] and spec.license.startswith("MIT")
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = clip_video.ClipVideoMetric.availability()
    assert not av.ok and av.command == "mova-eval weights fetch clip_vit_b32_openai"
