"""MOVA served by SGLang's diffusion server: ``generator=mova_sglang generator.url=http://HOST:30000``.

The video API of MOVA's ``workflow/sglang_client.py``: ``POST /v1/videos`` (multipart: ``input_reference`` image
plus prompt, size, num_frames, fps, seed, guidance_scale, num_inference_steps, all as strings) → a task JSON (an
object or a one-element list); poll ``GET /v1/videos/{id}`` until ``completed``/``failed``/``error``; download
``download_url`` (or ``/v1/videos/{id}/download``). Each remote id is stored beside its clip
(``<clip>.remote.json``) before polling starts, so an interrupted run polls the same job instead of submitting
(and paying GPU time for) a second one. Docs: docs/generators/mova_sglang.md.
"""
from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

from mova_eval.errors import ConfigError
from mova_eval.generators._common import (ModelGenerator, Plan, RateLimiter, RemoteError, RemoteJobs, download,
                                          fingerprint, http, load_image, run_concurrently, white_image)
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest, GenResult

TERMINAL_OK = "completed"
TERMINAL_FAIL = ("failed", "error", "cancelled")


class MovaSGLang(ModelGenerator):
    name = "mova_sglang"
    adapter_version = "1"
    capabilities = Capabilities(modes=("it2va", "t2va"), max_duration_s=193 / 24 + 1e-6, fps=(24.0,))

    @classmethod
    def _more_availability(cls, config):
        url = config.get("url")
        if not url or url == "???":
            return False, "no server URL", "mova-eval run generator=mova_sglang generator.url=http://HOST:30000"
        return True, "", None

    def checkpoint_ref(self) -> str:
        return str(self.config.get("model") or "mova")

    def sampler_settings(self) -> dict[str, Any]:
        keys = ("model", "width", "height", "num_frames", "fps", "guidance_scale", "num_inference_steps", "seed",
                "t2va_reference")
        return {k: self.config.get(k) for k in keys}

    def _load(self) -> None:
        import requests

        url = str(self.config.get("url") or "")
        if not re.match(r"https?://", url):
            raise ConfigError(f"generator.url must be an http(s) URL of the SGLang server, got {url!r}")
        self.base = url.rstrip("/")
        self.session = requests.Session()
        self._lock = threading.Lock()
        self._limiter = RateLimiter(self.config.get("requests_per_minute"))

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        return run_concurrently(self._one, requests, int(self.config.get("concurrency") or 1))

    # ------------------------------------------------------------------ one clip
    def _http(self, method: str, url: str, timeout_key: str, default_timeout: float, **kw):
        cfg = self.config
        return http(self.session, method, url, retries=int(cfg.get("retries", 3)), backoff_s=float(cfg.get("backoff_s", 2.0)),
                    timeout=float(cfg.get(timeout_key, default_timeout)), limiter=self._limiter, **kw)

    def _form(self, plan: Plan) -> dict[str, str]:
        cfg = self.config
        return {"prompt": plan.prompt, "size": f"{plan.width}x{plan.height}", "num_frames": str(plan.num_frames),
                "fps": f"{plan.fps:g}", "seed": str(plan.seed), "guidance_scale": f"{float(cfg.get('guidance_scale', 5.0)):g}",
                "num_inference_steps": str(int(cfg.get("num_inference_steps", 50)))}

    def _reference_png(self, plan: Plan) -> bytes | None:
        if plan.first_frame:
            img = load_image(plan.first_frame, plan.width, plan.height)
        elif (self.config.get("t2va_reference") or "white") == "white":
            img = white_image(plan.width, plan.height)
        else:
            return None
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def _submit(self, form: dict[str, str], png: bytes | None) -> dict:
        files = {"input_reference": ("reference.png", png, "image/png")} if png is not None else None
        r = self._http("POST", f"{self.base}/v1/videos", "submit_timeout_s", 60.0, data=form, files=files)
        task = _task(r.json())
        if not task.get("id"):
            raise RemoteError(f"server accepted the request but returned no task id: {str(task)[:300]}")
        return task

    def _poll(self, task_id: str, out_path: str) -> dict:
        cfg = self.config
        interval, deadline = float(cfg.get("poll_interval_s", 5.0)), time.monotonic() + float(cfg.get("poll_timeout_s", 1800))
        while True:
            task = _task(self._http("GET", f"{self.base}/v1/videos/{task_id}", "submit_timeout_s", 60.0).json())
            status = str(task.get("status", "")).lower()
            if status == TERMINAL_OK:
                return task
            if status in TERMINAL_FAIL:
                RemoteJobs.drop(out_path)  # a failed job is resubmitted by the next run
                raise RemoteError(f"server task {task_id} {status}: {task.get('error') or 'no reason given'}")
            if time.monotonic() > deadline:
                raise RemoteError(f"server task {task_id} not finished after {cfg.get('poll_timeout_s', 1800)} s "
                                  f"(status {status or '?'}, progress {task.get('progress')}); re-run to keep polling it")
            time.sleep(interval)

    def _download_url(self, task: dict) -> str:
        url = task.get("download_url") or task.get("video_url")
        if not url:
            return f"{self.base}/v1/videos/{task['id']}/download"
        if url.startswith("/"):
            url = self.base + url
        return re.sub(r"(?<!:)//v1", "/v1", url)

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        form = self._form(plan)
        png = self._reference_png(plan)
        fp = fingerprint(self.base, self.identity(), form, None if png is None else fingerprint(png.hex()))
        rec = RemoteJobs.get(req.out_path, fp)
        resumed = rec is not None
        if rec is None:
            task = self._submit(form, png)
            rec = {"remote_id": task["id"], "fingerprint": fp, "server": self.base, "submitted_at": time.time()}
            RemoteJobs.put(req.out_path, rec)
        try:
            task = self._poll(rec["remote_id"], req.out_path)
        except RemoteError as e:
            if resumed and "HTTP 404" in str(e):  # the server forgot the job (restart): submit once more
                RemoteJobs.drop(req.out_path)
                task = self._submit(form, png)
                rec = {"remote_id": task["id"], "fingerprint": fp, "server": self.base, "submitted_at": time.time()}
                RemoteJobs.put(req.out_path, rec)
                resumed = False
                task = self._poll(rec["remote_id"], req.out_path)
            else:
                raise
        download(self.session, self._download_url(task), req.out_path,
                 timeout=float(self.config.get("download_timeout_s", 300)), retries=int(self.config.get("retries", 3)),
                 backoff_s=float(self.config.get("backoff_s", 2.0)))
        from mova_eval import media

        info = media.probe(req.out_path)
        return {"remote_id": rec["remote_id"], "resumed_remote_job": resumed, "request_form": form,
                "server_inference_time_s": task.get("inference_time_s"),
                "peak_gpu_memory_mb": task.get("peak_memory_mb"), "returned": _returned(info)}


def _task(payload: Any) -> dict:
    if isinstance(payload, list):
        if len(payload) != 1 or not isinstance(payload[0], dict):
            raise RemoteError(f"expected one task, got a list of {len(payload)}")
        return payload[0]
    if not isinstance(payload, dict):
        raise RemoteError(f"expected a task object, got {type(payload).__name__}")
    return payload


def _returned(info: dict) -> dict:
    """What the server actually produced (it snaps sizes, e.g. 640x360 → 624x352, and writes stereo)."""
    keep = ("width", "height", "fps", "frames", "duration", "sample_rate", "channels")
    flat = {}
    for k, v in info.items():
        if isinstance(v, dict):
            flat.update({f"{k}_{kk}": vv for kk, vv in v.items() if kk in keep})
        elif k in keep:
            flat[k] = v
    return flat
