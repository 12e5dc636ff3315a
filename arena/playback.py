"""Playback copies: every clip re-encoded the same way so that nothing but its content can tell the models apart.

One container and codec (MP4, H.264 yuv420p + AAC), audio at 48 kHz stereo normalised to −16 LUFS integrated
(ITU-R BS.1770 via pyloudnorm, the level TTS Arena uses) with the sample peak kept under −1 dBFS, and no metadata
from the source (the copy is muxed from decoded arrays, so titles, encoder strings or comments never carry over).
Durations, frame rates and resolutions are kept: changing them would alter the content being judged.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mova_eval import media
from mova_eval.errors import MediaError, MissingStreamError

TARGET_LUFS = -16.0
PEAK_DBFS = -1.0
SAMPLE_RATE = 48_000
GOLD_SHIFT_S = 0.5


def loudness(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS) of float [C, N] audio; -inf for silence or clips shorter than one 400 ms block."""
    import pyloudnorm

    if audio.shape[-1] < int(0.4 * sr) + 1:
        return -math.inf
    return float(pyloudnorm.Meter(sr).integrated_loudness(np.ascontiguousarray(audio.T, dtype=np.float64)))


def normalise(audio: np.ndarray, sr: int, target: float = TARGET_LUFS, peak_dbfs: float = PEAK_DBFS
              ) -> tuple[np.ndarray, float]:
    """Gain to ``target`` LUFS, then scale down if the sample peak would pass ``peak_dbfs``. Returns (audio, input
    loudness). Silence stays silence."""
    lin = loudness(audio, sr)
    out = audio.astype(np.float32, copy=True)
    if math.isfinite(lin):
        out *= np.float32(10 ** ((target - lin) / 20))
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    limit = 10 ** (peak_dbfs / 20)
    if peak > limit:
        out *= np.float32(limit / peak)
    return out, lin


def _stereo_48k(clip) -> np.ndarray:
    if not clip.has_audio:
        n = int(round(clip.duration * SAMPLE_RATE))
        return np.zeros((2, n), dtype=np.float32)
    a = media.resample_audio(np.asarray(clip.audio, dtype=np.float32), clip.sample_rate, SAMPLE_RATE)
    if a.shape[0] == 1:
        a = np.concatenate([a, a], axis=0)
    return a[:2]


def _even(video: np.ndarray) -> np.ndarray:
    h, w = video.shape[1:3]
    return video[:, : h - h % 2, : w - w % 2]


def make_copy(src: str | Path, dst: str | Path, *, audio_shift_s: float = 0.0) -> dict:
    """Write the playback copy of ``src`` to ``dst``; ``audio_shift_s`` > 0 delays the sound (gold 'bad' twins).

    Raises a MediaError naming the file when the source has no video or cannot be decoded.
    """
    clip = media.decode(src)
    if not clip.has_video:
        raise MissingStreamError(src, "video (arena clips need a picture)")
    audio = _stereo_48k(clip)
    if audio_shift_s:
        n = int(round(audio_shift_s * SAMPLE_RATE))
        audio = np.concatenate([np.zeros((audio.shape[0], n), dtype=np.float32), audio[:, : max(0, audio.shape[1] - n)]],
                               axis=1)
    audio, lin = normalise(audio, SAMPLE_RATE)
    video = _even(np.asarray(clip.video))
    if min(video.shape[1:3]) < 2:
        raise MediaError(src, "frame too small for a playback copy")
    out = media.encode(dst, video, clip.fps, audio, SAMPLE_RATE)
    return {"duration": float(clip.duration), "width": int(video.shape[2]), "height": int(video.shape[1]),
            "fps": float(clip.fps), "loudness_in": lin if math.isfinite(lin) else None,
            "source_hash": clip.content_hash, "playback_sha256": media.file_sha256(out)}
