"""audiobox_aesthetics: our WavLM + heads against the reference package (PyPI ``audiobox_aesthetics`` 0.0.4,
requirements/test-nodeps.txt) on seeded random weights in the official ``checkpoint.pt`` layout, stage by stage
(feature extractor, the 13 hidden states, heads) and on the final per-file numbers of ``AesPredictor.forward``
(chunking and length-weighted mean included).

torchaudio does not load here, and the reference imports it at module level: a stand-in module is put in
``sys.modules`` for the reference only. Its ``resample`` refuses any rate change, so the reference is always fed
16 kHz audio and never runs our resampler; ours (torchaudio's windowed-sinc with its defaults) is checked separately
against its defining properties (not against torchaudio itself, which cannot run here)."""
from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from mova_eval.metrics.features import audiobox as ab


def _torchaudio_standin():
    mod = types.ModuleType("torchaudio")
    mod.functional = types.ModuleType("torchaudio.functional")

    def resample(wav, orig_freq, new_freq):
        if orig_freq != new_freq:
            raise AssertionError("the parity test feeds the reference 16 kHz audio only")
        return wav

    def load(*a, **k):
        raise AssertionError("the parity test passes tensors, never files")

    mod.functional.resample, mod.load = resample, load
    return mod


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    pytest.importorskip("audiobox_aesthetics", reason="reference package not installed (requirements/test-nodeps.txt)")
    pytest.importorskip("rich", reason="audiobox_aesthetics.utils imports tqdm.rich")
    saved = {k: sys.modules.get(k) for k in ("torchaudio", "torchaudio.functional")}
    ta = _torchaudio_standin()
    sys.modules["torchaudio"], sys.modules["torchaudio.functional"] = ta, ta.functional
    try:
        from audiobox_aesthetics.infer import AesPredictor
        from audiobox_aesthetics.model.aes import AesMultiOutput
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    cfg = {"proj_num_layer": 5, "proj_ln": True, "proj_act_fn": "gelu", "proj_dropout": 0, "nth_layer": 13,
           "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
    transform = {a: {"mean": m, "std": s} for a, (m, s) in ab.TARGET_TRANSFORM.items()}
    torch.manual_seed(0)
    ref = AesMultiOutput(**cfg, target_transform=transform).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # perturb every tensor so that LN gains, biases, gates and layer weights all matter
        for _, p in ref.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim < 2 else 0.02))
    path = tmp_path_factory.mktemp("aes") / "checkpoint.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ref.state_dict().items()}, "model_cfg": cfg,
                "target_transform": transform}, path)
    ours, tt = ab.load(path)
    pred = AesPredictor(checkpoint_pth=str(path), data_col="wav")
    pred.model.to("cpu")
    pred.device = torch.device("cpu")
    return ref, ours, tt, pred, path


def _audio(seconds, seed):
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * ab.SAMPLE_RATE)) / ab.SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.05 * g.standard_normal(t.size)
    return x.astype(np.float32)


def test_checkpoint_layout_is_the_official_one(reference):
    ref, ours, *_ = reference
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ab.state_dict_keys(ours).items()}
    assert len(theirs) == 324 and mine == theirs


def test_stages_match_the_reference(reference):
    ref, ours, *_ = reference
    chunks, mask, _ = ab.chunk(np.concatenate([_audio(10, 1), _audio(3.3, 2)]))
    wav, valid = torch.from_numpy(chunks), torch.from_numpy(mask)
    with torch.no_grad():
        f_ref = ref.wavlm_model.feature_extractor(wav)
        f_ours = ours.wavlm_model.feature_extractor(wav)
        assert (f_ref - f_ours).abs().max() < 1e-4
        (_, layers), pad_ref = ref.wavlm_model.extract_features(source=wav, padding_mask=~valid, output_layer=13,
                                                                ret_layer_results=True)
        x, pad = ours.wavlm_model.features(wav, valid)
        assert torch.equal(pad, pad_ref) and pad[1].any() and not pad[0].any()  # the 3.3 s chunk has padding
        states = ours.wavlm_model.layers(x, pad)
        assert len(states) == len(layers) == 13
        for i, (s, (r, _)) in enumerate(zip(states, layers)):
            err = (s - r.transpose(0, 1)).abs().max()
            assert err < 1e-4, f"hidden state {i}: {err}"
        assert (states[12] - states[0]).abs().max() > 1e-2  # the layers do something
        z_ref = ref({"wav": wav[:, None], "mask": valid[:, None]})
        z = ours.heads(states, pad)
    for a in ab.AXES:
        assert (z[a] - z_ref[a]).abs().max() < 1e-4, a
    assert (states[12][0] - states[12][1]).abs().max() > 1e-2
    assert max(abs(float(z[a][0] - z[a][1])) for a in ab.AXES) > 1e-3  # two inputs, two predictions


def test_final_numbers_match_aes_predictor(reference):
    _, ours, tt, pred, _ = reference
    clips = [_audio(23.5, 3), _audio(8.0, 4)]  # three chunks (last partial) and one partial chunk
    theirs = pred.forward([{"wav": torch.from_numpy(c)[None], "sample_rate": 16000} for c in clips])
    mine = [ab.predict(ours, tt, c, batch=2) for c in clips]
    for t, m in zip(theirs, mine):
        for a in ab.AXES:
            assert abs(t[a] - m[a]) < 1e-4, (a, t[a], m[a])
    assert any(abs(mine[0][a] - mine[1][a]) > 1e-3 for a in ab.AXES)


def test_a_swapped_weight_breaks_parity(reference, tmp_path):
    ref, _, _, _, path = reference
    ckpt = torch.load(path, weights_only=False)
    sd = ckpt["state_dict"]
    a, b = "model.proj_layer.PQ.0.weight", "model.proj_layer.CE.0.weight"
    sd[a], sd[b] = sd[b], sd[a]
    torch.save(ckpt, tmp_path / "swapped.pt")
    swapped, tt = ab.load(tmp_path / "swapped.pt")
    x = _audio(4.0, 5)
    good = ab.predict(ab.load(path)[0], tt, x)
    bad = ab.predict(swapped, tt, x)
    assert abs(good["PQ"] - bad["PQ"]) > 1e-3 and abs(good["CU"] - bad["CU"]) < 1e-9


def test_a_wrong_key_layout_is_refused(reference, tmp_path):
    _, _, _, _, path = reference
    ckpt = torch.load(path, weights_only=False)
    ckpt["state_dict"].pop("model.layer_weights.PC")
    torch.save(ckpt, tmp_path / "short.pt")
    with pytest.raises(RuntimeError, match="layer_weights.PC"):
        ab.load(tmp_path / "short.pt")


# ------------------------------------------------------------------------------------------- resampling, chunking


def test_resampler_keeps_the_passband_and_the_torchaudio_length():
    sr = 48_000
    t = np.arange(int(2.0 * sr) + 7) / sr
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = ab.resample_like_torchaudio(x, sr, 16_000)
    assert y.shape == (math.ceil(x.size / 3),)
    ty = np.arange(y.size) / 16_000
    mid = slice(200, y.size - 200)  # away from the zero-padded edges
    assert np.abs(y[mid] - np.sin(2 * np.pi * 1000 * ty[mid])).max() < 5e-3
    hi = np.sin(2 * np.pi * 12_000 * t).astype(np.float32)  # above the new Nyquist: removed
    assert np.abs(ab.resample_like_torchaudio(hi, sr, 16_000)[mid]).max() < 2e-2
    y2 = ab.resample_like_torchaudio(x, 44_100, 16_000)
    assert y2.shape == (math.ceil(x.size * 160 / 441),)
    assert ab.resample_like_torchaudio(x, 16_000, 16_000) is not None
    assert np.array_equal(ab.resample_like_torchaudio(x, 16_000, 16_000), x)


def test_chunking_is_make_inference_batch():
    x = np.arange(ab.WINDOW * 2 + 1000, dtype=np.float32)
    chunks, mask, w = ab.chunk(x)
    assert chunks.shape == (3, ab.WINDOW) and w.tolist() == [1.0, 1.0, 1000 / ab.WINDOW]
    assert mask[2, :1000].all() and not mask[2, 1000:].any() and (chunks[2, 1000:] == 0).all()
    assert chunks[1, 0] == ab.WINDOW


# ------------------------------------------------------------------------------------------------- the metric


def _clip(audio, sr, seed=0):
    from mova_eval.spec import Clip

    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return Clip(path=f"mem{seed}.mp4", content_hash=f"aes{seed}", video=None, fps=None, audio=audio, sample_rate=sr,
                duration=audio.shape[-1] / sr)


@pytest.fixture
def metric(reference, tmp_path, monkeypatch):
    import shutil

    from mova_eval import weights
    from mova_eval.metrics import audiobox_aesthetics as mod

    *_, path = reference
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(path, folder / weights.get("audiobox_aesthetics").filename)
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(folder))
    monkeypatch.setattr(mod, "_NETS", {})
    m = mod.AudioboxAestheticsMetric({"chunk_batch": 2})
    m.load()
    return m


def test_metric_equals_the_reference_predictor_on_a_stereo_16k_clip(reference, metric):
    from mova_eval.spec import SuiteItem

    *_, pred, _ = reference
    stereo = np.stack([_audio(12.0, 6), _audio(12.0, 7)])
    got = metric.score(_clip(stereo, 16_000), SuiteItem(id="a", category="c", prompt=""))
    want = pred.forward([{"wav": torch.from_numpy(stereo), "sample_rate": 16000}])[0]  # resample (identity), mean
    assert not got.errors and got.details["chunks"] == 2
    for name, axis in (("aes_ce", "CE"), ("aes_cu", "CU"), ("aes_pc", "PC"), ("aes_pq", "PQ")):
        assert abs(got.values[name] - want[axis]) < 1e-4, name


def test_metric_resamples_other_rates_and_names_missing_audio(reference, metric):
    from mova_eval.spec import Clip, SuiteItem

    _, ours, tt, *_ = reference
    x48 = _audio(3.0, 8)
    x48 = ab.resample_like_torchaudio(np.repeat(x48, 3), 16_000, 48_000)  # some 48 kHz signal
    got = metric.score(_clip(x48[None], 48_000, seed=1), SuiteItem(id="b", category="c", prompt=""))
    want = ab.predict(ours, tt, ab.resample_like_torchaudio(x48, 48_000, 16_000))
    assert got.details["source_sample_rate"] == 48_000 and abs(got.details["seconds"] - 9.0) < 1e-3
    assert all(abs(got.values[f"aes_{a.lower()}"] - want[a]) < 1e-5 for a in ab.AXES)
    silent = Clip(path="v.mp4", content_hash="v", video=None, fps=None, audio=None, sample_rate=None, duration=1.0)
    r = metric.score(silent, SuiteItem(id="c", category="c", prompt=""))
    assert all(math.isnan(v) for v in r.values.values()) and "no audio" in r.errors["aes_pq"]


def test_card_states_directions_and_pc_is_not_a_quality():
    from mova_eval.metrics.audiobox_aesthetics import AudioboxAestheticsMetric

    info = AudioboxAestheticsMetric.info
    dirs = {o.name: o.direction for o in info.outputs}
    assert dirs == {"aes_ce": "higher", "aes_cu": "higher", "aes_pc": "none", "aes_pq": "higher"}
    assert "not a quality" in info.output("aes_pc").description
    assert any("AVGen-Bench" in t for t in info.card.tables)


def test_the_hf_safetensors_layout_loads_to_the_same_network(reference, tmp_path):
    from safetensors.torch import save_file

    ref, ours, *_ = reference
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "model.safetensors"))
    hf, tt = ab.load(tmp_path / "model.safetensors")
    assert tt == ab.TARGET_TRANSFORM
    a, b = ab.state_dict_keys(hf), ab.state_dict_keys(ours)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
