"""The submit → poll → download flow shared by served and closed-API adapters (SGLang, Sora 2, Veo 3).

A subclass implements ``_submit`` (returns the remote job id), ``_status`` (one poll: ``("done", payload)``,
``("running", payload)`` or ``("failed", reason)``) and ``_download_url``. This class adds what every remote
adapter needs: API keys from environment variables (never stored, never logged), a requests-per-minute limiter,
retries with backoff, a cap on clips in flight, remote ids persisted beside each clip before polling (an
interrupted run resumes the same job, a job the service forgot is resubmitted once), and latency/cost provenance.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from mova_eval.errors import ConfigError
from mova_eval.generators._common import (ModelGenerator, Plan, RateLimiter, RemoteError, RemoteJobs, download,
                                          fingerprint, http, run_concurrently)
from mova_eval.spec import GenRequest, GenResult


class RemoteVideoGenerator(ModelGenerator):
    __abstract__ = True
    default_key_env: str | None = None  # closed APIs: the env var holding the key
    key_header: str = "Authorization"

    @classmethod
    def _more_availability(cls, config):
        env = config.get("api_key_env") or cls.default_key_env
        if env and not os.environ.get(env):
            return False, f"no API key in ${env}", f"export {env}=..."
        return True, "", None

    def _load(self) -> None:
        import requests

        env = self.config.get("api_key_env") or self.default_key_env
        self._key = os.environ.get(env, "") if env else ""
        if env and not self._key:
            raise ConfigError(f"{self.name} needs an API key in the environment variable ${env} (export {env}=...)")
        self.base = self._base_url()
        self._tls = threading.local()  # one requests.Session per worker thread
        self._limiter = RateLimiter(self.config.get("requests_per_minute"))
        self._requests = requests

    @property
    def session(self):
        s = getattr(self._tls, "session", None)
        if s is None:
            s = self._tls.session = self._requests.Session()
        return s

    def _base_url(self) -> str:
        return str(self.config.get("url") or self.config.get("base_url") or "").rstrip("/")

    def _auth(self) -> dict[str, str]:
        if not self._key:
            return {}
        return {"Authorization": f"Bearer {self._key}"} if self.key_header == "Authorization" else {self.key_header: self._key}

    def _secrets(self) -> tuple[str, ...]:
        return (self._key,) if self._key else ()

    def _http(self, method: str, url: str, timeout: float | None = None, **kw):
        cfg = self.config
        headers = {**self._auth(), **kw.pop("headers", {})}
        return http(self.session, method, url, retries=int(cfg.get("retries", 3)), backoff_s=float(cfg.get("backoff_s", 2.0)),
                    timeout=float(timeout or cfg.get("submit_timeout_s", 60)), secrets=self._secrets(),
                    limiter=self._limiter, headers=headers, **kw)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        return run_concurrently(self._one, requests, int(self.config.get("concurrency") or 1))

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
        price = self.config.get("price_per_second_usd")
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
                 timeout=float(self.config.get("download_timeout_s", 300)), retries=int(self.config.get("retries", 3)),
                 backoff_s=float(self.config.get("backoff_s", 2.0)), secrets=self._secrets(), headers=self._auth())
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
        cfg = self.config
        interval = float(cfg.get("poll_interval_s", 5.0))
        limit = float(cfg.get("poll_timeout_s", 1800))
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
