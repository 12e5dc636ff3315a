"""The MOVA decode presets against the MOVA toolkit's own scripts, run on the same generated clips.

Set ``MOVA_TOOLKIT_DIR`` to the ``evaluation/`` folder of an OpenMOSS/MOVA checkout (e.g. ``git archive HEAD
evaluation | tar -x``); the scripts are imported from there, never copied. Without it these tests skip with that
reason. The toolkit decodes with the ``ffmpeg`` binary, so the tests also need it on PATH.

Clips: speech-like harmonic signals (a gliding vowel with syllable envelope and noise) in AAC/MP4 as generators
write them, at several lengths (3–10 s: tiled and untiled DNSMOS), channel counts and sample rates.

IS and CLAP (``eval_audio_is_clap.py`` + ``IS.py``) also need panns-inference, laion-clap, pyloudnorm and the
roberta-base tokenizer files in ../shared (the seeded random CLAP of test_clap.py); each stage of their pipeline
(decoded samples, model input, network output, score) is compared, with guards that the corrected decode fails.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media

CLIPS = {  # name: (sample rate, channels, seconds)
    "48k_stereo_8.04s": (48000, 2, 8.04),
    "44k_mono_5s": (44100, 1, 5.0),
    "16k_mono_3.3s": (16000, 1, 3.3),
    "24k_stereo_10s": (24000, 2, 10.0),
}


def _toolkit_module(relpath: str, name: str):
    root = os.environ.get("MOVA_TOOLKIT_DIR")
    if not root:
        pytest.skip("MOVA_TOOLKIT_DIR is not set (point it at the evaluation/ folder of an OpenMOSS/MOVA checkout)")
    path = Path(root) / relpath
    if not path.is_file():
        pytest.skip(f"{path} is absent (MOVA_TOOLKIT_DIR must be the toolkit's evaluation/ folder)")
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg binary is not installed; the toolkit decodes with it")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _voice(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * (3.1 + 0.2 * seed) * t), 0, None) ** 2
    return (0.25 * voiced * syllables + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("mova_parity")
    out = {}
    for i, (name, (sr, ch, seconds)) in enumerate(CLIPS.items()):
        x = _voice(sr, seconds, i)
        audio = np.stack([x * (1.0 - 0.25 * c) for c in range(ch)])
        frames = np.full((int(round(seconds * 24)), 32, 32, 3), 60, np.uint8)
        frames[:, :, : 16 + (i % 8)] = 200  # per-clip content, so the files differ beyond their audio
        out[name] = media.encode(root / f"{name}.mp4", frames, 24, audio, sr)
    return out


def test_dnsmos_mova_decode_matches_eval_dnsmos(clips):
    """P.808 per clip within 1e-3 of the toolkit's ComputeScore on its own ffmpeg wav (measured: ≤ 1e-5)."""
    tk = _toolkit_module("metrics/dnsmos/eval_dnsmos.py", "mova_toolkit_eval_dnsmos")
    from mova_eval.metrics.dnsmos import DnsmosMetric
    from mova_eval.spec import SuiteItem

    onnx_dir = Path(os.environ["MOVA_TOOLKIT_DIR"]) / "metrics" / "dnsmos" / "DNSMOS"
    ref_scorer = tk.ComputeScore(str(onnx_dir / "sig_bak_ovr.onnx"), str(onnx_dir / "model_v8.onnx"), use_gpu=False)
    item = SuiteItem(id="x", prompt="p", category="set3")
    mova, corrected = DnsmosMetric({"decode": "mova"}), DnsmosMetric({"decode": "corrected"})
    theirs, ours, ours_corrected = {}, {}, {}
    for name, path in clips.items():
        wav = tk.extract_audio_from_video_to_file(str(path), target_sr=16000)
        try:
            theirs[name] = float(ref_scorer(wav, 16000, False, only_p808=True)["P808_MOS"])
        finally:
            os.remove(wav)
        clip = media.decode(path)
        ours[name] = mova.score(clip, item).values["dnsmos_p808"]
        ours_corrected[name] = corrected.score(clip, item).values["dnsmos_p808"]
    for name in clips:
        assert abs(ours[name] - theirs[name]) <= 1e-3, (name, ours[name], theirs[name])
    # non-vacuity: the clips score differently, and the corrected decode is measurably not MOVA's
    assert np.ptp(list(theirs.values())) > 0.05
    assert max(abs(ours_corrected[n] - theirs[n]) for n in clips) > 5e-3


def test_av_align_mova_decode_matches_av_align_score(clips):
    """Onset times exact, IoU exact, against the toolkit's functions (ffmpeg f32le 44.1 kHz mono)."""
    pytest.importorskip("matplotlib")  # the toolkit script imports it at the top
    tk = _toolkit_module("metrics/av_quality/av_align_score.py", "mova_toolkit_av_align_score")
    from mova_eval.metrics.av_align import MOVA_PRESET, audio_peaks

    counts = []
    for name, path in clips.items():
        their_onsets, _, _ = tk.detect_audio_peaks_from_video(str(path))
        ours = audio_peaks(media.decode(path).audio_for(MOVA_PRESET))
        np.testing.assert_array_equal(ours, their_onsets, err_msg=name)
        counts.append(len(ours))
    assert min(counts) > 3 and len(set(counts)) > 1  # real onsets, different per clip


# ------------------------------------------------------------------------------------------------ IS and CLAP
from tests.metrics.test_clap import models  # noqa: E402,F401  (module-scoped: seeded random CLAP, LAION layout)


@pytest.fixture(scope="module")
def toolkit_audio(models, tmp_path_factory):  # noqa: F811
    """The toolkit's ``IS.py`` and ``eval_audio_is_clap.py``, imported from MOVA_TOOLKIT_DIR as they are.

    Their imports are met the way the toolkit's conda env would meet them, without touching this machine: ``HOME``
    is a temporary folder (IS.py copies its label CSV into ``~/panns_data``, where panns_inference reads it),
    torchaudio (imported by IS.py, unused by the functions called here) is the test stand-in, ``laion_clap`` is the
    PyPI package that ``models`` imported (the toolkit installs its vendored copy of the same code; both put
    ``clap_module`` on the path). Patches are undone afterwards; only new module entries remain.
    """
    pytest.importorskip("librosa")
    pytest.importorskip("pyloudnorm")
    pytest.importorskip("matplotlib")  # panns_inference.inference imports pyplot
    if importlib.util.find_spec("panns_inference") is None:
        pytest.skip("panns-inference is not installed (requirements/test-nodeps.txt)")
    from tests.stubs import torchaudio_standin

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        for k in [k for k in sys.modules if k.split(".")[0] == "panns_inference"]:
            mp.delitem(sys.modules, k)  # a bare package left by test_panns would lack AudioTagging
        torchaudio_standin.install()
        try:
            tk_is = _toolkit_module("metrics/audio_is_clap/IS.py", "IS")
            tk = _toolkit_module("metrics/audio_is_clap/eval_audio_is_clap.py", "mova_toolkit_eval_audio_is_clap")
        finally:
            torchaudio_standin.uninstall()
        yield tk_is, tk


def _cnn14_pair(tk_is, calibration: list[np.ndarray]):
    """Our Cnn14 and panns_inference's, with the same seeded random weights in the checkpoint's layout.

    A random Cnn14 maps every clip to nearly the same embedding, so its class posteriors barely differ and IS sits
    at 1.000 (comparing nothing). The class layer is therefore drawn afresh (seeded) on the embeddings' deviations
    from their mean over ``calibration`` inputs, scaled to logits of std 0.5: clips then get distinct posteriors. The
    gain also amplifies float32 noise between the two implementations (hence the stated tolerances).
    """
    import torch

    from mova_eval.metrics.features import panns

    ours = panns.build_cnn14(32000, seed=21)
    with torch.no_grad():
        emb = ours(torch.from_numpy(np.stack(calibration)))["embedding"].double()
        mean = emb.mean(0)
        w = torch.randn(527, emb.shape[1], generator=torch.Generator().manual_seed(22), dtype=torch.float64)
        w *= 0.5 / float(((emb - mean) @ w.T).std())
        ours.fc_audioset.weight.copy_(w.float())
        ours.fc_audioset.bias.copy_((-(w @ mean)).float())
    ref = tk_is.panns_inference.models.Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                                             fmax=14000, classes_num=527).eval()
    ref.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith(("spectrogram", "logmel"))},
                        strict=False)
    return ours, ref


def test_is_mova_decode_matches_eval_audio_is_clap(clips, toolkit_audio, monkeypatch):
    """Staged against the toolkit's own functions: decoded 32 kHz samples → the 10 s input → Cnn14 probabilities
    → IS over the set (≤ 1e-4), on clips of 3.3–10 s, mono and stereo, 16–48 kHz."""
    import torch

    from mova_eval.metrics import inception_score
    from mova_eval.metrics.features import panns
    from mova_eval.spec import SuiteItem

    tk_is, tk = toolkit_audio
    calibration = inception_score.InceptionScore({"decode": "corrected"})
    ours_net, ref_net = _cnn14_pair(tk_is, [calibration._audio(media.decode(p)) for p in clips.values()])

    audio_tagging = tk_is.panns_inference.AudioTagging

    def tagging(checkpoint_path=None, device="cpu", model=None):  # the toolkit's loader minus its download check
        at = object.__new__(audio_tagging)
        at.device, at.model = "cpu", ref_net
        return at

    monkeypatch.setattr(tk_is.panns_inference, "AudioTagging", tagging)
    monkeypatch.setattr(panns, "load_cnn14", lambda sr, device="cpu", context=None: ours_net)
    extractor = tk_is.Cnn14Extractor()
    ours, corrected = inception_score.InceptionScore({}), inception_score.InceptionScore({"decode": "corrected"})
    ours.load()
    corrected.load()
    theirs_p, ours_f, corr_f, items = [], [], [], []
    for name, path in clips.items():
        item = SuiteItem(id=name, prompt="p", category="set1")
        clip = media.decode(path)
        # 1. decoded samples (FFmpeg releases differ by ≤ 1 LSB in the AAC decoder: the system binary vs PyAV's)
        their_audio = tk.extract_audio_from_video_memory(str(path), target_sr=tk_is.sr)
        our_audio = clip.audio_for(inception_score.MOVA_PRESET)
        assert our_audio.shape == their_audio.shape, name
        assert np.abs(our_audio - their_audio).max() <= 2 / 32768, name
        # 2. the model's input: zero padded or cut to 10 s
        wav = torch.tensor(their_audio, dtype=torch.float32).unsqueeze(0)
        their_in = extractor._ten_seconds(wav).numpy()[0]
        our_in = ours._audio(clip)
        assert our_in.shape == their_in.shape == (320000,)
        assert np.abs(our_in - their_in).max() <= 2 / 32768, name
        # 3. Cnn14 class probabilities: the two networks on the same input, then ours on our own decode (the
        # calibrated class layer amplifies the ≤ 1 LSB decoder difference)
        their_clipwise = extractor.model.inference(their_in[None])[0][0]
        np.testing.assert_allclose(panns.run_cnn14(ours_net, their_in[None])["clipwise_output"][0], their_clipwise,
                                   atol=2e-4, err_msg=name)
        our_clipwise = ours.features(clip, item)
        np.testing.assert_allclose(our_clipwise, their_clipwise, atol=2e-4, err_msg=name)
        theirs_p.append(extractor(wav).squeeze().numpy())
        ours_f.append(our_clipwise)
        corr_f.append(corrected.features(clip, item))
        items.append(item)
        # non-vacuity of stages 1–2: the corrected decode is not the toolkit's (level, length or resampler)
        corr_in = corrected._audio(clip)
        assert np.abs(corr_in - their_in).max() > 1e-3, name
    # 4. IS over the set
    their_is = float(tk_is.calculate_inception_score(np.vstack(theirs_p)))
    our_is = ours.compute(ours_f, items).values["is"]
    assert abs(our_is - their_is) <= 1e-4, (our_is, their_is)  # measured: 5e-7
    corr_is = corrected.compute(corr_f, items).values["is_corrected"]
    assert their_is > 1.1, their_is  # the calibrated network tells the clips apart (measured 1.1202)
    assert abs(corr_is - their_is) > 2e-4, (corr_is, their_is)  # the decode matters at this tolerance (3.5e-4)


def test_clap_mova_decode_matches_clap_single_score(clips, toolkit_audio, models, monkeypatch):  # noqa: F811
    """Staged against the toolkit's ``extract_audio_from_video_memory`` + ``clap_single_score`` with LAION's own
    CLAP_Module (same seeded random weights): decoded samples → peak-normalised int16 input → audio embedding →
    cosine with the text embedding of the full prompt (≤ 1e-4)."""
    import pyloudnorm as pyln
    import torch

    from mova_eval.metrics import clap
    from mova_eval.metrics.inception_score import MOVA_PRESET
    from mova_eval.spec import SuiteItem

    ref, enc, _ = models
    _, tk = toolkit_audio
    monkeypatch.setattr(clap, "load_encoder", lambda *a, **k: enc)
    ours, corrected = clap.ClapMova({}), clap.ClapMova({"decode": "corrected"})
    ours.load()
    corrected.load()
    prompt = "A man speaks slowly in a quiet room while a small bell rings twice behind him. " * 4  # > 77 tokens
    text_emb = tk.precompute_text_embeddings(ref, [prompt])[prompt]
    theirs, gaps, corrected_gaps = {}, [], []
    for name, path in clips.items():
        item = SuiteItem(id=name, prompt=prompt, category="set1")
        clip = media.decode(path)
        their_audio = tk.extract_audio_from_video_memory(str(path), target_sr=tk.sr)
        # 1. decoded samples
        our_audio = clip.audio_for(MOVA_PRESET)
        assert our_audio.shape == their_audio.shape, name
        assert np.abs(our_audio - their_audio).max() <= 2 / 32768, name
        # 2. the model's input: peak −1 dBFS, int16 round-trip (1 LSB of decode difference × the peak gain)
        their_in = tk.int16_to_float32(tk.float32_to_int16(pyln.normalize.peak(their_audio, -1.0)))
        our_in = clap.int16_roundtrip(clap.peak_normalize(our_audio, -1.0))
        assert our_in.shape == their_in.shape, name
        assert np.abs(our_in - their_in).max() <= 16 / 32767, name
        # 3. audio embedding
        with torch.no_grad():
            their_emb = ref.get_audio_embedding_from_data(x=torch.from_numpy(their_in)[None], use_tensor=True)[0]
        our_emb, _ = enc.audio_embedding(our_in)
        np.testing.assert_allclose(our_emb, their_emb.numpy(), atol=1e-4, err_msg=name)
        # 4. the score
        theirs[name] = tk.clap_single_score(ref, text_emb, their_audio, tk.sr)
        gaps.append(abs(ours.score(clip, item).values["clap_mova"] - theirs[name]))
        corrected_gaps.append(abs(corrected.score(clip, item).values["clap_mova_corrected"] - theirs[name]))
    assert max(gaps) <= 1e-4, gaps
    # non-vacuity: the clips score differently, and the corrected decode is measurably not the toolkit's
    assert np.ptp(list(theirs.values())) > 1e-3, theirs
    assert max(corrected_gaps) > 10 * max(max(gaps), 1e-6), (corrected_gaps, gaps)
