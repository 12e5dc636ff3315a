"""The MOVA decode presets against the MOVA toolkit's own scripts, run on the same generated clips.

Set ``MOVA_TOOLKIT_DIR`` to the ``evaluation/`` folder of an OpenMOSS/MOVA checkout (e.g. ``git archive HEAD
evaluation | tar -x``); the scripts are imported from there, never copied. Without it these tests skip with that
reason. The toolkit decodes with the ``ffmpeg`` binary, so the tests also need it on PATH.

Clips: speech-like harmonic signals (a gliding vowel with syllable envelope and noise) in AAC/MP4 as generators
write them, at several lengths (3–10 s: tiled and untiled DNSMOS), channel counts and sample rates.
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

    models = Path(os.environ["MOVA_TOOLKIT_DIR"]) / "metrics" / "dnsmos" / "DNSMOS"
    ref_scorer = tk.ComputeScore(str(models / "sig_bak_ovr.onnx"), str(models / "model_v8.onnx"), use_gpu=False)
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
