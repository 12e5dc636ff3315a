"""IB-Score: ImageBind network, front ends and metric against the reference code on seeded random weights.

The reference is the ImageBind model code of the PyPI ``imagebind-unofficial`` 0.1.1 wheel (imported without its
data module, tests/metrics/imagebind_ref.py), built at a reduced width/depth with the same key layout; the kaldi fbank
reference is ``kaldi-native-fbank`` (Kaldi's C++ feature code); the tokenizer reference is the wheel's
``SimpleTokenizer``. The full-size layout is checked on the ``meta`` device against metrics-2.md §2.2.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mova_eval.metrics import ib_score
from mova_eval.metrics.features import clip_bpe
from mova_eval.metrics.features import imagebind as ib
from mova_eval.spec import Clip, SuiteItem
from tests.metrics.imagebind_ref import SMALL, reference, small_reference_model

CFG = ib.ImageBindConfig(**SMALL)
ITEM = SuiteItem(id="x", category="set1", prompt="A dog barks twice while a red car drives past in the rain.",
                 audio_prompts=("a dog barking, rain",))


@pytest.fixture(scope="module")
def pair():
    ref = small_reference_model(seed=0)
    net = ib.ImageBind(CFG).eval()
    net.load_state_dict(ib.select_state(ref.state_dict()), strict=True)
    return ref, net


def _assert_nontrivial(a: torch.Tensor, b: torch.Tensor):
    """The compared arrays are not degenerate and two different inputs give different results."""
    assert a.abs().max() > 1e-3 and torch.isfinite(a).all()
    assert (a[0] - a[1]).abs().max() > 1e-3 if a.shape[0] > 1 else True
    assert not torch.equal(a, torch.zeros_like(a)) and b.shape == a.shape


# ----------------------------------------------------------------------------------------------- network


def test_network_matches_reference_per_modality(pair):
    ref, net = pair
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, 3, 3, 2, 224, 224, generator=g)  # 2 inputs × 3 clips
    a = torch.randn(2, 3, 1, 128, 204, generator=g)
    ids = torch.randint(1, 49000, (2, 77), generator=g)
    ids[0, 10], ids[0, 11:] = clip_bpe.EOT, 0
    ids[1, 76] = clip_bpe.EOT
    with torch.no_grad():
        r = ref({"vision": v, "audio": a, "text": ids})
        mine = {"vision": torch.stack([ib.clip_mean(net.embed_vision(x, batch=2)) for x in v]),
                "audio": torch.stack([ib.clip_mean(net.embed_audio(x)) for x in a]),
                "text": net.embed_text(ids)}
    for k in ("vision", "audio", "text"):
        _assert_nontrivial(mine[k], r[k])
        assert (mine[k] - r[k]).abs().max() < 1e-4, k
    # the audio tower's fixed ×20 and the text tower's learned scale (exp(2.5)) reach the output
    assert torch.allclose(net.embed_audio(a[0]).norm(dim=-1), torch.full((3,), 20.0), atol=1e-3)
    assert torch.allclose(net.embed_text(ids).norm(dim=-1), torch.full((2,), math.exp(2.5)), atol=1e-3)


def test_single_images_are_repeated_into_two_frames(pair):
    _, net = pair
    img = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a = net.embed_vision(img)
        b = net.embed_vision(img[:, :, None].repeat(1, 1, 2, 1, 1))
    assert torch.allclose(a, b, atol=1e-6) and (a[0] - a[1]).abs().max() > 1e-3


def test_loader_is_strict_on_the_three_modalities_and_ignores_the_others(pair, tmp_path):
    ref, _ = pair
    state = ref.state_dict()
    assert any(k.split(".")[1] in ("depth", "thermal", "imu") for k in state)
    torch.save(state, tmp_path / "ib.pth")
    net = ib.load(tmp_path / "ib.pth", cfg=CFG)
    assert torch.equal(net.state_dict()["modality_preprocessors.text.mask"], state["modality_preprocessors.text.mask"])
    broken = dict(state)
    broken.pop("modality_trunks.audio.blocks.0.attn.bias_k")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="bias_k"):
        ib.load(tmp_path / "broken.pth", cfg=CFG)


def test_reduced_config_has_the_reference_key_names(pair):
    ref, net = pair
    want = {k: tuple(v.shape) for k, v in ib.select_state(ref.state_dict()).items()}
    have = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert have == want


def test_full_size_layout_matches_the_published_checkpoint():
    """metrics-2.md §2.2: names and shapes of imagebind_huge.pth's vision/text/audio entries (built on meta)."""
    with torch.device("meta"):
        net = ib.ImageBind(ib.HUGE)
    sd = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    published = {
        "modality_preprocessors.vision.cls_token": (1, 1, 1280),
        "modality_preprocessors.vision.rgbt_stem.proj.1.weight": (1280, 3, 2, 14, 14),
        "modality_preprocessors.vision.pos_embedding_helper.pos_embed": (1, 257, 1280),
        "modality_preprocessors.text.token_embedding.weight": (49408, 1024),
        "modality_preprocessors.text.pos_embed": (1, 77, 1024),
        "modality_preprocessors.text.mask": (77, 77),
        "modality_preprocessors.audio.rgbt_stem.proj.weight": (768, 1, 16, 16),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (768,),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 229, 768),
        "modality_preprocessors.audio.cls_token": (1, 1, 768),
        "modality_trunks.vision.pre_transformer_layer.0.weight": (1280,),
        "modality_trunks.vision.blocks.31.attn.in_proj_weight": (3840, 1280),
        "modality_trunks.vision.blocks.31.mlp.fc1.weight": (5120, 1280),
        "modality_trunks.text.blocks.23.attn.in_proj_weight": (3072, 1024),
        "modality_trunks.text.blocks.23.mlp.fc1.weight": (4096, 1024),
        "modality_trunks.audio.blocks.11.attn.bias_k": (1, 1, 768),
        "modality_trunks.audio.blocks.11.attn.bias_v": (1, 1, 768),
        "modality_trunks.audio.blocks.11.mlp.fc1.weight": (3072, 768),
        "modality_heads.vision.0.weight": (1280,),
        "modality_heads.vision.2.weight": (1024, 1280),
        "modality_heads.text.proj.0.weight": (1024,),
        "modality_heads.text.proj.1.weight": (1024, 1024),
        "modality_heads.audio.2.weight": (1024, 768),
        "modality_postprocessors.text.1.log_logit_scale": (),
        "modality_postprocessors.audio.1.log_logit_scale": (),
    }
    for k, shape in published.items():
        assert shapes.get(k) == shape, k
    assert "modality_trunks.vision.blocks.32.attn.in_proj_weight" not in shapes
    assert "modality_trunks.text.pre_transformer_layer.0.weight" not in shapes  # no pre-LN on text
    assert "modality_trunks.vision.blocks.0.attn.bias_k" not in shapes

    def count(prefix):
        return sum(math.prod(s) for k, s in shapes.items() if k.startswith(prefix))

    # published parameter counts (metrics-2.md §2.2, from the real checkpoint)
    assert round(count("modality_trunks.vision.") / 1e6, 1) == 629.7
    assert round(count("modality_trunks.text.") / 1e6, 1) == 302.3
    assert round(count("modality_preprocessors.text.") / 1e6, 1) == 50.7  # token + position embeddings
    assert round(count("modality_trunks.audio.") / 1e6, 1) == 85.1
    # the audio scale is a buffer (not learned), the text scale a parameter
    assert "modality_postprocessors.audio.1.log_logit_scale" in dict(net.named_buffers())
    assert "modality_postprocessors.text.1.log_logit_scale" in dict(net.named_parameters())


# ----------------------------------------------------------------------------------------------- front ends


def _knf_fbank(wave: np.ndarray) -> np.ndarray:
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 128
    opts.use_energy = False
    opts.htk_compat = True
    f = knf.OnlineFbank(opts)
    f.accept_waveform(16000, wave.astype(np.float32).tolist())
    f.input_finished()
    return np.stack([f.get_frame(i) for i in range(f.num_frames_ready)])


@pytest.mark.parametrize("n", [32000, 20000, 1000])
def test_kaldi_fbank_matches_kaldi_native_fbank(n):
    g = np.random.default_rng(n)
    t = np.arange(n) / 16000
    w = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * g.standard_normal(n) + 0.2).astype(np.float32)
    ref = _knf_fbank(w)
    mine = ib.kaldi_fbank(torch.from_numpy(w)).numpy()
    assert mine.shape == ref.shape == (1 + (n - 400) // 160, 128)
    # compared after ImageBind's normalisation, the stage the network sees. kaldi-native-fbank works in float32:
    # near its log floor (float32 eps, log −15.9) its own rounding reaches ~1e-4, so 1e-4 is asserted where the
    # energy is above e^−12 and 2e-4 everywhere (we compute in float64)
    diff = np.abs((mine - ref) / ib.MEL_STD)
    assert diff[ref > -12].max() < 1e-4 and diff.max() < 2e-4
    other = ib.kaldi_fbank(torch.from_numpy(np.roll(w, 77) * 0.5)).numpy()
    assert np.abs(other - mine).max() > 0.1 and ref.std() > 0.1


def test_audio_clips_span_the_whole_track_and_use_channel_0():
    g = np.random.default_rng(1)
    n = 16000 * 8 + 123
    stereo = np.stack([g.standard_normal(n), 0.1 * g.standard_normal(n) + 5.0]).astype(np.float32)
    mels, d = ib.audio_clips(torch.from_numpy(stereo))
    assert mels.shape == (3, 1, 128, 204)
    assert d["audio_clip_starts_s"] == pytest.approx([0.0, (n / 16000 - 2) / 2, n / 16000 - 2], abs=2e-6)
    assert d["fbank_frames"] == [198, 198, 198]
    # clip k is channel 0 of wave[int(start·sr): int((start+2)·sr)] through kaldi fbank, zero-padded to 204
    from fractions import Fraction

    for k, s in enumerate(ib.clip_starts(Fraction(n, 16000), 3)):
        seg = stereo[0, int(s * 16000) : int((s + 2) * 16000)]
        ref = (_knf_fbank(seg).T - ib.MEL_MEAN) / ib.MEL_STD
        got = mels[k, 0].numpy()
        assert np.abs(got[:, :198] - ref)[ref > (-12 - ib.MEL_MEAN) / ib.MEL_STD].max() < 1e-4
        assert np.allclose(got[:, 198:], -ib.MEL_MEAN / ib.MEL_STD)  # log-domain zeros, then normalised
    # channel 1 (with its offset) changes nothing: kaldi reads channel 0 only
    mono, _ = ib.audio_clips(torch.from_numpy(stereo[:1]))
    assert torch.allclose(mono, mels, atol=1e-5)


def test_clip_starts_follow_constant_clips_per_video():
    assert [float(s) for s in ib.clip_starts(8, 3)] == [0.0, 3.0, 6.0]
    assert [float(s) for s in ib.clip_starts(1.5, 3)] == [0.0, 0.0, 0.0]
    assert [float(s) for s in ib.clip_starts(10, 5)] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_short_audio_is_zero_padded_like_upstream():
    mels, d = ib.audio_clips(torch.randn(16000))  # 1 s: three identical clips of 98 frames
    assert d["fbank_frames"] == [98, 98, 98] and torch.equal(mels[0], mels[2])
    assert torch.allclose(mels[:, :, :, 98:], torch.tensor(-ib.MEL_MEAN / ib.MEL_STD))


def test_spatial_crops_landscape_and_portrait():
    x = torch.arange(224 * 398, dtype=torch.float32).reshape(1, 224, 398)
    crops = ib.spatial_crops(x)
    assert [int(c[0, 0, 0]) for c in crops] == [0, 87, 174]  # ceil((398 − 224) / 2) = 87
    y = torch.arange(301 * 224, dtype=torch.float32).reshape(1, 301, 224)
    assert [int(c[0, 0, 0]) // 224 for c in ib.spatial_crops(y)] == [0, 39, 77]


def test_pair_clips_is_clip_major():
    frames = torch.randint(0, 255, (3, 224, 300, 3), dtype=torch.uint8)
    clips = ib.pair_clips(frames)
    assert clips.shape == (6, 3, 2, 224, 224)
    x = ib.normalise_pixels(frames)
    assert torch.equal(clips[0], x[:, 0:2, :, 0:224]) and torch.equal(clips[5], x[:, 1:3, :, 76:300])


# ----------------------------------------------------------------------------------------------- tokenizer


TEXTS = ["A dog barks twice at a red car, while rain falls. It's 3 o'clock!",
         "Ünïcode café — naïve &amp;amp; spaces\n\t x 日本語 🎉", "", "word " * 100]


def test_tokenizer_matches_imagebind_simple_tokenizer():
    _, mp = reference()
    ref = mp.SimpleTokenizer(str(clip_bpe.vocab_path()))
    tok = clip_bpe.ClipTokenizer()
    for t in TEXTS:
        ids, n = tok(t, "eot")
        assert ids == ref(t).tolist()
        assert n == len(ref.encode(t))
    long = tok(TEXTS[3], "cut")[0]
    assert len(long) == 77 and clip_bpe.EOT not in long and long[:76] == tok(TEXTS[3], "eot")[0][:76]


# ----------------------------------------------------------------------------------------------- metric


@pytest.fixture()
def small_metric(monkeypatch, pair):
    _, net = pair
    monkeypatch.setattr(ib_score, "shared_network", lambda device, context=None: net)
    return net


def _clip(seconds=8.0, fps=24.0, size=(352, 640), channels=2, seed=0):
    g = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    base = g.integers(0, 255, (1, size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(np.repeat(base, n, 0), 8, 1), 8, 2)
    frames = (frames.astype(np.int32) + np.arange(n)[:, None, None, None] * 3 % 255).clip(0, 255).astype(np.uint8)
    sr = 48000
    t = np.arange(int(seconds * sr)) / sr
    audio = np.stack([np.sin(2 * np.pi * (300 + 100 * c) * t) * 0.3 + 0.02 * g.standard_normal(t.size)
                      for c in range(channels)]).astype(np.float32)
    return Clip(path=f"mem{seed}.mp4", content_hash=f"h{seed}", video=frames, fps=fps, audio=audio, sample_rate=sr,
                duration=seconds)


def test_metric_equals_reference_forward_on_the_same_inputs(small_metric, pair):
    ref, _ = pair
    clip = _clip()
    m = ib_score.IBScoreMetric()
    res = m.score(clip, ITEM)
    assert set(res.values) == {"ib_score", "ib_tv", "ib_ta"} and not res.errors
    # MOVA stage: 3 frames at 0.5 fps (t = 0, 2, 4 s), 2 pairs × 3 crops
    vclips, d = ib_score.mova_video_clips(clip)
    assert vclips.shape == (6, 3, 2, 224, 224) and d["ib_frames"] == 3
    mels, _ = ib_score.audio_clips(clip)
    jclips, _ = ib_score.javis_video_clips(clip)
    assert jclips.shape == (15, 3, 2, 224, 224)
    tok = clip_bpe.ClipTokenizer()
    ids = torch.tensor([tok(ITEM.prompt, "cut")[0], tok(ITEM.audio_prompts[0], "cut")[0]])
    cos = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)  # JavisBench's
    with torch.no_grad():
        r = ref({"vision": vclips[None], "audio": mels.float()[None]})
        rj = ref({"vision": jclips[None], "text": ids})
    assert abs(res.values["ib_score"] - float(cos(r["vision"], r["audio"]))) < 1e-4
    assert abs(res.values["ib_tv"] - float(cos(rj["text"][0:1], rj["vision"]))) < 1e-4
    assert abs(res.values["ib_ta"] - float(cos(rj["text"][1:2], r["audio"]))) < 1e-4
    assert len({round(v, 6) for v in res.values.values()}) == 3
    other = m.score(_clip(seed=5), ITEM)
    assert abs(other.values["ib_score"] - res.values["ib_score"]) > 1e-4


def test_scale_100_is_a_differently_named_output(small_metric):
    clip = _clip()
    one = ib_score.IBScoreMetric().score(clip, ITEM)
    hundred_metric = ib_score.IBScoreMetric({"scale": 100})
    hundred = hundred_metric.score(clip, ITEM)
    assert [o.name for o in hundred_metric.info.outputs] == ["ib_score_x100", "ib_tv", "ib_ta"]
    assert "ib_score" not in hundred.values
    assert hundred.values["ib_score_x100"] == pytest.approx(100 * one.values["ib_score"], rel=1e-9)
    # the class knows every name an option may select, so summaries and cards can describe them
    assert ib_score.IBScoreMetric.info.output("ib_score_x100").unit == "cosine ×100"
    assert hundred_metric.cache_token() != ib_score.IBScoreMetric().cache_token()
    eot = ib_score.IBScoreMetric({"text_truncate": "eot"})
    assert [o.name for o in eot.info.outputs] == ["ib_score", "ib_tv_eot", "ib_ta_eot"]


def test_clips_shorter_than_7_9_s_have_no_ib_score_but_text_scores(small_metric):
    res = ib_score.IBScoreMetric().score(_clip(seconds=5.0), ITEM)
    assert math.isnan(res.values["ib_score"]) and "7.9" in res.errors["ib_score"]
    assert math.isfinite(res.values["ib_tv"]) and math.isfinite(res.values["ib_ta"])
    empty = SuiteItem(id="y", category="set1", prompt="")
    res = ib_score.IBScoreMetric().score(_clip(), empty)
    assert math.isfinite(res.values["ib_score"]) and "no prompt" in res.errors["ib_tv"]


def test_options_are_checked():
    from mova_eval.errors import ConfigError

    for bad in ({"scale": 10}, {"scale": True}, {"text_truncate": "x"}, {"video_batch": 0}, {"frames": 3}):
        with pytest.raises(ConfigError):
            ib_score.IBScoreMetric(bad)


def test_unavailable_without_weights_names_the_fetch_command_and_licence(monkeypatch, tmp_path):
    from mova_eval import weights

    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = ib_score.IBScoreMetric.availability()
    assert not av.ok and av.command == "mova-eval weights fetch imagebind_huge"
    spec = weights.get("imagebind_huge")
    assert spec.non_commercial and "NC" in spec.license


def test_a_run_records_the_non_commercial_checkpoint(small_metric, monkeypatch, tmp_path):
    from mova_eval.context import RunContext
    from mova_eval.runner import select_metrics

    (tmp_path / "imagebind_huge.pth").write_bytes(b"stand-in; the network is patched")
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    plan = select_metrics({"only": ["ib_score"], "options": {"ib_score": {"scale": 100}}}, RunContext.from_env())
    (status,) = plan.statuses
    assert status.available and "CC-BY-NC" in status.non_commercial_weights["imagebind_huge"]
    # the run log records every option with its value, the declared defaults included (typed options)
    assert status.options["scale"] == 100 and status.options["text_truncate"] == "cut"
    assert [o.name for o in plan.metrics[0].info.outputs][0] == "ib_score_x100"


# ----------------------------------------------------------------------------------------------- JavisScore


def test_javis_windows_match_the_published_counts():
    assert len(ib_score.window_starts(193, 48, 12)) == 14  # 8.04 s at 24 fps
    assert len(ib_score.window_starts(128_640, 32_000, 8_000)) == 14
    assert ib_score.window_starts(40, 48, 12) == [0]  # ≤ 2 s: one window
    assert ib_score.window_starts(193, 48, 12)[-1] == 145  # the last window ends at the last frame
    assert ib_score.lowest_share_mean(np.arange(48.0)) == pytest.approx(np.arange(19.0).mean())  # k = int(0.4·48)


def test_javis_score_equals_the_reference_computation(small_metric, pair):
    ref, _ = pair
    clip = _clip(seconds=3.0, fps=12.0, size=(240, 320))
    res = ib_score.JavisScoreMetric().score(clip, ITEM)
    assert not res.errors and res.details["javis_windows"] == 3  # 36 frames, 24/6; 48000 samples, 32000/8000
    from mova_eval.metrics.desync import center_crop

    frames = center_crop(clip.video_for(ib_score.JAVIS_FRAME_PRESET))
    x = ib.normalise_pixels(torch.from_numpy(np.array(frames))).permute(1, 0, 2, 3)  # [T, 3, 224, 224] images
    wave = torch.from_numpy(np.array(clip.audio_for(ib_score.AUDIO_PRESET), dtype=np.float64))
    cos = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    with torch.no_grad():
        fe = ref({"vision": x})["vision"]
        scores = []
        for vs, a0 in zip(ib_score.window_starts(36, 24, 6), ib_score.window_starts(48000, 32000, 8000)):
            mels, _ = ib.audio_clips(wave[:, a0 : a0 + 32000])
            ae = ref({"audio": mels.float()[None]})["audio"]
            c = cos(fe[vs : vs + 24], ae).numpy()
            scores.append(np.sort(c)[: int(0.4 * 24)].mean())
    assert abs(res.values["javis_score"] - float(np.mean(scores))) < 1e-4
    assert np.std(scores) > 1e-4 and abs(np.mean(scores)) > 1e-4  # windows differ; not a trivial value
