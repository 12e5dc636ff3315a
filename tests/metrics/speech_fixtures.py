"""Real speech clips for the speech-metric tests: espeak-ng renders known text, PyAV muxes it with simple frames.

Nothing here is mocked: the clips go through mova_eval.media.encode (H.264 + AAC) and media.decode, as a
generated clip would.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media

SR = 48_000
FPS = 24
# two clearly different voices (environment.md §2.5: en-us vs en-us+f3 embed at cosine 0.65)
VOICE_A = "en-us"
VOICE_B = "en-us+f3"


def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    return exe


def speak(text: str, voice: str = VOICE_A, speed: int = 150, pitch: int | None = None) -> np.ndarray:
    """Mono float32 speech at 48 kHz for ``text`` (espeak-ng writes 22.05 kHz; soxr resamples)."""
    import soundfile as sf

    exe = need_espeak()
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "s.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-w", str(wav)]
        if pitch is not None:
            cmd += ["-p", str(pitch)]
        subprocess.run(cmd + [text], check=True, capture_output=True)
        x, sr = sf.read(wav, dtype="float32")
    return media.resample_audio(x, sr, SR)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), dtype=np.float32)


def pad_to(x: np.ndarray, seconds: float) -> np.ndarray:
    n = int(round(seconds * SR))
    return np.pad(x, (0, max(0, n - x.size)))[:n] if x.size < n else x


def frames_for(seconds: float, size: tuple[int, int] = (64, 64), value: int = 90) -> np.ndarray:
    n = max(2, int(round(seconds * FPS)))
    return np.full((n, size[0], size[1], 3), value, dtype=np.uint8)


def mux(path: Path, audio: np.ndarray, frames: np.ndarray | None = None, fps: float = FPS) -> Path:
    """Write an mp4 (H.264 + AAC) and return its path; frames default to a flat grey picture."""
    if frames is None:
        frames = frames_for(audio.size / SR)
    return media.encode(path, frames, fps, audio, SR)


def clip_of(path: Path):
    return media.decode(path)


def impact_clip(path: Path, times: list[float], seconds: float = 4.0, audio_offset: float = 0.0,
                size: tuple[int, int] = (96, 128)) -> Path:
    """A textured picture that jumps 6 px at each impact time, with a click at the same instants
    (shifted by ``audio_offset`` seconds): the flow peaks and the audio onsets coincide when the offset is 0."""
    rng = np.random.default_rng(7)
    base = (rng.random((size[0] + 64, size[1] + 64)) * 255).astype(np.uint8)
    n = int(round(seconds * FPS))
    jump_frames = {int(round(t * FPS)) for t in times}
    frames, shift = [], 0
    for i in range(n):
        if i in jump_frames:
            shift += 6
        y = x = 16 + (shift % 32)
        g = base[y:y + size[0], x:x + size[1]]
        frames.append(np.repeat(g[..., None], 3, axis=2))
    audio = np.zeros(int(round(seconds * SR)), dtype=np.float32)
    click = (rng.standard_normal(int(0.03 * SR)) * np.exp(-np.linspace(0, 8, int(0.03 * SR)))).astype(np.float32) * 0.8
    for t in times:
        s = int(round((t + audio_offset) * SR))
        if 0 <= s < audio.size - click.size:
            audio[s:s + click.size] += click
    audio += (rng.standard_normal(audio.size) * 1e-3).astype(np.float32)
    return media.encode(path, np.stack(frames), FPS, audio, SR)
