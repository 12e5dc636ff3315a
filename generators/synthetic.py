"""Deterministic procedural clips from prompt + seed: the default generator and the test bed for metric sanity.

Every clip is labelled synthetic (provenance ``synthetic: true`` and the container's ``comment`` tag) and is a
pure function of (item, seed, config): the random streams are seeded from the item fingerprint and the seed.
The decoded frames and samples are that pure function; the file's bytes are not quite: now and then (about one
encode in a hundred, only in a process that has already encoded clips) libx264 ends the first frame's slice with
different final bytes that decode to the very same picture. Caches are keyed by bytes, so such a clip is a cache
miss and is scored again, never a wrong score; tests compare two generations by their scores, not their hashes.

- Speech items: the speech text spoken by espeak-ng (English voice for ``en``, Mandarin ``cmn`` for ``zh``) over
  a drawn face whose mouth opening follows that voice's loudness. ``[S01] … [S02] …`` dialogues give each speaker
  a clearly different voice (a low male and a high female variant, …), place the turns one after another, and
  draw one face per speaker; only the face whose turn it is moves its mouth.
- Other items: visual events (a ball hitting the ground, or a bar lighting up for music prompts) with a flash,
  and an audio onset (impact or note) starting on exactly the first sample of the event frame.
- Controlled defects (``generator.defects``), applied to every clip of the run, in this order:
  ``swap_audio_with: ITEM_ID`` (the audio of that item, same seed), ``audio_offset_ms: X`` (positive = audio
  late; the track keeps its length, the gap filled with the clip's own room tone), ``noise_snr_db: X`` (white
  noise at that SNR against the whole track), ``silence: true`` (all-zero audio, the stream is kept),
  ``frozen: true`` (every frame is the first frame). ``mova-eval sanity`` applies a larger battery
  (:mod:`mova_eval.defects`) to any clip.

Without a TTS engine, speech items fail one by one with the install command; they are never rendered as tones
unless ``tts: none`` asks for that explicitly (then the provenance says "tones, not speech").
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, GenerationError
from mova_eval.generators.base import Capabilities, Generator, GeneratorSettings
from mova_eval.generators.settings import output
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult, SuiteItem

VERSION = "3"
LABEL = "mova-eval synthetic test clip (procedural, not a model output)"
TTS_INSTALL = "pip install espeakng-loader   (or on Debian/Ubuntu: apt-get install -y espeak-ng)"
DEFECTS = {"audio_offset_ms": (int, float), "swap_audio_with": (str,), "silence": (bool,),
           "noise_snr_db": (int, float), "frozen": (bool,)}
_MUSIC_WORDS = re.compile(r"\b(music|melod\w*|piano|guitar|violin|song|sing\w*|chord\w*|drum\w*|flute|band|"
                          r"orchestra\w*|tune|notes?)\b|音乐|钢琴|吉他|歌", re.I)
_FEMALE_WORDS = re.compile(r"\b(she|her|woman|women|girl|lady|mother|mom|female|grandmother|wife|sister|"
                           r"daughter|queen|actress|waitress)\b|女|她|妈|姐|妹", re.I)
_MALE_WORDS = re.compile(r"\b(he|his|him|man|men|boy|gentleman|father|dad|male|grandfather|husband|brother|"
                         r"son|king|actor|waiter|fisherman)\b|男|他|爸|哥|弟", re.I)


# ----------------------------------------------------------------------------------------------- TTS


class TTSUnavailable(GenerationError):
    def __init__(self, reason: str):
        self.command = TTS_INSTALL
        super().__init__(f"speech items need the espeak-ng TTS, which is not usable here ({reason}). "
                         f"Install it with: {TTS_INSTALL}")


class Espeak:
    """espeak-ng through its C library (the ``espeakng-loader`` wheel), else the Debian ``espeak-ng`` program.

    Each utterance is synthesized in a fresh process (``_espeak_worker`` for the library), because the library
    carries state from one utterance to the next; so the audio is a function of (text, voice, rate, pitch) and
    the engine version alone, and calls may run in parallel.
    """

    _lock = threading.Lock()
    _instance: "Espeak | None" = None

    def __init__(self, only: str | None = None) -> None:
        """``only``: "library" or "program" to use just that route (tests); default: library, else program."""
        self.backend: str | None = None
        self.version = ""
        self.why_not = ""
        self._exe: str | None = None
        try:
            if only == "program":
                raise RuntimeError("not tried")
            self.version = self._run_worker({"info": True}).decode().strip()
            self.backend = "library"
        except Exception as e:  # noqa: BLE001 — any failure means "try the program"
            lib_error = f"espeakng-loader: {type(e).__name__}: {e}"
            self._exe = shutil.which("espeak-ng") if only != "library" else None
            if self._exe:
                r = subprocess.run([self._exe, "--version"], capture_output=True, text=True, timeout=30)
                m = re.search(r"(\d+\.\d+(?:\.\d+)?)", r.stdout)
                self.version = m.group(1) if m else "?"
                self.backend = "program"
            else:
                self.why_not = f"{lib_error}; no espeak-ng program on PATH"

    @classmethod
    def get(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def available(self) -> bool:
        return self.backend is not None

    def describe(self) -> str:
        return f"espeak-ng {self.version} ({self.backend})" if self.available else f"unavailable: {self.why_not}"

    @staticmethod
    def _run_worker(request: dict) -> bytes:
        import json
        import sys

        r = subprocess.run([sys.executable, "-m", "mova_eval.generators._espeak_worker"],
                           input=json.dumps(request).encode(), capture_output=True, timeout=120)
        if r.returncode != 0:
            lines = r.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"espeak-ng worker exited with status {r.returncode}")
        return r.stdout

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        """(float32 mono samples, sample rate)."""
        if not self.available:
            raise TTSUnavailable(self.why_not)
        if self.backend == "library":
            try:
                out = self._run_worker({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)})
            except RuntimeError as e:
                raise GenerationError(f"espeak-ng failed on {text[:40]!r}: {e}") from e
            sr = int.from_bytes(out[:4], "little")
            return np.frombuffer(out[4:], dtype="<i2").astype(np.float32) / 32768.0, sr
        return self._synth_program(text, voice, rate, pitch)

    def _synth_program(self, text, voice, rate, pitch) -> tuple[np.ndarray, int]:
        import soundfile as sf

        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "speech.wav"
            r = subprocess.run([self._exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "-a", "100",
                                "-w", str(wav), "--stdin"], input=text.encode("utf-8"), capture_output=True,
                               timeout=120)
            if r.returncode != 0 or not wav.is_file():
                raise GenerationError(f"espeak-ng failed on {text[:40]!r}: {r.stderr.decode(errors='replace')}")
            x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        return x.mean(axis=1), int(sr)


@dataclass(frozen=True)
class Voice:
    name: str   # espeak voice: language + variant
    pitch: int  # espeak pitch 0–99
    label: str


def _voices(language: str) -> list[Voice]:
    """Speaker voices in turn order: a low male, a high female, then two more distinct variants."""
    base = "cmn" if language == "zh" else "en-us"
    return [Voice(f"{base}+m3", 30, "male, low"), Voice(f"{base}+f4", 78, "female, high"),
            Voice(f"{base}+m7", 55, "male, mid"), Voice(f"{base}+f2", 62, "female, mid")]


# ----------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class RenderSpec:
    duration: float = 4.0
    fps: float = 24.0
    width: int = 320
    height: int = 240
    sample_rate: int = 16000
    tts: str = "espeak"

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    @property
    def n_samples(self) -> int:
        return int(round(self.n_frames / self.fps * self.sample_rate))

    def frame_sample(self, frame: int) -> int:
        """First audio sample of a video frame: the two clocks meet there exactly (up to one sample)."""
        return int(round(frame * self.sample_rate / self.fps))


def _rng(item: SuiteItem, seed: int, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{item.fingerprint()}|{seed}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def speech_turns(item: SuiteItem) -> list[tuple[str, str]]:
    """[(speaker tag, text)] from ``[S01] … [S02] …`` text; untagged text is one turn of speaker ``S01``."""
    text = item.speech_text.strip()
    parts = re.split(r"\[(S\d+)\]", text)
    turns = []
    if parts[0].strip():
        turns.append(("S01", parts[0].strip()))
    for tag, said in zip(parts[1::2], parts[2::2]):
        if said.strip():
            turns.append((tag, " ".join(said.split())))
    return turns


def _single_voice(item: SuiteItem, rng: np.random.Generator) -> Voice:
    voices = _voices(item.language)
    hint = f"{item.speaker} {item.prompt}"
    female, male = len(_FEMALE_WORDS.findall(hint)), len(_MALE_WORDS.findall(hint))
    if female > male:
        return voices[1]
    if male > female:
        return voices[0]
    return voices[int(rng.integers(0, 2))]


@dataclass
class Speech:
    tracks: dict[str, np.ndarray]            # speaker tag → its voice alone, full clip length
    segments: list[dict[str, Any]]
    engine: str
    truncated: bool = False


def _trim(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    keep = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[keep[0] : keep[-1] + 1] if keep.size else x[:0]


def plan_speech(item: SuiteItem, seed: int, spec: RenderSpec) -> Speech:
    """Synthesize each turn, fit the turns into the clip (faster speech if needed) and place them in order."""
    import soxr

    rng = _rng(item, seed, "speech")
    turns = speech_turns(item)
    tags = list(dict.fromkeys(t for t, _ in turns))
    voices = _voices(item.language)
    if len(tags) == 1:
        cast = {tags[0]: _single_voice(item, rng)}
    else:
        cast = {tag: voices[i % len(voices)] for i, tag in enumerate(tags)}
    lead = float(rng.uniform(0.2, 0.45))
    gap = 0.25
    avail = spec.duration - lead - 0.2 - gap * (len(turns) - 1)
    n = spec.n_samples
    if spec.tts == "none":
        clips = [_tone_babble(said, cast[tag], spec.sample_rate, rng) for tag, said in turns]
        rate, engine = 0, "none (tts=none): syllable-rate tones, not speech"
    else:
        tts = Espeak.get()
        if not tts.available:
            raise TTSUnavailable(tts.why_not)
        base_rate = 150 if item.language == "zh" else 165

        def say(rate: int) -> list[np.ndarray]:
            def one(turn):
                tag, said = turn
                x, sr = tts.synth(said, cast[tag].name, rate, cast[tag].pitch)
                return soxr.resample(_trim(x), sr, spec.sample_rate, quality="VHQ").astype(np.float32)

            if len(turns) == 1:
                return [one(turns[0])]
            with ThreadPoolExecutor(min(4, len(turns))) as pool:  # each turn is its own process
                return list(pool.map(one, turns))

        rate = base_rate
        clips = say(rate)
        total = sum(len(c) for c in clips) / spec.sample_rate
        if total > avail > 0:
            rate = int(min(370, np.ceil(base_rate * total / avail * 1.05)))
            clips = say(rate)
        engine = tts.describe()
    speaker_tracks = {tag: np.zeros(n, np.float32) for tag in tags}
    segments = []
    pos = int(round(lead * spec.sample_rate))
    truncated = False
    for (tag, said), x in zip(turns, clips):
        if x.size:
            x = 0.1 * x / max(float(np.sqrt(np.mean(x**2))), 1e-9)  # every voice at about −20 dBFS RMS
        end = min(n, pos + len(x))
        if end - pos < len(x):
            truncated = True
        if end > pos:
            speaker_tracks[tag][pos:end] += x[: end - pos]
        v = cast[tag]
        segments.append({"speaker": tag, "voice": v.name, "voice_label": v.label, "pitch": v.pitch, "rate": rate,
                         "start_s": round(pos / spec.sample_rate, 4), "end_s": round(end / spec.sample_rate, 4),
                         "text": said})
        pos = end + int(round(gap * spec.sample_rate))
    return Speech(speaker_tracks, segments, engine, truncated)


def _tone_babble(text: str, voice: Voice, sr: int, rng: np.random.Generator) -> np.ndarray:
    """tts=none only: a voiced buzz with one bump per syllable-ish unit. Not speech, and labelled so."""
    units = max(1, len(re.findall(r"[aeiouy]+|[\u4e00-\u9fff]", text, re.I)))
    dur = units * 0.18
    t = np.arange(int(dur * sr)) / sr
    f0 = 90 + 1.6 * voice.pitch
    env = np.clip(np.sin(np.pi * (t * units / dur) % np.pi), 0, 1) ** 2
    buzz = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (env * buzz).astype(np.float32)


@dataclass
class Events:
    kind: str            # "impacts" or "notes"
    frames: list[int]    # video frames where an event happens; its audio starts at spec.frame_sample(frame)


def plan_events(item: SuiteItem, seed: int, spec: RenderSpec) -> Events:
    rng = _rng(item, seed, "events")
    text = " ".join([item.prompt, *item.audio_prompts])
    kind = "notes" if _MUSIC_WORDS.search(text) else "impacts"
    first, last = int(np.ceil(0.35 * spec.fps)), spec.n_frames - int(np.ceil(0.3 * spec.fps))
    span = last - first
    min_gap = max(2, int(round(0.3 * spec.fps)))
    k = int(np.clip(rng.integers(3, 7), 1, max(1, span // (2 * min_gap))))
    edges = np.linspace(first, last, k + 1)
    frames = []
    for i in range(k):  # one event per equal share of the clip, at least min_gap frames apart
        lo, hi = int(np.ceil(edges[i])) + min_gap // 2, int(np.floor(edges[i + 1])) - min_gap // 2
        frames.append(int(rng.integers(lo, max(lo + 1, hi + 1))))
    return Events(kind, sorted(set(f for f in frames if 0 <= f < spec.n_frames)))


def events_audio(ev: Events, item: SuiteItem, seed: int, spec: RenderSpec) -> np.ndarray:
    """One sound per event, starting on the event frame's first sample (no pre-roll, no attack ramp)."""
    rng = _rng(item, seed, "event-sounds")
    sr, n = spec.sample_rate, spec.n_samples
    out = np.zeros(n, np.float32)
    scale = [0, 2, 4, 7, 9, 12, 14, 16]
    root = float(rng.uniform(180, 320))
    starts = [spec.frame_sample(f) for f in ev.frames]
    for s0, nxt in zip(starts, starts[1:] + [n]):
        guard = int(0.02 * sr) if nxt < n else 0
        length = min(nxt - s0 - guard, int(0.6 * sr))  # each sound dies away before the next event starts
        if length <= 0:
            continue
        t = np.arange(length) / sr
        if ev.kind == "notes":
            f0 = root * 2 ** (scale[int(rng.integers(0, len(scale)))] / 12)
            x = sum(np.cos(2 * np.pi * f0 * h * t) * 0.6**h for h in range(1, 5)) * np.exp(-t / 0.35)
        else:
            modes = rng.uniform(150, 1400, size=3)
            decays = rng.uniform(0.04, 0.18, size=3)
            x = 0.5 * rng.standard_normal(length) * np.exp(-t / 0.008)
            x += sum(np.cos(2 * np.pi * fm * t) * np.exp(-t / d) for fm, d in zip(modes, decays))
        # cosines: the sound is at full strength on its very first sample, so the onset is the event frame
        fade = max(1, length // 5)
        x[-fade:] *= np.linspace(1, 0, fade)
        x = 0.45 * x / max(np.abs(x).max(), 1e-9)
        out[s0 : s0 + length] += x.astype(np.float32)
    return out


def room_tone(item: SuiteItem, seed: int, spec: RenderSpec, level: float) -> np.ndarray:
    """A quiet smoothed-noise floor, so a clip is never digital silence unless the silence defect asks for it."""
    rng = _rng(item, seed, "room")
    x = rng.standard_normal(spec.n_samples + 64)
    x = np.convolve(x, np.ones(8) / 8, mode="valid")[: spec.n_samples]
    return (level * x / max(float(np.sqrt(np.mean(x**2))), 1e-9)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- drawing


def _blend(img: np.ndarray, alpha: np.ndarray, color) -> None:
    a = alpha[..., None]
    img[:] = img * (1 - a) + np.asarray(color, np.float32) * a


def _ellipse(X, Y, cx, cy, rx, ry) -> np.ndarray:
    """Anti-aliased coverage (0–1) of an ellipse on pixel grids X, Y."""
    d = np.sqrt(((X - cx) / max(rx, 1e-3)) ** 2 + ((Y - cy) / max(ry, 1e-3)) ** 2)
    return np.clip((1 - d) * min(rx, ry) + 0.5, 0, 1).astype(np.float32)


def _background(spec: RenderSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = spec.height, spec.width
    top, bottom = rng.uniform(40, 150, 3), rng.uniform(20, 110, 3)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top * (1 - y) + bottom * y, (h, w, 3)).astype(np.float32).copy()
    X, Y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    img *= (1.0 - 0.25 * (((X - w / 2) / w) ** 2 + ((Y - h / 2) / h) ** 2))[..., None]  # vignette
    return img


@dataclass
class Face:
    cx: float
    cy: float
    a: float      # head half-width
    b: float      # head half-height
    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    shirt: np.ndarray
    blinks: list[int] = field(default_factory=list)

    @staticmethod
    def random(cx, cy, a, rng, n_frames, fps) -> "Face":
        tone = rng.uniform(0.45, 1.0)
        skin = np.array([235, 190, 160]) * tone + np.array([20, 10, 5]) * (1 - tone)
        hair = rng.choice([[40, 30, 25], [90, 60, 30], [20, 20, 20], [150, 110, 60], [110, 100, 95]])
        iris = rng.choice([[60, 90, 140], [70, 50, 30], [60, 110, 70], [40, 30, 25]])
        shirt = rng.uniform(30, 200, 3)
        blinks, t = [], rng.uniform(0.8, 2.0)
        while t * fps < n_frames:
            blinks.append(int(t * fps))
            t += rng.uniform(1.8, 3.5)
        return Face(cx, cy, a, 1.3 * a, skin.astype(np.float32), np.asarray(hair, np.float32),
                    np.asarray(iris, np.float32), shirt.astype(np.float32), blinks)

    def draw_static(self, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        X, Y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        cx, cy, a, b = self.cx, self.cy, self.a, self.b
        _blend(img, _ellipse(X, Y, cx, cy + 1.9 * b, 1.9 * a, 1.05 * b), self.shirt)          # shoulders
        _blend(img, _ellipse(X, Y, cx, cy + 0.95 * b, 0.42 * a, 0.5 * b), self.skin * 0.82)  # neck
        _blend(img, _ellipse(X, Y, cx, cy - 0.12 * b, 1.08 * a, 0.98 * b), self.hair)         # hair behind
        for s in (-1, 1):
            _blend(img, _ellipse(X, Y, cx + s * 0.97 * a, cy + 0.05 * b, 0.17 * a, 0.25 * b), self.skin * 0.9)
        head = _ellipse(X, Y, cx, cy, a, b)
        shade = 1.0 - 0.18 * ((X - cx) / a) ** 2 - 0.08 * np.clip((Y - cy) / b, 0, None)
        face_col = self.skin[None, None, :] * np.clip(shade, 0.6, 1.05)[..., None]
        img[:] = img * (1 - head[..., None]) + face_col * head[..., None]
        hairline = (Y < cy - 0.52 * b + 0.28 * b * ((X - cx) / a) ** 2) & (head > 0.5)            # fringe
        img[hairline] = self.hair
        for s in (-1, 1):
            _blend(img, _ellipse(X, Y, cx + s * 0.38 * a, cy - 0.34 * b, 0.22 * a, 0.04 * b), self.hair * 0.8)
        _blend(img, _ellipse(X, Y, cx, cy + 0.2 * b, 0.13 * a, 0.05 * b), self.skin * 0.7)      # nose shadow
        _blend(img, _ellipse(X, Y, cx, cy + 0.1 * b, 0.06 * a, 0.16 * b), self.skin * 0.92)     # nose bridge

    def draw_eyes(self, canvas: "_Frame", frame: int) -> None:
        closed = any(0 <= frame - f < 3 for f in self.blinks)
        cx, cy, a, b = self.cx, self.cy, self.a, self.b
        for s in (-1, 1):
            ex, ey = cx + s * 0.38 * a, cy - 0.14 * b
            with canvas.window(ex, ey, 0.26 * a, 0.14 * b) as (X, Y, sub):
                self._eye(X, Y, sub, ex, ey, closed)

    def _eye(self, X, Y, sub, ex, ey, closed: bool) -> None:
        a, b = self.a, self.b
        if closed:
            _blend(sub, _ellipse(X, Y, ex, ey, 0.2 * a, 0.09 * b), self.skin * 0.95)
            _blend(sub, _ellipse(X, Y, ex, ey + 0.02 * b, 0.2 * a, 0.012 * b + 0.6), self.hair * 0.6)
        else:
            _blend(sub, _ellipse(X, Y, ex, ey, 0.2 * a, 0.09 * b), (245, 245, 240))
            _blend(sub, _ellipse(X, Y, ex, ey, 0.085 * a, 0.085 * a), self.iris)
            _blend(sub, _ellipse(X, Y, ex, ey, 0.04 * a, 0.04 * a), (15, 15, 15))
            _blend(sub, _ellipse(X, Y, ex + 0.03 * a, ey - 0.03 * a, 0.015 * a, 0.015 * a), (250, 250, 250))

    def draw_mouth(self, canvas: "_Frame", openness: float) -> None:
        cx, my, a, b = self.cx, self.cy + 0.5 * self.b, self.a, self.b
        with canvas.window(cx, my, 0.45 * a, 0.3 * b) as (X, Y, sub):
            self._mouth(X, Y, sub, cx, my, openness)

    def _mouth(self, X, Y, sub, cx, my, openness: float) -> None:
        a, b = self.a, self.b
        lips = self.skin * np.array([0.85, 0.55, 0.55], np.float32)
        _blend(sub, _ellipse(X, Y, cx, my, 0.34 * a, 0.045 * b + openness * 0.13 * b), lips)
        if openness > 0.04:
            inner_h = openness * 0.11 * b
            _blend(sub, _ellipse(X, Y, cx, my, 0.27 * a, inner_h), (45, 15, 20))
            if openness > 0.25:  # upper teeth
                teeth = _ellipse(X, Y, cx, my - 0.7 * inner_h, 0.2 * a, 0.28 * inner_h)
                _blend(sub, teeth * _ellipse(X, Y, cx, my, 0.27 * a, inner_h), (235, 232, 220))
        else:
            _blend(sub, _ellipse(X, Y, cx, my, 0.3 * a, 0.008 * b + 0.6), lips * 0.6)  # closed-lip line


class _Frame:
    """One output frame: the still background plus parts drawn in small windows, so a frame costs the pixels that
    change rather than float math over the whole picture."""

    def __init__(self, still: np.ndarray):
        self.out = still.copy()

    @contextmanager
    def window(self, cx: float, cy: float, rx: float, ry: float):
        """Pixel grids and a float copy of the box around (cx, cy); written back (uint8) on exit."""
        h, w = self.out.shape[:2]
        x0, x1 = max(0, int(cx - rx) - 2), min(w, int(cx + rx) + 3)
        y0, y1 = max(0, int(cy - ry) - 2), min(h, int(cy + ry) + 3)
        X, Y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        sub = self.out[y0:y1, x0:x1].astype(np.float32)
        yield X, Y, sub
        self.out[y0:y1, x0:x1] = np.clip(sub, 0, 255).astype(np.uint8)


def mouth_openness(track: np.ndarray, spec: RenderSpec) -> np.ndarray:
    """Per-frame mouth opening (0–1) from the RMS of one speaker's voice during that frame."""
    n = spec.n_frames
    rms = np.zeros(n, np.float32)
    for k in range(n):
        seg = track[spec.frame_sample(k) : spec.frame_sample(k + 1)]
        rms[k] = float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0
    if rms.max() <= 0:
        return rms
    ref = float(np.percentile(rms[rms > 0.05 * rms.max()], 90))
    return np.clip(rms / max(ref, 1e-9), 0, 1) ** 0.7 * (rms > 0.03 * rms.max())


def draw_speech(item: SuiteItem, seed: int, spec: RenderSpec, speech: Speech) -> np.ndarray:
    rng = _rng(item, seed, "look")
    w, h = spec.width, spec.height
    base = _background(spec, rng)
    tags = list(speech.tracks)
    if len(tags) == 1:
        a = min(0.19 * w, 0.26 * h)
        faces = [Face.random(w / 2, 0.44 * h, a, rng, spec.n_frames, spec.fps)]
    else:
        m = len(tags)
        a = min(0.36 * w / m, 0.2 * h)
        faces = [Face.random(w * (i + 0.5) / m, 0.46 * h, a, rng, spec.n_frames, spec.fps) for i in range(m)]
    for f in faces:
        f.draw_static(base)
    opening = [mouth_openness(speech.tracks[t], spec) for t in tags]
    still = np.clip(base, 0, 255).astype(np.uint8)
    video = np.empty((spec.n_frames, h, w, 3), np.uint8)
    for k in range(spec.n_frames):
        canvas = _Frame(still)
        for face, op in zip(faces, opening):
            face.draw_eyes(canvas, k)
            face.draw_mouth(canvas, float(op[k]))
        video[k] = canvas.out
    return video


def draw_events(item: SuiteItem, seed: int, spec: RenderSpec, ev: Events) -> np.ndarray:
    """A ball that hits the ground on each event frame (impacts), or a bar that lights up (notes); both flash."""
    rng = _rng(item, seed, "look")
    w, h, n = spec.width, spec.height, spec.n_frames
    base = _background(spec, rng)
    ground = int(0.8 * h)
    base[ground:] = base[ground:] * 0.6 + rng.uniform(40, 110, 3) * 0.4
    r = 0.07 * h
    color = rng.uniform(120, 250, 3)
    bars = []
    if ev.kind == "notes":
        m = 7
        bars = [(int(w * (i + 0.5) / m), rng.uniform(60, 200, 3)) for i in range(m)]
        for x, c in bars:
            base[int(0.45 * h) : ground, x - int(w / m * 0.35) : x + int(w / m * 0.35)] = c * 0.5
    t = np.arange(n) / spec.fps
    impacts = [f / spec.fps for f in ev.frames]
    marks = [0.0 - (impacts[0] if impacts else spec.duration)] + impacts + [impacts[-1] + max(1.5 * spec.duration, 0.6)
                                                                             if impacts else 2 * spec.duration]
    still = np.clip(base, 0, 255).astype(np.uint8)
    video = np.empty((n, h, w, 3), np.uint8)
    lit = {f: j for j, f in enumerate(ev.frames)}
    bar_w = int(w / 7 * 0.35)
    for k in range(n):
        canvas = _Frame(still)
        if ev.kind == "impacts":
            i = int(np.searchsorted(marks, t[k], side="right")) - 1
            u = (t[k] - marks[i]) / (marks[i + 1] - marks[i])
            y = ground - r - (ground - r - 0.15 * h) * 4 * u * (1 - u)  # a parabola landing on each impact
            x = w * (0.2 + 0.6 * k / max(1, n - 1))
            squash = k in lit
            with canvas.window(x, y, 1.4 * r, 1.4 * r) as (X, Y, sub):
                _blend(sub, _ellipse(X, Y, x, y + (0.3 * r if squash else 0), r * (1.3 if squash else 1),
                                     r * (0.7 if squash else 1)), color)
                _blend(sub, _ellipse(X, Y, x - 0.3 * r, y - 0.3 * r, 0.25 * r, 0.25 * r),
                       np.minimum(color + 60, 255))
        else:
            for f, j in lit.items():
                if 0 <= k - f < 6:
                    x, c = bars[(int(f) * 7 + j) % len(bars)]
                    glow = 1.0 - (k - f) / 6
                    sl = canvas.out[int(0.45 * h) : ground, x - bar_w : x + bar_w]
                    sl[:] = np.clip(sl * (1 - glow) + np.minimum(c * 1.6, 255) * glow, 0, 255).astype(np.uint8)
        img = canvas.out
        for f in ev.frames:  # flash on the event frame, fading over two frames
            if 0 <= k - f < 3:
                g = (0.55, 0.25, 0.1)[k - f]
                img = np.clip(img + (255.0 - img) * g, 0, 255).astype(np.uint8)
        video[k] = img
    return video


# ----------------------------------------------------------------------------------------------- render


@dataclass
class Rendered:
    video: np.ndarray            # uint8 [T, H, W, 3]
    audio: np.ndarray            # float32 [N] in [-1, 1]
    provenance: dict[str, Any]


def clean_audio(item: SuiteItem, seed: int, spec: RenderSpec) -> tuple[np.ndarray, Speech | Events]:
    """The item's own soundtrack before defects, and the plan the picture follows."""
    if speech_turns(item):  # (speech text made only of speaker tags has nothing to say: an event clip)
        plan: Speech | Events = plan_speech(item, seed, spec)
        audio = sum(plan.tracks.values()) + room_tone(item, seed, spec, 0.003)
    else:
        plan = plan_events(item, seed, spec)
        audio = events_audio(plan, item, seed, spec) + room_tone(item, seed, spec, 0.006)
    return np.clip(audio, -1, 1).astype(np.float32), plan


def check_defects(defects: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``generator.defects`` before anything is generated (ConfigError names the bad key)."""
    d = dict(defects or {})
    unknown = sorted(set(d) - set(DEFECTS))
    if unknown:
        raise ConfigError(f"generator.defects: unknown key(s) {unknown}; known: {sorted(DEFECTS)}")
    for k, v in d.items():
        if v is None or not isinstance(v, DEFECTS[k]) or (k != "silence" and k != "frozen" and isinstance(v, bool)):
            kinds = "/".join(t.__name__ for t in DEFECTS[k])
            raise ConfigError(f"generator.defects.{k} must be {kinds}, got {v!r}")
    if d.get("silence") and "noise_snr_db" in d:
        raise ConfigError("generator.defects: silence and noise_snr_db exclude each other (an SNR needs a signal)")
    return {k: v for k, v in d.items() if v is not False}


def render(item: SuiteItem, seed: int, spec: RenderSpec, defects: Mapping[str, Any] | None = None,
           lookup: Callable[[str], SuiteItem | None] | None = None) -> Rendered:
    """Arrays and provenance of one synthetic clip (the generator only encodes them)."""
    defects = check_defects(defects)
    audio, plan = clean_audio(item, seed, spec)
    prov: dict[str, Any] = {"synthetic": True, "label": LABEL, "synthetic_version": VERSION, "item_id": item.id,
                            "seed": seed, "prompt": item.prompt}
    if isinstance(plan, Speech):
        video = draw_speech(item, seed, spec, plan)
        prov.update(kind="dialogue" if len(plan.tracks) > 1 else "speech", tts=plan.engine,
                    speech_segments=plan.segments, speech_truncated=plan.truncated)
    else:
        video = draw_events(item, seed, spec, plan)
        prov.update(kind=plan.kind, events=[{"frame": f, "time_s": round(f / spec.fps, 6),
                                              "sample": spec.frame_sample(f)} for f in plan.frames])
    applied: dict[str, Any] = {}
    if "swap_audio_with" in defects:
        other_id = defects["swap_audio_with"]
        other = lookup(other_id) if lookup else None
        if other is None:
            raise GenerationError(f"defect swap_audio_with: no item {other_id!r} in this suite")
        if other.id != item.id:
            audio, _ = clean_audio(other, seed, spec)
        prov["audio_source"] = other.id
        applied["swap_audio_with"] = other_id
    if defects.get("audio_offset_ms"):
        ms = float(defects["audio_offset_ms"])
        shift = int(round(ms * spec.sample_rate / 1000))
        from mova_eval.defects import ambience

        # The gap is the clip's own room tone (mova_eval.defects.ambience), not digital zeros, which moved
        # background metrics such as DNSMOS BAK along with the sync.
        s = min(abs(shift), len(audio))
        fill = ambience(audio[None], spec.sample_rate, s, _rng(item, seed, "offset-ambience"))[0][0]
        shifted = np.empty_like(audio)
        if shift >= 0:
            shifted[:s], shifted[s:] = fill, audio[: len(audio) - s]
        else:
            shifted[: len(audio) - s], shifted[len(audio) - s :] = audio[s:], fill
        audio = shifted
        applied["audio_offset_ms"] = ms
        prov["audio_offset_samples"] = shift
    if "noise_snr_db" in defects:
        snr = float(defects["noise_snr_db"])
        p_signal = float(np.mean(audio.astype(np.float64) ** 2))
        noise = _rng(item, seed, "noise-defect").standard_normal(len(audio))
        noise *= np.sqrt(p_signal / 10 ** (snr / 10) / np.mean(noise**2))  # exactly that power, so exactly that SNR
        audio = (audio + noise).astype(np.float32)
        peak = float(np.abs(audio).max())
        gain = 0.99 / peak if peak > 0.99 else 1.0  # scale, never clip: scaling keeps the SNR
        audio *= gain
        applied["noise_snr_db"] = snr
        prov["noise_gain"] = gain
    if defects.get("silence"):
        audio = np.zeros_like(audio)
        applied["silence"] = True
    if defects.get("frozen"):
        video = np.broadcast_to(video[:1], video.shape).copy()
        applied["frozen"] = True
    prov["defects"] = applied
    return Rendered(video, np.clip(audio, -1, 1).astype(np.float32), prov)


@dataclass(frozen=True)
class SyntheticSettings(GeneratorSettings):
    duration: float = output(4.0, "seconds")
    fps: float = output(24.0)
    width: int = output(320)
    height: int = output(240)
    sample_rate: int = output(16000)
    tts: Literal["espeak", "none"] = output("espeak", "espeak-ng voices for speech items; none: tones labelled "
                                                      "'not speech'")
    defects: dict[str, Any] = output({}, "audio_offset_ms, swap_audio_with, silence, noise_snr_db, frozen")


class SyntheticGenerator(Generator):
    name = "synthetic"
    adapter_version = VERSION
    Settings = SyntheticSettings
    capabilities = Capabilities(modes=("t2va",))

    def __init__(self, config: Mapping[str, Any], device: str = "cpu", context: RunContext | None = None):
        super().__init__(config, device, context)
        self.defects = check_defects(self.settings.defects)
        self._items: dict[str, SuiteItem] = {}
        self.spec_for(None)  # bad sizes or rates are configuration errors before anything is generated

    @classmethod
    def _availability(cls, s: SyntheticSettings) -> Availability:
        if s.tts == "none":
            return Availability(True)
        tts = Espeak.get()
        if not tts.available:
            return Availability(False, f"espeak-ng TTS not usable ({tts.why_not}): speech items will fail, others "
                                       "work", TTS_INSTALL)
        return Availability(True)

    def bind_suite(self, suite) -> None:
        super().bind_suite(suite)
        self._items.update({it.id: it for it in suite.items})

    def fingerprints(self) -> dict[str, Any]:
        """The TTS engine is this generator's model: its version and voice data change the speech audio."""
        return {"tts_engine": "none" if self.settings.tts == "none" else Espeak.get().describe()}

    def spec_for(self, req: GenRequest | None) -> RenderSpec:
        """Clip settings: the request's where it sets them, else the generator config's."""
        s = self.settings
        duration, fps = (req.duration_s, req.fps) if req else (None, None)
        width, height = (req.width, req.height) if req else (None, None)
        spec = RenderSpec(duration=float(duration or s.duration), fps=float(fps or s.fps), width=int(width or s.width),
                          height=int(height or s.height), sample_rate=s.sample_rate, tts=s.tts)
        if spec.width % 2 or spec.height % 2 or spec.width < 32 or spec.height < 32:
            raise ConfigError(f"synthetic clips need even sizes of at least 32 px (H.264), got {spec.width}x{spec.height}")
        if spec.duration < 1.0 or not 1 <= spec.fps <= 120 or not 8000 <= spec.sample_rate <= 96000:
            raise ConfigError(f"synthetic clips need duration ≥ 1 s, fps in [1, 120] and sample_rate in "
                              f"[8000, 96000]; got {spec.duration} s, {spec.fps} fps, {spec.sample_rate} Hz")
        return spec

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        for r in requests:  # a swap target may also be one of the requests (when no suite was bound)
            self._items.setdefault(r.item.id, r.item)
        return [self._one(r) for r in requests]

    def _one(self, req: GenRequest) -> GenResult:
        from mova_eval import media

        spec = self.spec_for(req)  # a bad size is a configuration error for the whole run
        try:
            out = render(req.item, req.seed, spec, self.defects, self._items.get)
            path = Path(req.out_path)
            media.encode(path, out.video, spec.fps, out.audio, spec.sample_rate,
                         metadata={"comment": LABEL, "title": f"{req.item.id} seed {req.seed}"})
        except Exception as e:  # noqa: BLE001 — one item failing must not stop the others
            return GenResult(req.request_id, None, f"{type(e).__name__}: {e}")
        return GenResult(req.request_id, str(path), None, out.provenance)
