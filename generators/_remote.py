"""The submit → poll → download flow shared by served and closed-API adapters (SGLang, Sora 2, Veo 3).

A subclass implements ``_submit`` (returns the remote job id), ``_status`` (one poll: ``("done", payload)``,
``("running", payload)`` or ``("failed", reason)``) and ``_download_url``. This class adds what every remote
adapter needs: API keys from environment variables (never stored, never logged), a requests-per-minute limiter,
retries with backoff, a cap on clips in flight, remote ids persisted beside each clip before polling (an
interrupted run resumes the same job, a job the service forgot is resubmitted once), and latency/cost provenance.

The HTTP layer under it (``http``: retries with backoff and Retry-After; ``download``: streamed, atomic, checked to
be a clip; ``redact``: keys never reach errors or logs; ``RateLimiter``; ``RemoteJobs``) lives here too, so that a
new served or closed-API adapter finds everything it builds on in this one module.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from mova_eval.errors import ConfigError, GenerationError, MovaEvalError
from mova_eval.generators.base import ModelGenerator, ModelSettings, Plan, fingerprint
from mova_eval.generators.settings import runtime
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult

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


def run_concurrently(fn: Callable[[GenRequest], GenResult], requests: list[GenRequest], limit: int) -> list[GenResult]:
    """Order-preserving map with at most ``limit`` requests in flight."""
    if limit <= 1 or len(requests) <= 1:
        return [fn(r) for r in requests]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(limit, len(requests))) as pool:
        return list(pool.map(fn, requests))




@dataclass(frozen=True)
class RemoteSettings(ModelSettings):
    """How a served or closed-API adapter talks to its service: none of it changes the clip."""

    url: str | None = runtime(None, "the service's base URL")
    api_key_env: str | None = runtime(None, "the environment variable holding the API key (never the key itself)")
    submit_timeout_s: float = runtime(60.0, "timeout of each HTTP call (submit, poll)")
    poll_interval_s: float = runtime(5.0, "seconds between polls")
    poll_timeout_s: float = runtime(1800.0, "per clip; a re-run keeps polling the same remote job")
    download_timeout_s: float = runtime(300.0, "timeout of the clip download")
    retries: int = runtime(3, "retries on connection errors, timeouts, 408/409/425/429/5xx")
    backoff_s: float = runtime(2.0, "first backoff (exponential, with jitter)")
    concurrency: int = runtime(1, "clips in flight at once within one batch")
    requests_per_minute: float | None = runtime(None, "rate limit shared by the adapter's threads")
    price_per_second_usd: float | None = runtime(None, "list price, for the cost estimate in provenance")


class RemoteVideoGenerator(ModelGenerator):
    __abstract__ = True
    Settings = RemoteSettings
    default_key_env: str | None = None  # closed APIs: the env var holding the key
    key_header: str = "Authorization"

    @classmethod
    def _more_availability(cls, settings) -> Availability:
        env = settings.api_key_env or cls.default_key_env
        if env and not os.environ.get(env):
            return Availability(False, f"no API key in ${env}", f"export {env}=...")
        return Availability(True)

    def _load(self) -> None:
        import requests

        env = self.settings.api_key_env or self.default_key_env
        self._key = os.environ.get(env, "") if env else ""
        if env and not self._key:
            raise ConfigError(f"{self.name} needs an API key in the environment variable ${env} (export {env}=...)")
        self.base = self._base_url()
        self._tls = threading.local()  # one requests.Session per worker thread
        self._limiter = RateLimiter(self.settings.requests_per_minute)
        self._requests = requests

    @property
    def session(self):
        s = getattr(self._tls, "session", None)
        if s is None:
            s = self._tls.session = self._requests.Session()
        return s

    def _base_url(self) -> str:
        return str(self.settings.url or "").rstrip("/")

    def _auth(self) -> dict[str, str]:
        if not self._key:
            return {}
        return {"Authorization": f"Bearer {self._key}"} if self.key_header == "Authorization" else {self.key_header: self._key}

    def _secrets(self) -> tuple[str, ...]:
        return (self._key,) if self._key else ()

    def _http(self, method: str, url: str, timeout: float | None = None, **kw):
        s = self.settings
        headers = {**self._auth(), **kw.pop("headers", {})}
        return http(self.session, method, url, retries=s.retries, backoff_s=s.backoff_s,
                    timeout=float(timeout or s.submit_timeout_s), secrets=self._secrets(),
                    limiter=self._limiter, headers=headers, **kw)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        return run_concurrently(self._one, requests, int(self.settings.concurrency or 1))

    # ------------------------------------------------------------------ subclass hooks
    def _payload(self, req: GenRequest, plan: Plan) -> Any:
        """Everything sent for this clip (fingerprinted so a changed request is never matched to an old job)."""
        raise NotImplementedError

    def _submit(self, payload: Any) -> str:
        raise NotImplementedError

    def _status(self, remote_id: str) -> tuple[str, Any]:
        raise NotImplementedError

    def _download_url(self, remote_id: str, done: Any) -> str:
        raise NotImplementedError

    def _extra(self, plan: Plan, done: Any) -> dict[str, Any]:
        return {}

    def cost_usd(self, plan: Plan) -> float | None:
        price = self.settings.price_per_second_usd
        return None if price is None else round(float(price) * self.billed_seconds(plan), 4)

    def billed_seconds(self, plan: Plan) -> float:
        return plan.duration_s

    # ------------------------------------------------------------------ the flow
    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        payload = self._payload(req, plan)
        fp = fingerprint(self.base, self.identity(), payload)
        rec = RemoteJobs.get(req.out_path, fp)
        resumed = rec is not None
        t0 = time.perf_counter()
        if rec is None:
            rec = self._new_job(req, payload, fp)
        try:
            done = self._wait(rec["remote_id"], req.out_path)
        except RemoteError as e:
            if not (resumed and "HTTP 404" in str(e)):
                raise
            RemoteJobs.drop(req.out_path)  # the service forgot the job (restart, expiry): submit once more
            rec, resumed = self._new_job(req, payload, fp), False
            done = self._wait(rec["remote_id"], req.out_path)
        latency = time.perf_counter() - t0
        download(self.session, self._download_url(rec["remote_id"], done), req.out_path,
                 timeout=self.settings.download_timeout_s, retries=self.settings.retries,
                 backoff_s=self.settings.backoff_s, secrets=self._secrets(), headers=self._auth())
        from mova_eval import media

        info = media.probe(req.out_path)
        returned = {k: info.get(k) for k in ("width", "height", "fps", "frames", "duration", "sample_rate", "channels")}
        return {"remote_id": rec["remote_id"], "resumed_remote_job": resumed, "service": self.base,
                "submitted_at": rec.get("submitted_at"), "latency_s": round(latency, 3),
                "cost_usd": None if resumed else self.cost_usd(plan), "billed_seconds": self.billed_seconds(plan),
                "request": _loggable(payload), "returned": returned, **self._extra(plan, done)}

    def _new_job(self, req: GenRequest, payload: Any, fp: str) -> dict:
        rid = self._submit(payload)
        rec = {"remote_id": rid, "fingerprint": fp, "service": self.base, "submitted_at": time.time()}
        RemoteJobs.put(req.out_path, rec)
        return rec

    def _wait(self, remote_id: str, out_path: str) -> Any:
        interval = self.settings.poll_interval_s
        limit = self.settings.poll_timeout_s
        deadline = time.monotonic() + limit
        while True:
            state, info = self._status(remote_id)
            if state == "done":
                return info
            if state == "failed":
                RemoteJobs.drop(out_path)  # a failed job is resubmitted by the next run
                raise RemoteError(f"remote job {remote_id} failed: {info}")
            if time.monotonic() > deadline:
                raise RemoteError(f"remote job {remote_id} not finished after {limit:g} s ({info}); "
                                  "re-run to keep polling it")
            time.sleep(interval)


def _loggable(payload: Any) -> Any:
    """The request as recorded in provenance: binary parts replaced by their size."""
    if isinstance(payload, dict):
        return {k: _loggable(v) for k, v in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [_loggable(v) for v in payload]
    if isinstance(payload, (bytes, bytearray)):
        return f"<{len(payload)} bytes>"
    if isinstance(payload, str) and len(payload) > 2000:
        return f"<{len(payload)} chars>"
    return payload
