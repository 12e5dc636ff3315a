"""What every model-backed adapter shares: request planning against declared capabilities, per-item failure,
provenance, checkpoint fingerprints, frame/audio conversion, and HTTP with retries (served and closed APIs).

An adapter subclasses :class:`ModelGenerator` and implements ``_load()`` and ``_make(req, plan)``. ``load()`` never
raises for a missing package or checkpoint: the reason (with the install/fetch command) is kept and every request
then fails with it, so `mova-eval run` records an actionable per-item error instead of aborting the run.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from mova_eval.errors import ConfigError, GenerationError, MissingDependencyError, MovaEvalError
from mova_eval.generators.base import Generator
from mova_eval.spec import GenRequest, GenResult

# Config keys that cannot change a clip (how/where it runs), left out of identity() and so of the cache key.
RUNTIME_KEYS = frozenset({
    "name", "batch_size", "offload", "offload_to_disk_path", "remove_video_dit", "gpus", "cp_size", "attn_type",
    "url", "timeout_s", "submit_timeout_s", "poll_interval_s", "poll_timeout_s", "download_timeout_s", "retries",
    "backoff_s", "concurrency", "requests_per_minute", "api_key_env", "price_per_second_usd", "torchrun",
    "pipeline_factory", "device", "dtype", "container", "repo_path", "python", "worker_timeout_s", "ignore_first_frame",
    "enable_cpu_offload", "checkpoint",
})


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
    """Base of the adapters that run or call a model. Subclasses set ``name``, ``capabilities``, ``adapter_version``
    and implement ``_load`` and ``_make``; ``format_prompt`` adapts Verse-Bench text to the model's prompt format."""

    __abstract__ = True
    adapter_version: str = "1"
    # (package import name, pip/install command) checked by availability() without importing heavy modules
    requires: tuple[tuple[str, str], ...] = ()

    def __init__(self, config: Mapping[str, Any], device: str = "cpu"):
        super().__init__(config, device)
        self._load_error: str | None = None
        self._loaded = False
        self._ckpt_hash: str | None = None

    # ------------------------------------------------------------------ readiness
    @classmethod
    def availability(cls, config: Mapping[str, Any]) -> tuple[bool, str, str | None]:
        import importlib.util

        for module, command in cls.requires:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                return False, f"the package {module!r} is not installed", command
        return cls._more_availability(config)

    @classmethod
    def _more_availability(cls, config: Mapping[str, Any]) -> tuple[bool, str, str | None]:
        return True, "", None

    def load(self) -> None:
        if self._loaded:
            return
        try:
            self._load()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 — every request then carries the reason
            command = getattr(e, "command", None)
            self._load_error = f"{type(e).__name__}: {e}" + (f" (fix: {command})" if command and command not in str(e) else "")
        self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ identity
    def sampler_settings(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(self.config.items()) if k not in RUNTIME_KEYS}

    def checkpoint_ref(self) -> str | None:
        return self.config.get("checkpoint") or self.config.get("model_id")

    def identity(self) -> dict[str, Any]:
        ident = {"name": self.name, "adapter_version": self.adapter_version, "model": self.checkpoint_ref(),
                 **self.sampler_settings()}
        if self._ckpt_hash:
            ident["checkpoint_hash"] = self._ckpt_hash
        return ident

    def package_version(self) -> str | None:
        return None

    # ------------------------------------------------------------------ planning
    def format_prompt(self, req: GenRequest) -> str:
        """The prompt this model receives; default: the suite prompt unchanged."""
        return req.item.prompt

    def seed_for(self, req: GenRequest) -> int:
        """Sampler seed = ``generator.seed`` (the model's documented default, e.g. 42 for MOVA) + the run's seed."""
        return int(self.config.get("seed", 0) or 0) + int(req.seed)

    def plan(self, req: GenRequest) -> Plan:
        """Resolve settings and check them against the declared capabilities; GenerationError says why not."""
        cfg, caps = self.config, self.capabilities
        fps = float(req.fps or cfg.get("fps") or (caps.fps[0] if caps.fps else 24.0))
        width = int(req.width or cfg.get("width") or 0)
        height = int(req.height or cfg.get("height") or 0)
        if cfg.get("num_frames"):
            num_frames = int(cfg["num_frames"])
        elif req.duration_s or cfg.get("duration"):
            num_frames = int(round(float(req.duration_s or cfg["duration"]) * fps))
        else:
            raise ConfigError(f"generator {self.name}: set num_frames or duration")
        first = req.first_frame or req.item.first_frame
        if first and cfg.get("ignore_first_frame"):
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

    def validate(self, suite) -> list[str]:
        """Problems `mova-eval validate` reports before any model loads: items this generator cannot serve."""
        from collections import Counter

        problems: Counter = Counter()
        for item in suite.items:
            req = GenRequest(f"{item.id}#s0", item, 0, duration_s=self.config.get("duration"), fps=self.config.get("fps"),
                             width=self.config.get("width"), height=self.config.get("height"), first_frame=item.first_frame)
            try:
                self.plan(req)
            except MovaEvalError as e:
                problems[re.sub(r"item '[^']*'", "item …", str(e))] += 1
        return [f"{self.name}: {msg} ({n} item{'s' if n > 1 else ''})" for msg, n in problems.items()]

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
        p = {"generator": self.name, "adapter_version": self.adapter_version, "package_version": self.package_version(),
             "model": self.checkpoint_ref(), "checkpoint_hash": self._ckpt_hash, "sampler": self.sampler_settings(),
             "seed": plan.seed, "run_seed": req.seed, "wall_time_s": round(wall, 3), "peak_gpu_memory_mb": peak_mb,
             **{k: v for k, v in asdict(plan).items() if k != "seed"}, "prompt_sent": plan.prompt}
        if plan.first_frame:
            p["first_frame_sha256"] = _sha256_file(plan.first_frame)
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


# ---------------------------------------------------------------------------------------------- checkpoints

_FP_CACHE: dict[tuple[str, float], str] = {}


def checkpoint_fingerprint(path: str | Path) -> str:
    """sha256 over every file's relative path, size and first/last MiB (hashing 100+ GB of shards in full on every
    run is not practical). A file is the same when these match; `mova-eval weights verify` does full hashes."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime)
    if key in _FP_CACHE:
        return _FP_CACHE[key]
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and ".cache" not in f.parts)
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    digest = "fp-" + h.hexdigest()[:32]
    _FP_CACHE[key] = digest
    return digest


def resolve_checkpoint(ref: str | None, what: str, fetch_hint: str) -> Path:
    """A local folder/file, or a Hugging Face repo id found in the local HF cache (downloaded only when online and
    HF_HUB_OFFLINE is unset). Raises MissingDependencyError-like guidance through WeightsMissing text otherwise."""
    if not ref:
        raise ConfigError(f"{what}: set generator.checkpoint=PATH (or a Hugging Face id)")
    p = Path(str(ref)).expanduser()
    if p.exists():
        return p
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(ref)):
        try:
            from huggingface_hub import snapshot_download

            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            return Path(snapshot_download(str(ref), local_files_only=offline))
        except Exception as e:  # offline, gated, missing
            raise CheckpointMissingError(f"{what}: checkpoint {ref!r} is not on disk and could not be fetched "
                                     f"({type(e).__name__}). Download it with: {fetch_hint} and pass "
                                     f"generator.checkpoint=PATH") from e
    raise CheckpointMissingError(f"{what}: checkpoint path {ref} does not exist. Download it with: {fetch_hint}")


def weights_ready(ref: str | None, fetch_hint: str) -> tuple[bool, str, str | None]:
    """Readiness for `mova-eval ls`: a local path, or a Hugging Face id already in the local cache. Nothing is
    downloaded here (a run fetches a missing Hugging Face id only when online)."""
    if not ref:
        return False, "no checkpoint configured (generator.checkpoint=PATH)", None
    if Path(str(ref)).expanduser().exists():
        return True, "", None
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(ref)):
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(str(ref), local_files_only=True)
            return True, "", None
        except Exception:  # noqa: BLE001 — not cached (or hub library missing)
            return False, f"weights {ref} are not downloaded (a run fetches them when online)", fetch_hint
    return False, f"checkpoint path {ref} does not exist", fetch_hint


class CheckpointMissingError(MovaEvalError):
    """A model checkpoint (folder or Hugging Face id) is not available here; the message has the download command."""


def require(module: str, what: str, command: str):
    """Import ``module`` or raise MissingDependencyError carrying the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(what, module.split(".")[0], command=command) from e


def call_factory(spec: str, *args, **kw):
    """``"pkg.module:attr.attr"`` → call it (used to inject a pipeline, e.g. a tiny stand-in in tests)."""
    import importlib

    mod, _, attr = spec.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(*args, **kw)


# ---------------------------------------------------------------------------------------------- media helpers


def to_uint8_frames(video: Any) -> np.ndarray:
    """Frames from a pipeline → uint8 [T, H, W, 3]. Accepts PIL lists, arrays or tensors in THWC, TCHW or CTHW,
    float in [0, 1] (or [-1, 1] when negative values occur) or uint8."""
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(f.convert("RGB")) if hasattr(f, "convert") else _np(f) for f in video])
    v = _np(video)
    if v.ndim == 5 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 4:
        raise GenerationError(f"pipeline returned video of shape {v.shape}; expected 4 dimensions")
    if v.shape[-1] not in (1, 3):
        if v.shape[1] in (1, 3):       # T C H W
            v = v.transpose(0, 2, 3, 1)
        elif v.shape[0] in (1, 3):     # C T H W
            v = v.transpose(1, 2, 3, 0)
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    if v.dtype != np.uint8:
        v = v.astype(np.float32)
        if v.min() < -1e-3:
            v = (v + 1.0) / 2.0
        v = np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)
    h, w = v.shape[1] - v.shape[1] % 2, v.shape[2] - v.shape[2] % 2  # H.264 4:2:0 needs even sizes
    return np.ascontiguousarray(v[:, :h, :w])


def to_audio(audio: Any) -> np.ndarray:
    """Audio from a pipeline → float32 [C, N] with C ≤ 2."""
    a = _np(audio).astype(np.float32)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise GenerationError(f"pipeline returned audio of shape {a.shape}; expected [C, N] or [N]")
    if a.shape[0] > a.shape[1]:  # [N, C]
        a = a.T
    if a.shape[0] > 2:
        a = a[:2]
    if not np.isfinite(a).all():
        raise GenerationError("pipeline returned audio with NaN/inf samples")
    return np.ascontiguousarray(a)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    return np.asarray(x)


def write_clip(out_path: str | Path, video: Any, fps: float, audio: Any | None, sample_rate: int | None) -> Path:
    from mova_eval import media

    frames = to_uint8_frames(video)
    a = to_audio(audio) if audio is not None else None
    return media.encode(out_path, frames, fps, a, sample_rate)


def load_image(path: str, width: int, height: int):
    """Centre-crop to the target aspect, then resize (what MOVA's ``crop_and_resize`` does), as a PIL image."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - width) // 2, (nh - height) // 2
    return img.crop((left, top, left + width, top + height))


def white_image(width: int, height: int):
    """The pure-white first frame MOVA's workflow uses for T2VA with an IT2VA pipeline."""
    from PIL import Image

    return Image.new("RGB", (width, height), (255, 255, 255))


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- prompts


def speech_tagged(prompt: str, speech: str, open_tag: str, close_tag: str) -> str:
    """Wrap the spoken line in the model's speech tags. Verse-Bench prompts quote the line; the quoted copy is
    replaced in place when found, otherwise the tagged line is appended."""
    speech = re.sub(r"^\s*Speaker\s*\d+\s*:\s*", "", speech).strip()  # a speaker label, not words to say
    if not speech:
        return prompt
    tagged = f"{open_tag}{speech}{close_tag}"
    for q in ('"{}"', "“{}”", "'{}'", "「{}」"):
        quoted = q.format(speech)
        if quoted in prompt:
            return prompt.replace(quoted, tagged, 1)
    for m in re.finditer(r"[\"“「]([^\"”」]{3,})[\"”」]", prompt):
        if _similar(m.group(1), speech):
            return prompt[: m.start()] + tagged + prompt[m.end():]
    return f"{prompt.rstrip()} {tagged}"


def _similar(a: str, b: str) -> bool:
    """Same line up to punctuation, quote style and small edits (Verse-Bench's quoted copy and speech text differ
    this way in 23 items)."""
    import difflib

    def norm(x: str) -> str:
        return re.sub(r"[\W_]+", "", x.lower())

    return difflib.SequenceMatcher(None, norm(a), norm(b)).ratio() > 0.8


# ---------------------------------------------------------------------------------------------- HTTP

_SECRET_PATTERNS = [(re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), "***"), (re.compile(r"AIza[0-9A-Za-z_\-]{20,}"), "***"),
                    (re.compile(r"(?i)(key=)[^&\s]+"), r"\1***"), (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***")]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys (known values and key-shaped strings) from anything that may be logged or stored."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    for pat, repl in _SECRET_PATTERNS:
        text = pat.sub(repl, text)
    return text


class RemoteError(GenerationError):
    """The service answered with an error or never finished; the message carries the status and body."""


class RateLimiter:
    """At most ``per_minute`` calls per rolling minute, shared by the adapter's threads."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        if at > now:
            time.sleep(at - now)


RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def http(session, method: str, url: str, *, retries: int, backoff_s: float, timeout: float,
         secrets: tuple[str, ...] = (), limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
         **kw):
    """One HTTP call with retries on connection errors, timeouts and 408/409/425/429/5xx, exponential backoff with
    jitter (or the server's Retry-After). Other 4xx raise RemoteError at once. Keys never appear in errors."""
    import requests

    last = ""
    for attempt in range(retries + 1):
        if limiter:
            limiter.wait()
        try:
            r = session.request(method, url, timeout=timeout, **kw)
        except (requests.ConnectionError, requests.Timeout) as e:
            last = f"{type(e).__name__} on {method} {_strip_query(url)}"
            wait = backoff_s * (2 ** attempt) * (1 + 0.25 * random.random())
        else:
            if r.status_code < 400:
                return r
            body = redact(r.text[:500], secrets)
            last = f"HTTP {r.status_code} on {method} {_strip_query(url)}: {body}"
            if r.status_code not in RETRY_STATUSES:
                raise RemoteError(last)
            ra = r.headers.get("Retry-After")
            wait = float(ra) if ra and ra.replace(".", "", 1).isdigit() else backoff_s * (2 ** attempt) * (1 + 0.25 * random.random())
        if attempt < retries:
            sleep(wait)
    raise RemoteError(f"gave up after {retries + 1} attempts: {last}")


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def download(session, url: str, out_path: str | Path, *, timeout: float, retries: int, backoff_s: float,
             secrets: tuple[str, ...] = (), headers: Mapping[str, str] | None = None) -> Path:
    """Stream a file to ``out_path`` atomically and check it is a readable clip."""
    from mova_eval import media

    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.download")
    r = http(session, "GET", url, retries=retries, backoff_s=backoff_s, timeout=timeout, secrets=secrets,
             stream=True, headers=dict(headers or {}))
    with open(tmp, "wb") as f:
        for chunk in r.iter_content(1 << 16):
            f.write(chunk)
    try:
        media.probe(tmp)
    except MovaEvalError as e:
        tmp.unlink(missing_ok=True)
        raise RemoteError(f"downloaded file from {_strip_query(url)} is not a readable clip: {e}") from e
    tmp.replace(out)
    return out


class RemoteJobs:
    """Remote job ids persisted beside each clip (``<clip>.remote.json``), so an interrupted run polls the job it
    already submitted instead of paying for a second one. The record holds the request fingerprint: a changed
    request is resubmitted."""

    @staticmethod
    def path(out_path: str | Path) -> Path:
        out = Path(out_path)
        return out.with_name(out.stem + ".remote.json")

    @classmethod
    def get(cls, out_path: str | Path, fingerprint: str) -> dict | None:
        p = cls.path(out_path)
        try:
            rec = json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return rec if rec.get("fingerprint") == fingerprint else None

    @classmethod
    def put(cls, out_path: str | Path, record: dict) -> None:
        from mova_eval.cache import atomic_write_text

        atomic_write_text(cls.path(out_path), json.dumps(record, sort_keys=True))

    @classmethod
    def drop(cls, out_path: str | Path) -> None:
        cls.path(out_path).unlink(missing_ok=True)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run_concurrently(fn: Callable[[GenRequest], GenResult], requests: list[GenRequest], limit: int) -> list[GenResult]:
    """Order-preserving map with at most ``limit`` requests in flight."""
    if limit <= 1 or len(requests) <= 1:
        return [fn(r) for r in requests]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(limit, len(requests))) as pool:
        return list(pool.map(fn, requests))
