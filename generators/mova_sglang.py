"""MOVA served by SGLang's diffusion server: ``generator=mova_sglang generator.url=http://HOST:30000``.

The video API of MOVA's ``workflow/sglang_client.py``: ``POST /v1/videos`` (multipart: ``input_reference`` image
plus prompt, size, num_frames, fps, seed, guidance_scale, num_inference_steps, all as strings) → a task JSON (an
object or a one-element list); poll ``GET /v1/videos/{id}`` until ``completed``/``failed``/``error``; download
``download_url`` (or ``/v1/videos/{id}/download``). The remote id is stored beside the clip before polling
(``_remote``), so an interrupted run polls the same job instead of paying GPU time for a second one.
Docs: docs/generators/mova_sglang.md.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Literal

from mova_eval.errors import ConfigError
from mova_eval.frames import load_image, white_image
from mova_eval.generators._remote import RemoteError, RemoteSettings, RemoteVideoGenerator
from mova_eval.generators.base import Capabilities, Plan
from mova_eval.generators.settings import output
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest

FAILED = ("failed", "error", "cancelled")


@dataclass(frozen=True)
class MovaSGLangSettings(RemoteSettings):
    model: str = output("mova", "label of what the server serves (the server decides the model)")
    num_frames: int | None = output(193)
    fps: float | None = output(24.0)
    guidance_scale: float = output(5.0)
    num_inference_steps: int = output(50)
    seed: int = output(42)
    t2va_reference: Literal["white", "none"] = output("white", "items without a first frame: send a white image "
                                                                "(MOVA's workflow) | none")


class MovaSGLang(RemoteVideoGenerator):
    name = "mova_sglang"
    adapter_version = "1"
    Settings = MovaSGLangSettings
    capabilities = Capabilities(modes=("it2va", "t2va"), max_duration_s=193 / 24 + 1e-6, fps=(24.0,))

    @classmethod
    def _more_availability(cls, s: MovaSGLangSettings) -> Availability:
        if not re.match(r"https?://", str(s.url or "")):
            return Availability(False, f"no server URL (generator.url={s.url})",
                                "mova-eval run generator=mova_sglang generator.url=http://HOST:30000")
        return Availability(True)

    def checkpoint_ref(self) -> str:
        return str(self.settings.model or "mova")

    def _base_url(self) -> str:
        url = str(self.settings.url or "")
        if not re.match(r"https?://", url):
            raise ConfigError(f"generator.url must be an http(s) URL of the SGLang server, got {url!r}")
        return url.rstrip("/")

    def _payload(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        form = {"prompt": plan.prompt, "size": f"{plan.width}x{plan.height}", "num_frames": str(plan.num_frames),
                "fps": f"{plan.fps:g}", "seed": str(plan.seed), "guidance_scale": f"{s.guidance_scale:g}",
                "num_inference_steps": str(s.num_inference_steps)}
        return {"form": form, "input_reference": self._reference_png(plan)}

    def _reference_png(self, plan: Plan) -> bytes | None:
        if plan.first_frame:
            img = load_image(plan.first_frame, plan.width, plan.height)
        elif self.settings.t2va_reference == "white":
            img = white_image(plan.width, plan.height)
        else:
            return None
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def _submit(self, payload: dict[str, Any]) -> str:
        png = payload["input_reference"]
        files: dict = {k: (None, v) for k, v in payload["form"].items()}  # always multipart/form-data
        if png is not None:
            files["input_reference"] = ("reference.png", png, "image/png")
        task = _task(self._http("POST", f"{self.base}/v1/videos", files=files).json())
        if not task.get("id"):
            raise RemoteError(f"server accepted the request but returned no task id: {str(task)[:300]}")
        return str(task["id"])

    def _status(self, remote_id: str):
        task = _task(self._http("GET", f"{self.base}/v1/videos/{remote_id}").json())
        status = str(task.get("status", "")).lower()
        if status == "completed":
            return "done", task
        if status in FAILED:
            return "failed", f"{status}: {task.get('error') or 'no reason given'}"
        return "running", f"status {status or '?'}, progress {task.get('progress')}"

    def _download_url(self, remote_id: str, task: dict) -> str:
        url = task.get("download_url") or task.get("video_url")
        if not url:
            return f"{self.base}/v1/videos/{remote_id}/download"
        url = re.sub(r"(?<!:)//v1", "/v1", url)  # the server's own URLs can carry a double slash
        return self.base + url if url.startswith("/") else url

    def _extra(self, plan: Plan, task: dict) -> dict[str, Any]:
        return {"server_inference_time_s": task.get("inference_time_s"), "peak_gpu_memory_mb": task.get("peak_memory_mb")}

    def cost_usd(self, plan: Plan) -> float | None:
        return None  # self-hosted


def _task(payload: Any) -> dict:
    if isinstance(payload, list):
        if len(payload) != 1 or not isinstance(payload[0], dict):
            raise RemoteError(f"expected one task, got a list of {len(payload)}")
        return payload[0]
    if not isinstance(payload, dict):
        raise RemoteError(f"expected a task object, got {type(payload).__name__}")
    return payload
