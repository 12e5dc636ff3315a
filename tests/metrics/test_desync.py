"""DeSync / Synchformer self-consistency, without the reference (which test_synchformer_parity.py needs).

Shapes of every stage against the published architecture, the released checkpoint's 513-key layout and a strict
state_dict round trip, determinism and non-vacuity, the log-mel front end against librosa (an independent
implementation of the same torchaudio defaults), and both DeSync protocols' window choice and aggregation on a
small network of the same shape rules (full-size numbers are the parity test's job).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mova_eval import media  # noqa: E402
from mova_eval.errors import MediaError  # noqa: E402
from mova_eval.metrics import desync  # noqa: E402
from mova_eval.metrics.features import synchformer as sf  # noqa: E402
from mova_eval.spec import SuiteItem  # noqa: E402

from .synchformer_helpers import random_state, synthetic_av  # noqa: E402

ITEM = SuiteItem(id="x", category="set1", prompt="")
TINY = sf.SynchformerConfig(dim=64, v_depth=1, v_heads=4, a_depth=1, a_heads=4, mlp=128, g_depth=1, g_heads=4)

# representative entries of synchformer_state_dict.pth (../shared/reference/metrics-2.md §1.3)
RELEASE_SHAPES = {
    "vfeat_extractor.cls_token": (1, 1, 768),
    "vfeat_extractor.pos_embed": (1, 197, 768),
    "vfeat_extractor.temp_embed": (1, 8, 768),
    "vfeat_extractor.patch_embed.proj.weight": (768, 3, 16, 16),
    "vfeat_extractor.patch_embed_3d.proj.weight": (768, 3, 2, 16, 16),
    "vfeat_extractor.blocks.11.attn.qkv.weight": (2304, 768),
    "vfeat_extractor.blocks.0.timeattn.proj.weight": (768, 768),
    "vfeat_extractor.blocks.5.mlp.fc1.weight": (3072, 768),
    "vfeat_extractor.blocks.5.mlp.fc2.weight": (768, 3072),
    "vfeat_extractor.blocks.3.norm3.bias": (768,),
    "vfeat_extractor.spatial_attn_agg.cls_token": (1, 1, 768),
    "vfeat_extractor.spatial_attn_agg.self_attn.in_proj_weight": (2304, 768),
    "vfeat_extractor.spatial_attn_agg.linear1.weight": (3072, 768),
    "afeat_extractor.ast.embeddings.distillation_token": (1, 1, 768),
    "afeat_extractor.ast.embeddings.position_embeddings": (1, 74, 768),
    "afeat_extractor.ast.embeddings.patch_embeddings.projection.weight": (768, 1, 16, 16),
    "afeat_extractor.ast.encoder.layer.11.attention.attention.query.weight": (768, 768),
    "afeat_extractor.ast.encoder.layer.0.attention.output.dense.bias": (768,),
    "afeat_extractor.ast.encoder.layer.4.intermediate.dense.weight": (3072, 768),
    "afeat_extractor.ast.encoder.layer.4.output.dense.weight": (768, 3072),
    "afeat_extractor.ast.layernorm.weight": (768,),
    "afeat_extractor.freq_attn_agg.self_attn.out_proj.weight": (768, 768),
    "vproj.weight": (768, 768),
    "aproj.bias": (768,),
    "transformer.OFF_tok": (1, 1, 768),
    "transformer.pos_emb_cfg.pos_emb": (1, 198, 768),
    "transformer.blocks.2.attn.value.weight": (768, 768),
    "transformer.blocks.0.mlp.0.weight": (3072, 768),
    "transformer.blocks.0.mlp.2.weight": (768, 3072),
    "transformer.off_head.weight": (21, 768),
    "transformer.off_head.bias": (21,),
}


def test_release_layout_and_size():
    with torch.device("meta"):
        sd = sf.Synchformer().state_dict()
    assert len(sd) == 513
    assert sum(v.numel() for v in sd.values()) == 237_460_245
    counts = {p: sum(k.startswith(p) for k in sd) for p in ("vfeat_extractor.", "afeat_extractor.", "transformer.")}
    assert counts == {"vfeat_extractor.": 238, "afeat_extractor.": 212, "transformer.": 59}
    for k, shape in RELEASE_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert sf.CLASS_GRID[10] == 0.0 and len(sf.CLASS_GRID) == 21 and sf.CLASS_GRID[0] == -2.0


@pytest.mark.slow
def test_strict_round_trip_of_a_full_size_checkpoint(tmp_path):
    """A random state_dict in the release layout loads strictly and unchanged; a missing or extra key is refused."""
    state = random_state(seed=3)
    path = tmp_path / "synchformer_state_dict.pth"
    torch.save(state, path)
    net = sf.load(path)
    back = net.state_dict()
    assert all(torch.equal(back[k], state[k]) for k in state)
    del state["transformer.off_head.bias"]
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="off_head.bias"):
        sf.load(path)
    state["transformer.off_head.bias"] = torch.zeros(21)
    state["vfeat_extractor.head.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="head.weight"):
        sf.load(path)
    torch.save({"model": random_state(seed=3)}, path)  # upstream's training checkpoint keeps it under 'model'
    assert torch.equal(sf.load(path).state_dict()["vproj.weight"], back["vproj.weight"])


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    net = sf.Synchformer().eval()
    net.load_state_dict(random_state(seed=5))
    return net


@torch.inference_mode()
def test_stage_shapes_full_size(full):
    """One segment through each stage: 16×224² → 8×14×14 tokens + CLS → 8 pooled tokens; 128×66 mel → 12×6
    patches + 2 → 6 pooled tokens; 14 segments → 198 positions → 21 logits."""
    v = full.vfeat_extractor
    seg = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    tok = v.tokens(seg)
    assert tok.shape == (1, 1 + 8 * 196, 768)
    enc = v.encode(seg)
    assert enc.shape == (1, 8 * 196, 768)
    assert v.pool(enc).shape == (1, 8, 768)
    a = full.afeat_extractor
    mel = torch.randn(2, 128, 66)
    assert a.tokens(mel).shape == (2, 74, 768)
    enc_a = a.encode(mel)
    assert enc_a.shape == (2, 72, 768)
    assert a.pool(enc_a).shape == (2, 6, 768)
    logits = full.compare(torch.randn(2, 14, 8, 768), torch.randn(2, 14, 6, 768))
    assert logits.shape == (2, 21)
    with pytest.raises(ValueError, match="exactly 198"):
        full.compare(torch.randn(1, 13, 8, 768), torch.randn(1, 13, 6, 768))


@torch.inference_mode()
def test_deterministic_and_input_dependent(full):
    v = torch.randn(2, 14, 8, 768, generator=torch.Generator().manual_seed(1))
    a = torch.randn(2, 14, 6, 768, generator=torch.Generator().manual_seed(2))
    l1, l2 = full.compare(v, a), full.compare(v.clone(), a.clone())
    assert torch.equal(l1, l2)
    assert float((l1[0] - l1[1]).abs().max()) > 1e-2  # different inputs, different logits
    mel = torch.randn(3, 128, 66, generator=torch.Generator().manual_seed(3))
    f = full.audio_features(mel)
    assert torch.equal(f, full.audio_features(mel))
    assert float((f[0] - f[1]).abs().max()) > 1e-2
    # batching does not change the result beyond float noise
    assert torch.allclose(torch.cat([full.audio_features(mel[i : i + 1]) for i in range(3)]), f, atol=1e-5)


def test_log_mel_matches_librosa_with_torchaudio_defaults():
    """The front end against librosa with torchaudio MelSpectrogram's defaults spelled out (periodic Hann of 400
    centred in 1024, reflect padding, power 2, HTK mel without norm, 0–8 kHz)."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(10240)).astype(np.float32)
    x[2000:4000] += np.sin(2 * np.pi * 440 * np.arange(2000) / 16000).astype(np.float32)
    ours = sf.log_mel(torch.from_numpy(x)[None])[0].numpy()
    assert ours.shape == (128, 66)
    m = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=16000, n_fft=1024, hop_length=160, win_length=400,
                                       window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=128,
                                       fmin=0.0, fmax=8000.0, htk=True, norm=None)
    assert m.shape == (128, 65)
    want = (np.log(m + 1e-6) - sf.AST_MEAN) / (2 * sf.AST_STD)
    np.testing.assert_allclose(ours[:, :65], want, atol=2e-4)
    # frame 66 is zero padding added after the log
    np.testing.assert_allclose(ours[:, 65], -sf.AST_MEAN / (2 * sf.AST_STD), atol=1e-6)
    assert ours[:, :65].std() > 0.1


def test_filterbank_is_htk_triangles():
    fb = sf.mel_filterbank()
    assert fb.shape == (513, 128)
    assert float(fb.min()) == 0.0 and 0.9 < float(fb.max()) <= 1.0
    peaks = fb.argmax(0)
    assert bool((peaks[1:] >= peaks[:-1]).all())  # ordered centres


def test_center_crop_rounds_like_torchvision():
    f = np.arange(224 * 407, dtype=np.int64).reshape(1, 224, 407, 1)
    out = desync.center_crop(f)
    assert out.shape == (1, 224, 224, 1)
    assert out[0, 0, 0, 0] == 92  # round(183 / 2) = 92 (Python rounds half to even); (407 − 224) // 2 would be 91
    with pytest.raises(ValueError):
        desync.center_crop(np.zeros((1, 100, 300, 3), np.uint8))


# ----------------------------------------------------------------------------------------------- protocols


@pytest.fixture()
def tiny_metric(monkeypatch):
    torch.manual_seed(0)
    net = sf.Synchformer(TINY).eval()
    net.load_state_dict(random_state(TINY, seed=11))
    monkeypatch.setattr(desync, "shared_network", lambda device, context=None: net)
    return net


def _clip(tmp_path, seconds, fps=25.0, size=(176, 320), delay=0.0, seed=0, name="c.mkv"):
    frames, audio = synthetic_av(seconds, fps=fps, size=size, seed=seed, audio_delay_s=delay)
    return media.decode(media.encode(tmp_path / name, frames, fps, audio, 16000, lossless=True))


def test_mova_protocol_windows_and_value(tiny_metric, tmp_path):
    clip = _clip(tmp_path, 8.0)
    res = desync.DeSyncMetric().score(clip, ITEM)
    d = res.details
    assert d["protocol"] == "mova" and d["segments"] == 23  # 197 frames / 126400 samples → 23 segments each
    assert [w["start_s"] for w in d["windows"]] == [0.0, 2.88]
    assert res.values["desync"] in {round(0.1 * k, 10) for k in range(0, 21)}
    # the windows see different content (first vs last 4.8 s) and the network output depends on the audio
    frames, audio, _ = desync.prepare(clip, desync.MOVA)
    a = desync.score_window_sets(tiny_metric, frames, audio, desync.MOVA)
    # MOVA's rule from the network's logits, not from the metric's own details: the 21 classes are offsets
    # −2.0, −1.8, …, +2.0 s; each window's offset is its argmax class; the value is the mean |offset|
    offsets = [-2.0 + 0.2 * int(np.argmax(w.logits)) for w in a.windows]
    assert len(offsets) == 2
    assert res.values["desync"] == pytest.approx(np.mean(np.abs(offsets)), abs=1e-9)
    b = desync.score_window_sets(tiny_metric, frames, np.roll(audio, 4000), desync.MOVA)
    assert np.abs(a.windows[0].logits - a.windows[1].logits).max() > 1e-4
    assert np.abs(a.windows[0].logits - b.windows[0].logits).max() > 1e-4


def test_mova_protocol_uses_only_the_first_7_9_s(tiny_metric, tmp_path):
    """Content after 7.9 s does not change the value; the window is 197 frames / 126400 samples."""
    frames, audio = synthetic_av(9.0, size=(176, 320), seed=1)
    c1 = media.decode(media.encode(tmp_path / "a.mkv", frames, 25.0, audio, 16000, lossless=True))
    frames2, audio2 = frames.copy(), audio.copy()
    frames2[200:] = 255 - frames2[200:]
    audio2[:, 127000:] *= -3
    c2 = media.decode(media.encode(tmp_path / "b.mkv", frames2, 25.0, audio2, 16000, lossless=True))
    f1, a1, _ = desync.prepare(c1, desync.MOVA)
    assert f1.shape == (197, 224, 224, 3) and a1.shape == (126400,)
    r1, r2 = (desync.score_window_sets(tiny_metric, *desync.prepare(c, desync.MOVA)[:2], desync.MOVA) for c in (c1, c2))
    for w1, w2 in zip(r1.windows, r2.windows):
        np.testing.assert_array_equal(w1.logits, w2.logits)


def test_short_clips_are_nan_with_the_reason(tiny_metric, tmp_path):
    clip = _clip(tmp_path, 7.0)
    with pytest.raises(MediaError, match=r"too short for DeSync \(mova\).*7.9 s"):
        desync.DeSyncMetric().score(clip, ITEM)
    clip = _clip(tmp_path, 4.5, name="d.mkv")
    with pytest.raises(MediaError, match=r"too short for DeSync \(avgen\).*5 s"):
        desync.DeSyncAVGenMetric().score(clip, ITEM)


def test_video_a_frame_short_is_padded_like_mova(tiny_metric, tmp_path):
    frames, audio = synthetic_av(8.0, size=(176, 320), seed=2)
    clip = media.decode(media.encode(tmp_path / "p.mkv", frames[:196], 25.0, audio, 16000, lossless=True))
    f, a, d = desync.prepare(clip, desync.MOVA)
    assert d["video_padded_frames"] == 1 and f.shape[0] == 197
    np.testing.assert_array_equal(f[196], f[195])


def test_avgen_protocol_one_centred_window_expected_offset(tiny_metric, tmp_path):
    clip = _clip(tmp_path, 6.0, size=(256, 480))
    res = desync.DeSyncAVGenMetric().score(clip, ITEM)
    (w,) = res.details["windows"]
    assert w["start_s"] == 0.08 and res.details["protocol"] == "avgen"
    assert 0 <= res.values["desync_avgen"] <= 2
    frames, _, _ = desync.prepare(clip, desync.AVGEN)
    assert frames.shape == (125, 224, 224, 3)  # the first 5 s at short side 256, centre 224
    # |E[offset]| differs from E|offset| and from the argmax rule: the value is the expectation's magnitude
    frames, audio, _ = desync.prepare(clip, desync.AVGEN)
    r = desync.score_window_sets(tiny_metric, frames, audio, desync.AVGEN)
    # AVGen-Bench's rule from the logits alone: softmax over the 21 classes (offsets −2.0 … +2.0 s in 0.2 s steps),
    # the expected offset, its magnitude
    p = torch.softmax(torch.from_numpy(np.asarray(r.windows[0].logits, np.float64)), -1).numpy()
    want = abs(float(np.sum(p * np.linspace(-2.0, 2.0, 21))))
    assert r.value == pytest.approx(want, abs=1e-9)
    assert res.values["desync_avgen"] == pytest.approx(want, abs=1e-6)
    assert 0 < p.max() < 1


def test_metric_ids_and_outputs_are_distinct():
    a, b = desync.DeSyncMetric.info, desync.DeSyncAVGenMetric.info
    assert a.name != b.name and {o.name for o in a.outputs}.isdisjoint(o.name for o in b.outputs)
    assert a.outputs[0].direction == b.outputs[0].direction == "lower"
    assert a.aggregation != b.aggregation  # MOVA: mean of category means; AVGen: pooled over clips


def test_unavailable_without_weights_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = desync.DeSyncMetric.availability()
    assert not av.ok and av.command == "mova-eval weights fetch synchformer"


def test_unknown_option_is_a_config_error():
    from mova_eval.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown option"):
        desync.DeSyncMetric({"windows": 3})
    assert math.isfinite(desync.DeSyncMetric({"video_batch": 2}).video_batch)


@pytest.mark.slow
def test_run_records_values_and_short_clip_reasons(tiny_metric, tmp_path, monkeypatch):
    """Through `mova-eval run` on the smoke suite: 8 s clips get values, 4 s clips NaN with the reason, counted as
    excluded in the summary (the network is the small one; the weights file only has to exist)."""
    import pandas as pd

    from mova_eval.cli import main
    from mova_eval.results import read_run_json

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "synchformer_state_dict.pth").write_bytes(b"stand-in; the network is patched")
    # the registry carries MMAudio's md5, which the run's pre-load check would hold against this stand-in (that
    # check is tested in tests/unit/test_weights_and_config.py); here only the network's values are under test
    import dataclasses

    from mova_eval import weights

    spec = weights.get("synchformer")
    monkeypatch.setitem(weights._REGISTRY, "synchformer", dataclasses.replace(spec, md5=None, md5_source=None))
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path / "w"))
    base = ["metrics.only=[desync,desync_avgen]", "runtime.progress=false", "runtime.bootstrap=0"]
    for run_id, seconds in (("long", 8.0), ("short", 4.0)):
        rc = main(["run", f"output_dir={tmp_path}", f"run_id={run_id}", f"generator.duration={seconds}", *base])
        # every clip of the short run is too short: a requested metric with no value at all fails the run (exit 1)
        assert rc == (0 if run_id == "long" else 1)
    long = pd.read_parquet(tmp_path / "long" / "items.parquet")
    for name in ("desync", "desync_avgen"):
        v = long[long.metric == name]["value"]
        assert len(v) == 10 and v.between(0, 2).all(), long[long.metric == name][["value", "error"]]
    short = pd.read_parquet(tmp_path / "short" / "items.parquet")
    assert short["value"].isna().all() and short["error"].str.contains("too short for DeSync").all()
    log = read_run_json(tmp_path / "short")
    row = [r for r in log.summary if r.metric == "desync" and r.category == "all"][0]
    assert row.mean is None and row.excluded == 10
    assert log.status == "failed" and {f.rule for f in log.failures} == {"no_value"}
    assert any("desync" in f.detail and "10 media error" in f.detail for f in log.failures)
