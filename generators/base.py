"""The Generator contract (DESIGN.md, "Generator") and the base every model adapter builds on.

A generator turns :class:`~mova_eval.spec.GenRequest` s into clip files: ``load()`` once, then batched
``generate(list[GenRequest]) -> list[GenResult]``. The runner chooses each request's ``out_path``, caches clips by
the generator's :meth:`Generator.identity`, and records provenance. A request the generator cannot serve gets a
GenResult with ``error`` set — never an exception for the batch.

What a subclass declares, and what the base derives from it:

- ``Settings`` — a frozen dataclass of every ``generator.*`` key (:mod:`mova_eval.generators.settings`): its type
  and whether it changes the clip. The base parses the config into it (unknown keys and wrong types are a
  ConfigError naming ``generator.<key>``) and derives :meth:`Generator.identity` from it — the one rule for what
  identifies a generator's output: name + ``adapter_version`` + the output-affecting settings + the fingerprints
  of its models. Subclasses cannot override ``identity()``; they extend :meth:`Generator.fingerprints` only when
  something other than a checkpoint file identifies their model (the synthetic generator's TTS engine, a
  cascade's stages).
- ``availability(config) -> Availability`` (the metrics' type) — can it run here, without loading anything.
- ``validate(suite, seeds) -> list[Problem]`` — what `mova-eval validate` reports before any model loads.
- ``list_samples(suite) -> {item id: [seed, …]}`` — the samples that already exist per item, for ``seeds=all``.
  Only a generator that reads existing clips has them (directory); every other generator refuses with a
  ConfigError, since for a model "all" seeds is no finite list.

:class:`ModelGenerator` adds what every adapter of a real model shares: request planning against declared
:class:`Capabilities` (:class:`Plan`), per-item failure, checkpoint fingerprints, provenance, and ``load()`` that
never raises (a missing package or checkpoint becomes every request's error, with the fix). An adapter implements
``_load()`` and ``_make(req, plan)``; docs/adding_a_generator.md walks through one (``wan21.py``).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, GenerationError, MissingDependencyError, MovaEvalError, WeightsMissingError
from mova_eval.generators.settings import MODEL, GeneratorSettings, check_declared, output, parse, plain
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult, Suite

__all__ = ["Availability", "Capabilities", "Generator", "GeneratorSettings", "ModelGenerator", "ModelSettings",
           "Plan", "Problem", "fingerprint"]


@dataclass(frozen=True)
class Capabilities:
    modes: tuple[str, ...] = ("t2va",)  # "t2va" (text → video+audio), "it2va" (+ first frame)
    resolutions: tuple[tuple[int, int], ...] = ()  # (width, height); empty = any
    max_duration_s: float | None = None
    fps: tuple[float, ...] = ()  # empty = any
    makes_clips: bool = True  # False for generators that only find existing clips (directory)


@dataclass(frozen=True)
class Problem:
    """One thing `mova-eval validate` found. ``kind`` says what sort (``unavailable``: the generator cannot run
    here; ``unservable``: items it cannot make; the directory generator's ``missing`` / ``unused`` / ``unknown`` /
    ``bad file``; ``config``); ``items`` lists the suite items concerned (empty when it is about the whole run)."""

    kind: str
    message: str
    items: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (remote-job and worker records use it to recognise a request)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class Generator:
    """Base of every generator. Subclasses set ``name``, ``Settings`` (a GeneratorSettings dataclass),
    ``capabilities``, ``adapter_version`` (bump it when a code change changes the clips) and ``generate``."""

    name: ClassVar[str]
    Settings: ClassVar[type[GeneratorSettings]] = GeneratorSettings
    capabilities: ClassVar[Capabilities] = Capabilities()
    adapter_version: ClassVar[str] = "1"
    __abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.__abstract__ = cls.__dict__.get("__abstract__", False)
        if "identity" in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} overrides identity(); declare settings with output()/runtime()/"
                            "model() and, if needed, extend fingerprints() instead (one identity rule)")
        check_declared(cls.Settings)

    def __init__(self, config: Mapping[str, Any], device: str = "cpu", context: RunContext | None = None):
        self.settings = self.parse_settings(config)
        self.config: dict[str, Any] = self.settings.as_dict()  # every key, defaults filled in (read-only use)
        self.device = device
        #: the run's offline flag (hub downloads) and folders; the environment's outside a run
        self.context: RunContext = context if context is not None else RunContext.from_env(device=device)
        self._fingerprints: dict[str, str] = {}

    @classmethod
    def parse_settings(cls, config: Mapping[str, Any], prefix: str = "generator") -> Any:
        """The typed settings of ``config``; ConfigError names ``generator.<key>`` and the known keys."""
        return parse(cls.Settings, config, prefix=prefix, owner=f"generator {getattr(cls, 'name', cls.__name__)!r}")

    # ------------------------------------------------------------------ readiness
    @classmethod
    def availability(cls, config: Mapping[str, Any]) -> Availability:
        """Whether this generator can run here with ``config``, without loading any model."""
        try:
            settings = cls.parse_settings(config)
        except ConfigError as e:
            return Availability(False, str(e))
        return cls._availability(settings)

    @classmethod
    def _availability(cls, settings: Any) -> Availability:
        """Subclass hook of :meth:`availability`, given the parsed settings."""
        return Availability(True)

    @classmethod
    def default_label(cls, config: Mapping[str, Any]) -> tuple[str, str] | None:
        """(label, why) when ``generator.label`` is unset and this generator knows a better model label than its
        registry name (directory: the clip folder's name); None keeps the registry name."""
        return None

    def validate(self, suite: Suite, seeds: Sequence[int] | str | None = None, *, decode: bool | None = None,
                 audio_track: int | None = None) -> list[Problem]:
        """Problems `mova-eval validate` reports for running ``suite`` with ``seeds`` (default [0]; ``"all"`` for
        ``seeds=all``, which the caller checks with :meth:`list_samples`) through this generator, before any model
        loads. The default reports an unavailable generator. ``decode`` and ``audio_track`` concern generators that
        read existing files (directory: decode each one as a run would)."""
        av = self.availability(self.config)
        if not av.ok:
            return [Problem("unavailable", f"{self.name}: {av.reason}" + (f" (fix: {av.command})" if av.command else ""))]
        return []

    def list_samples(self, suite: Suite) -> dict[str, list[int]]:
        """For ``seeds=all``: item id → the seeds whose requests pick each sample that exists for that item (an item
        with none may be left out or given []). The base has no samples to list: a generator that makes clips can
        make any number, so "all" is refused with a ConfigError that says what to give instead."""
        raise ConfigError(f"seeds=all scores every clip that already exists for an item, which only a generator that "
                          f"reads existing clips can list (generator=directory); generator {self.name!r} makes "
                          f"clips: give the seeds to make, e.g. seeds=[0,1,2]")

    def bind_suite(self, suite: Suite) -> None:
        """Receive the run's whole suite before any ``generate()`` call. Lets a generator resolve references
        between items (synthetic's ``swap_audio_with``) and match files against every item id (directory),
        independently of which requests a resumed run still has to make."""
        self.suite = suite

    def load(self) -> None:
        """Import heavy dependencies and load the model once."""

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """What makes this generator's output what it is: part of the clip cache key and of every clip's
        provenance. Derived here, once, for every generator (subclasses cannot override it)."""
        return {"name": self.name, "adapter_version": self.adapter_version, "settings": self.settings.output_values(),
                "models": self.fingerprints()}

    def fingerprints(self) -> dict[str, Any]:
        """What identifies each model the generator runs: for every :func:`model` setting, the fingerprint that
        ``record_fingerprint`` stored when ``load()`` saw its files, else the configured value."""
        return {k: self._fingerprints.get(k, plain(getattr(self.settings, k)))
                for k in self.Settings.fields_by_role(MODEL)}

    def record_fingerprint(self, key: str, path: str | Path) -> str:
        """Fingerprint the files behind the model setting ``key`` (call it in ``load()``)."""
        from mova_eval.generators.checkpoints import checkpoint_fingerprint

        if key not in self.Settings.fields_by_role(MODEL):
            raise TypeError(f"{type(self).__name__}: {key!r} is not a model() setting")
        fp = checkpoint_fingerprint(path)
        self._fingerprints[key] = fp
        return fp

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release models/connections."""


# ---------------------------------------------------------------------------------------------- model adapters


@dataclass(frozen=True)
class ModelSettings(GeneratorSettings):
    """Keys every model adapter's planning reads (``ModelGenerator.plan``)."""

    width: int | None = output(None, "clip width in pixels (a request's own size wins)")
    height: int | None = output(None, "clip height in pixels")
    fps: float | None = output(None, "frames per second (default: the model's first supported rate, else 24)")
    num_frames: int | None = output(None, "frames per clip (or set duration)")
    duration: float | None = output(None, "seconds per clip, when num_frames is not set")
    seed: int = output(0, "sampler seed = seed + the run's seed")
    ignore_first_frame: bool = output(False, "true: text-to-video+audio even for items with a first frame (this "
                                             "switches the mode, so it changes the clip)")


@dataclass(frozen=True)
class Plan:
    """The exact settings one clip is made with (after config + request + capability resolution)."""

    mode: str               # "t2va" or "it2va"
    width: int
    height: int
    fps: float
    num_frames: int
    seed: int
    prompt: str             # exactly what the model receives
    first_frame: str | None

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


class ModelGenerator(Generator):
    """Base of the adapters that run or call a model. Subclasses set ``name``, ``Settings`` (deriving from
    :class:`ModelSettings`), ``capabilities``, ``adapter_version`` and ``requires``, and implement ``_load`` and
    ``_make``; ``format_prompt`` adapts Verse-Bench text to the model's prompt format; ``plan`` may add the model's
    own shape rules (call ``super().plan``)."""

    __abstract__ = True
    Settings: ClassVar[type[ModelSettings]] = ModelSettings
    # (package import name, install command) checked by availability() without importing heavy modules
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, config: Mapping[str, Any], device: str = "cpu", context: RunContext | None = None):
        super().__init__(config, device, context)
        self._load_error: str | None = None
        self._loaded = False

    # ------------------------------------------------------------------ readiness
    @classmethod
    def _availability(cls, settings: Any) -> Availability:
        import importlib.util

        for module, command in cls.requires:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                return Availability(False, f"the package {module!r} is not installed", command)
        return cls._more_availability(settings)

    @classmethod
    def _more_availability(cls, settings: Any) -> Availability:
        """Beyond ``requires``: weights on disk, a server URL, an API key… (typed settings in, no loading)."""
        return Availability(True)

    def load(self) -> None:
        if self._loaded:
            return
        try:
            self._load()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 — every request then carries the reason
            command = e.command if isinstance(e, (MissingDependencyError, WeightsMissingError)) else None
            self._load_error = f"{type(e).__name__}: {e}" + (f" (fix: {command})" if command and command not in str(e) else "")
        self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ provenance helpers
    @property
    def _ckpt_hash(self) -> str | None:
        """The fingerprint of the main checkpoint (the first recorded), for provenance."""
        return next(iter(self._fingerprints.values()), None)

    def checkpoint_ref(self) -> str | None:
        """The model as users name it (a Hugging Face id, a path, an API model name), for provenance."""
        return None

    def package_version(self) -> str | None:
        return None

    # ------------------------------------------------------------------ planning
    def format_prompt(self, req: GenRequest) -> str:
        """The prompt this model receives; default: the suite prompt unchanged."""
        return req.item.prompt

    def seed_for(self, req: GenRequest) -> int:
        """Sampler seed = ``generator.seed`` (the model's documented default, e.g. 42 for MOVA) + the run's seed."""
        return int(self.settings.seed or 0) + int(req.seed)

    def plan(self, req: GenRequest) -> Plan:
        """Resolve settings and check them against the declared capabilities; GenerationError says why not."""
        s, caps = self.settings, self.capabilities
        fps = float(req.fps or s.fps or (caps.fps[0] if caps.fps else 24.0))
        width = int(req.width or s.width or 0)
        height = int(req.height or s.height or 0)
        if s.num_frames:
            num_frames = int(s.num_frames)
        elif req.duration_s or s.duration:
            num_frames = int(round(float(req.duration_s or s.duration) * fps))
        else:
            raise ConfigError(f"generator {self.name}: set num_frames or duration")
        first = req.first_frame or req.item.first_frame
        if first and s.ignore_first_frame:
            first = None
        mode = "it2va" if first else "t2va"
        if mode not in caps.modes:
            if mode == "it2va":
                raise GenerationError(
                    f"{self.name} is text-to-video+audio only (T2VA) but item {req.item.id!r} has a first frame "
                    f"({first}); run a suite without first frames or set generator.ignore_first_frame=true")
            raise GenerationError(f"{self.name} needs a first-frame image (IT2VA only) and item {req.item.id!r} has none")
        if first and not Path(first).is_file():
            raise GenerationError(f"first-frame image {first} for item {req.item.id!r} does not exist")
        if caps.resolutions and (width, height) not in caps.resolutions:
            allowed = ", ".join(f"{w}x{h}" for w, h in caps.resolutions)
            raise GenerationError(f"{self.name} cannot generate {width}x{height}; it supports {allowed}")
        if caps.fps and not any(math.isclose(fps, f) for f in caps.fps):
            raise GenerationError(f"{self.name} cannot generate at {fps:g} fps; it supports {list(caps.fps)}")
        if caps.max_duration_s is not None and num_frames / fps > caps.max_duration_s + 1e-6:
            raise GenerationError(f"{self.name} generates at most {caps.max_duration_s:g} s; asked for "
                                  f"{num_frames / fps:.2f} s ({num_frames} frames at {fps:g} fps)")
        return Plan(mode=mode, width=width, height=height, fps=fps, num_frames=num_frames, seed=self.seed_for(req),
                    prompt=self.format_prompt(req), first_frame=first)

    def validate(self, suite: Suite, seeds: Sequence[int] | str | None = None, *, decode: bool | None = None,
                 audio_track: int | None = None) -> list[Problem]:
        """The base's problems plus every item :meth:`plan` refuses (grouped by reason, with the item ids). Plans
        do not depend on the seed, so one request per item is planned."""
        problems = super().validate(suite, seeds)
        seed = int(seeds[0]) if seeds and not isinstance(seeds, str) else 0
        s = self.settings
        by_reason: dict[str, list[str]] = {}
        for item in suite.items:
            req = GenRequest(f"{item.id}#s{seed}", item, seed, duration_s=s.duration, fps=s.fps, width=s.width,
                             height=s.height, first_frame=item.first_frame)
            try:
                self.plan(req)
            except MovaEvalError as e:
                by_reason.setdefault(re.sub(r"item '[^']*'", "item …", str(e)), []).append(item.id)
        for msg, ids in by_reason.items():
            n = len(ids)
            problems.append(Problem("unservable", f"{self.name}: {msg} ({n} item{'s' if n > 1 else ''})", tuple(ids)))
        return problems

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        return [self._one(r) for r in requests]

    def _one(self, req: GenRequest) -> GenResult:
        if self._load_error:
            return GenResult(req.request_id, None, f"{self.name} is not available: {self._load_error}")
        try:
            plan = self.plan(req)
        except MovaEvalError as e:
            return GenResult(req.request_id, None, f"{type(e).__name__}: {e}")
        from mova_eval.generators._remote import redact

        gpu = _GpuPeak()
        t0 = time.perf_counter()
        try:
            extra = self._make(req, plan) or {}
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one clip failing must not stop the batch
            return GenResult(req.request_id, None, f"{type(e).__name__}: {redact(str(e))}",
                             self.provenance(req, plan, time.perf_counter() - t0, gpu.peak_mb()))
        prov = self.provenance(req, plan, time.perf_counter() - t0, gpu.peak_mb())
        prov.update(extra)
        return GenResult(req.request_id, str(req.out_path), None, prov)

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any] | None:
        """Write the clip for ``plan`` to ``req.out_path``; return extra provenance (remote ids, cost…)."""
        raise NotImplementedError

    def provenance(self, req: GenRequest, plan: Plan, wall: float, peak_mb: float | None) -> dict[str, Any]:
        from mova_eval.generators.checkpoints import sha256_file

        p = {"generator": self.name, "adapter_version": self.adapter_version, "package_version": self.package_version(),
             "model": self.checkpoint_ref(), "checkpoint_hash": self._ckpt_hash, "models": self.fingerprints(),
             "sampler": self.settings.output_values(), "seed": plan.seed, "run_seed": req.seed, "wall_time_s": round(wall, 3),
             "peak_gpu_memory_mb": peak_mb, **{k: v for k, v in asdict(plan).items() if k != "seed"},
             "prompt_sent": plan.prompt}
        if plan.first_frame:
            p["first_frame_sha256"] = sha256_file(plan.first_frame)
        return p


class _GpuPeak:
    """Peak CUDA memory over one clip, when torch with CUDA is already imported; None otherwise (not measurable)."""

    def __init__(self):
        import sys

        self.torch = sys.modules.get("torch")
        self.ok = bool(self.torch is not None and self.torch.cuda.is_available())
        if self.ok:
            self.torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float | None:
        if not self.ok:
            return None
        return round(self.torch.cuda.max_memory_allocated() / 2**20, 1)

