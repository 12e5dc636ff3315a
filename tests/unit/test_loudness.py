import math

import numpy as np
import pytest

from mova_eval.errors import MediaError
from mova_eval.metrics.loudness import LoudnessMetric
from mova_eval.spec import Clip, SuiteItem

ITEM = SuiteItem(id="x", category="c", prompt="p")


def _clip(audio, sr=48_000):
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    return Clip(path="mem.wav", content_hash="h", video=None, fps=None, audio=audio, sample_rate=sr,
                duration=audio.shape[1] / sr)


def _sine(amp, seconds=3.0, sr=48_000, f=997.0):
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * f * t)


def test_full_scale_997hz_sine_reads_minus_3_01_lufs():
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel measures -3.01 LKFS (K-weighting gain ~0 dB there)
    s = LoudnessMetric().score(_clip(_sine(1.0)), ITEM)
    assert s.values["lufs"] == pytest.approx(-3.01, abs=0.05)
    assert s.values["rms_dbfs"] == pytest.approx(20 * math.log10(1 / math.sqrt(2)), abs=0.01)


def test_level_scales_in_decibels_and_resampling_keeps_it():
    quiet = LoudnessMetric().score(_clip(_sine(0.1, sr=16_000, f=500), sr=16_000), ITEM)
    loud = LoudnessMetric().score(_clip(_sine(1.0, sr=16_000, f=500), sr=16_000), ITEM)
    assert loud.values["lufs"] - quiet.values["lufs"] == pytest.approx(20.0, abs=0.05)


def test_stereo_mova_mixdown_vs_bs1770_channel_sum():
    stereo = np.stack([_sine(0.5), _sine(0.5)])
    mova = LoudnessMetric({"mode": "mova"}).score(_clip(stereo), ITEM).values["lufs"]
    bs = LoudnessMetric({"mode": "bs1770"}).score(_clip(stereo), ITEM).values["lufs_bs1770"]  # its own name
    assert bs - mova == pytest.approx(3.01, abs=0.05)  # two channels' energies add; a mixdown does not


def test_silence_is_nan_with_a_reason_not_zero_or_inf():
    s = LoudnessMetric().score(_clip(np.zeros(48_000 * 2)), ITEM)
    assert math.isnan(s.values["lufs"]) and math.isnan(s.values["rms_dbfs"])
    assert "silent" in s.errors["lufs"] and "silence" in s.errors["rms_dbfs"]


def test_audio_shorter_than_a_block_is_an_error():
    with pytest.raises(MediaError, match="400 ms"):
        LoudnessMetric().score(_clip(_sine(0.5, seconds=0.2)), ITEM)


def test_unknown_mode_is_refused():
    from mova_eval.errors import ConfigError

    with pytest.raises(ConfigError, match=r"metrics\.options\.loudness\.mode must be 'mova' or 'bs1770', got 'ebu'"):
        LoudnessMetric({"mode": "ebu"})
    with pytest.raises(ConfigError, match=r"metrics\.options\.loudness\.mdoe: unknown option; known: mode"):
        LoudnessMetric({"mdoe": "mova"})
