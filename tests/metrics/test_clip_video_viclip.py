"""clip_video_viclip: the ViCLIP network and score against the reference (OpenGVLab/InternVideo
``Data/InternVid/viclip``, imported through tests/metrics/viclip_ref.py when ``MOVA_EVAL_VICLIP`` points at it), stage
by stage on seeded random weights in the official key layout: tokens, text embedding, frame tensor, video embedding,
final score. The tests without the reference (CI) build the network from seeded weights in the same layout and check
the metric's contract on synthetic clips.

The reference is built with its own classes (``VisionTransformer``, ``CLIP_TEXT``) at the released widths (1024 /
768, 16 / 12 heads, patch 14, 8 frames, context 32) but 2 layers per tower instead of 24 / 12, so that a CPU run
stays short; ``test_full_size_layout_matches_the_reference`` checks every key and shape at full depth.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mova_eval.metrics import clip_video_viclip as cvv
from mova_eval.metrics.features import clip_bpe
from mova_eval.metrics.features import viclip as vc
from mova_eval.spec import Clip, SuiteItem

ITEM = SuiteItem(id="x", category="c", prompt="A red car drives past a barking dog in the rain.",
                 video_prompt="A red car drives past a dog in the rain, seen from the kerb.")
PROMPTS = [
    "A red car drives past a barking dog in the rain.",
    "Ein Café &amp; a naïve   “quoted” DOG!! 123 — <|endoftext|> trailing",
    "a very long prompt " * 12,  # > 30 BPE tokens: truncated to 31 + end-of-text
    "x",
]
SMALL = vc.ViClipConfig(vision_layers=2, text_layers=2)  # released widths, 2 layers per tower


def _seed_(module: torch.nn.Module, seed: int) -> None:
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for _, p in sorted(module.state_dict().items()):
            if p.is_floating_point():
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 else 0.05))


def _clip(n=60, size=(240, 400), seed=0):
    g = np.random.default_rng(seed)
    frames = g.integers(0, 255, (n, size[0] // 8, size[1] // 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    return Clip(path=f"m{seed}.mp4", content_hash=str(seed), video=frames, fps=24.0, audio=None, sample_rate=None,
                duration=n / 24)


# ------------------------------------------------------------------------------------------ the reference (opt-in)


@pytest.fixture(scope="module")
def ref():
    from tests.metrics import viclip_ref

    try:
        pkg = viclip_ref.import_reference()
    except ImportError as e:
        pytest.skip(str(e))
    return pkg


def _reduced_reference(pkg, monkeypatch_module):
    """The reference ViCLIP with 2 layers per tower: its builders re-bound to its own classes at the released
    widths (every other argument as its clip_joint_l14 / clip_text_l14 pass them)."""
    import viclip.viclip as rv
    import viclip.viclip_text as rt
    import viclip.viclip_vision as rvis

    def vision(**kw):
        return rvis.VisionTransformer(input_resolution=kw["input_resolution"], patch_size=14, width=1024, layers=2,
                                      heads=16, output_dim=768, kernel_size=kw["kernel_size"],
                                      num_frames=kw["num_frames"], drop_path=kw["drop_path"],
                                      checkpoint_num=kw["checkpoint_num"]).eval()

    def text(**kw):
        return rt.CLIP_TEXT(768, kw["context_length"], kw["vocab_size"], 768, 12, 2, kw["checkpoint_num"]).eval()

    monkeypatch_module.setattr(rv, "clip_joint_l14", vision)
    monkeypatch_module.setattr(rv, "clip_text_l14", text)
    model = rv.ViCLIP(pretrain=None)
    _seed_(model, 5)
    return model


@pytest.fixture(scope="module")
def pair(ref, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        model = _reduced_reference(ref, mp)
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("viclip") / "ViClip-InternVid-10M-FLT.pth"
    torch.save({"model": model.state_dict()}, path)  # the official file's layout: the state_dict under 'model'
    ours = vc.load(path, cfg=SMALL)
    return model, ours


def test_tokens_match_the_reference_tokenizer(ref, pair):
    model, _ = pair
    tok = clip_bpe.ClipTokenizer()
    for text in PROMPTS:
        want = model.text_encoder.tokenize(text, context_length=cvv.CONTEXT)[0].tolist()
        got, n = tok(text, "eot", cvv.CONTEXT)
        assert got == want, text
    long_ids, n_long = tok(PROMPTS[2], "eot", cvv.CONTEXT)
    assert n_long > 30 and long_ids[-1] == clip_bpe.EOT and 0 not in long_ids  # truncation reached


def test_text_embedding_matches(pair):
    model, ours = pair
    tok = clip_bpe.ClipTokenizer()
    with torch.no_grad():
        embs = []
        for text in PROMPTS:
            want = model.encode_text(text).float()
            got = ours.encode_text(torch.tensor([tok(text, "eot", cvv.CONTEXT)[0]]))
            assert (want - got).abs().max() < 1e-4, text
            embs.append(got[0])
    assert (embs[0] - embs[1]).abs().max() > 1e-2  # not a constant embedding


def _reference_frames_vabench(clip: Clip) -> torch.Tensor:
    """VABench's _frame_transform with the operations torchvision performs on a PIL image, written with cv2/PIL:
    cv2.cvtColor(BGR2RGB) on decord's RGB frame, PIL bicubic Resize(224) (short side), CenterCrop via PIL crop,
    ToTensor, Normalize."""
    import cv2
    from PIL import Image

    vlen = clip.video.shape[0]
    intervals = np.linspace(start=0, stop=vlen, num=8 + 1).astype(int)
    ranges = [(intervals[i], intervals[i + 1] - 1) for i in range(len(intervals) - 1)]
    out = []
    for i in [(a + b) // 2 for a, b in ranges]:
        img = Image.fromarray(cv2.cvtColor(clip.video[i], cv2.COLOR_BGR2RGB))
        w, h = img.size
        size = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
        img = img.resize(size, Image.BICUBIC)
        w, h = img.size
        top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
        img = img.crop((left, top, left + 224, top + 224))
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
        out.append((x - torch.tensor(cvv.MEAN)[:, None, None]) / torch.tensor(cvv.STD)[:, None, None])
    return torch.stack(out)


def test_frame_tensor_matches_vabench():
    clip = _clip()
    x, d = cvv.prepare(clip, "vabench")
    want = _reference_frames_vabench(clip)
    assert x.shape == want.shape == (8, 3, 224, 224) and d["channel_order"] == "bgr"
    assert (x - want).abs().max() < 1e-4
    assert d["frame_indices"] == [3, 10, 18, 25, 33, 40, 48, 55]  # midpoints of 60 frames in 8 segments


def test_video_embedding_matches(pair):
    model, ours = pair
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(2, 8, 3, 224, 224, generator=g), cvv.prepare(_clip(), "vabench")[0][None]]
    with torch.no_grad():
        for x in xs:
            want = model.encode_vision(x, test=True).float()
            got = ours.encode_video(x)
            assert (want - got).abs().max() < 1e-4
        assert (want[0] - ours.encode_video(xs[0][1:])[0]).abs().max() > 1e-2  # two videos, two embeddings
        one = torch.randn(1, 1, 3, 224, 224, generator=g)  # a single frame: the mean temporal embedding
        assert (model.encode_vision(one, test=True) - ours.encode_video(one)).abs().max() < 1e-4


def _reference_score(model, frames: torch.Tensor, prompt: str) -> float:
    """VABench's _calc_clip_score_for_video after its frame transform."""
    with torch.no_grad():
        t = model.encode_text(prompt)
        v = model.encode_vision(frames.unsqueeze(0), test=True)
        v, t = v / v.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
        return float((v @ t.T).squeeze(-1).item())


def test_final_score_matches_vabench(pair, monkeypatch):
    model, ours = pair
    monkeypatch.setattr(cvv, "shared_network", lambda device, context=None: ours)
    clip = _clip()
    m = cvv.ClipVideoViclipMetric()
    res = m.score(clip, ITEM)
    want = _reference_score(model, _reference_frames_vabench(clip), ITEM.video_prompt)
    assert abs(res.values["clip_video_viclip"] - want) < 1e-4 and abs(want) > 1e-3
    assert res.details["text_field"] == "video_prompt"
    other = _reference_score(model, _reference_frames_vabench(clip), ITEM.video_prompt + " At night.")
    assert abs(other - want) > 1e-4  # a perturbed prompt moves the reference's score …
    item2 = SuiteItem(id="x", category="c", prompt=ITEM.prompt, video_prompt=ITEM.video_prompt + " At night.")
    assert abs(m.score(clip, item2).values["clip_video_viclip"] - other) < 1e-4  # … and ours with it
    vb = cvv.ClipVideoViclipMetric({"protocol": "vbench"}).score(clip, ITEM)
    assert abs(vb.values["clip_video_viclip_vbench"] - res.values["clip_video_viclip"]) > 1e-5  # protocols differ


def test_full_size_layout_matches_the_reference(ref):
    import viclip.viclip as rv

    model = rv.ViCLIP(pretrain=None)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    del model
    with torch.device("meta"):
        got = {k: tuple(v.shape) for k, v in vc.ViClip().state_dict().items()}
    assert got == want
    assert want["vision_encoder.conv1.weight"] == (1024, 3, 1, 14, 14)
    assert want["text_encoder.positional_embedding"] == (32, 768) and "temp" in want


# ------------------------------------------------------------------------------------------ without the reference (CI)


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    """A reduced ViCLIP in the official key layout, seeded, written and read back as the official file is."""
    cfg = vc.ViClipConfig(vision_width=64, vision_layers=2, vision_heads=2, embed=32, text_width=64, text_layers=2,
                          text_heads=2)
    net = vc.ViClip(cfg).eval()
    _seed_(net, 7)
    path = tmp_path_factory.mktemp("tiny") / "ViClip-InternVid-10M-FLT.pth"
    torch.save({"model": net.state_dict()}, path)
    return vc.load(path, cfg=cfg)


def test_metric_scores_a_synthetic_clip_deterministically(tiny_net, monkeypatch):
    monkeypatch.setattr(cvv, "shared_network", lambda device, context=None: tiny_net)
    clip = _clip(n=50, seed=1)
    m = cvv.ClipVideoViclipMetric()
    a, b = m.score(clip, ITEM), m.score(clip, ITEM)
    v = a.values["clip_video_viclip"]
    assert math.isfinite(v) and -1 <= v <= 1 and a.values == b.values and not a.errors
    assert a.details["frame_indices"] == [2, 8, 14, 21, 27, 33, 39, 46]
    assert [o.name for o in m.info.outputs] == ["clip_video_viclip"]
    vb = cvv.ClipVideoViclipMetric({"protocol": "vbench"})
    assert [o.name for o in vb.info.outputs] == ["clip_video_viclip_vbench"]
    assert math.isfinite(vb.score(clip, ITEM).values["clip_video_viclip_vbench"])
    assert m.cache_token() != vb.cache_token()


def test_frame_rules_and_nan_reasons(tiny_net, monkeypatch):
    from mova_eval.errors import ConfigError, MediaError

    monkeypatch.setattr(cvv, "shared_network", lambda device, context=None: tiny_net)
    assert list(cvv.frame_indices(192)) == [11, 35, 59, 83, 107, 131, 155, 179]
    assert list(cvv.frame_indices(5, pad=True)) == [0, 1, 2, 3, 4, 4, 4, 4]  # VBench pads with the last frame
    with pytest.raises(MediaError, match="5 frames"):
        cvv.prepare(_clip(n=5), "vabench")  # VABench's reference cannot score it: NaN with the reason (runner)
    x, d = cvv.prepare(_clip(n=5), "vbench")
    assert x.shape[0] == 8 and d["frame_indices"][-1] == 4
    res = cvv.ClipVideoViclipMetric().score(_clip(n=10), SuiteItem(id="y", category="c", prompt=""))
    assert math.isnan(res.values["clip_video_viclip"]) and "no prompt" in res.errors["clip_video_viclip"]
    for bad in ({"protocol": "javisbench"}, {"frames": 16}):
        with pytest.raises(ConfigError):
            cvv.ClipVideoViclipMetric(bad)


def test_text_source_per_protocol():
    assert cvv.text_for(ITEM, "vabench") == (ITEM.video_prompt, "video_prompt")
    assert cvv.text_for(ITEM, "vbench") == (ITEM.prompt, "prompt")
    plain = SuiteItem(id="p", category="c", prompt="only a prompt")
    assert cvv.text_for(plain, "vabench") == ("only a prompt", "prompt")


def test_loader_refuses_a_checkpoint_that_pickles_code(tmp_path, monkeypatch):
    """VABench's 4 GB training file pickles an EasyDict config beside 'model' (it loads with weights_only=False):
    refused with the file to fetch instead, never unpickled with code allowed; a wrong layout is refused too."""
    import sys
    import types

    from mova_eval.errors import MetricUnavailable

    mod = types.ModuleType("utils.easydict")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "utils.easydict", "EasyDict"
    mod.EasyDict = EasyDict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "utils", types.ModuleType("utils"))
    monkeypatch.setitem(sys.modules, "utils.easydict", mod)
    cfg = vc.ViClipConfig(vision_width=32, vision_layers=1, vision_heads=2, embed=16, text_width=32, text_layers=1,
                          text_heads=2)
    net = vc.ViClip(cfg)
    torch.save({"model": net.state_dict(), "config": EasyDict(lr=1e-4), "epoch": 3}, tmp_path / "train.pth")
    with pytest.raises(MetricUnavailable, match="pickles more than tensors") as e:
        vc.load(tmp_path / "train.pth", cfg=cfg)
    assert "train.pth" in str(e.value) and e.value.command == f"mova-eval weights fetch {cvv.WEIGHTS}"
    torch.save({"model": net.state_dict()}, tmp_path / "ok.pth")
    assert torch.equal(vc.load(tmp_path / "ok.pth", cfg=cfg).vision_encoder.proj, net.vision_encoder.proj)
    deeper = vc.ViClip(dataclasses.replace(cfg, vision_layers=2))
    torch.save({"model": deeper.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        vc.load(tmp_path / "other.pth", cfg=cfg)  # strict: a layout that is not this one is refused


def test_weights_entry_pins_the_published_sha(monkeypatch, tmp_path):
    from mova_eval import weights

    spec = weights.get(cvv.WEIGHTS)
    assert spec.sha256 == cvv._SHA and "VBench_Used_Models" in spec.urls[0] and spec.license.startswith("MIT")
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = cvv.ClipVideoViclipMetric.availability()
    assert not av.ok and av.command == f"mova-eval weights fetch {cvv.WEIGHTS}"
