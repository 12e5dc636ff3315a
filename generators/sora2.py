"""Sora 2 through OpenAI's Videos API: ``generator=sora2`` (key in ``$OPENAI_API_KEY``).

``POST /v1/videos`` (multipart: model, prompt, seconds, size, optional ``input_reference`` image of exactly the
output size) → a video object; poll ``GET /v1/videos/{id}`` until ``completed`` / ``failed``; download
``GET /v1/videos/{id}/content``. The API takes no seed: clips are not reproducible, and the provenance says so.
Docs: docs/generators/sora2.md (OpenAI announced the Videos API's shutdown for 2026-09-24).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from mova_eval.errors import GenerationError
from mova_eval.frames import load_image
from mova_eval.generators._remote import RemoteError, RemoteSettings, RemoteVideoGenerator
from mova_eval.generators.base import Capabilities, Plan
from mova_eval.generators.settings import output, runtime
from mova_eval.spec import GenRequest

SECONDS = (4, 8, 12)


@dataclass(frozen=True)
class Sora2Settings(RemoteSettings):
    model: str = output("sora-2", "sora-2 (1280x720 / 720x1280) | sora-2-pro (also 1792x1024 / 1024x1792)")
    url: str | None = runtime("https://api.openai.com")
    api_key_env: str | None = runtime("OPENAI_API_KEY")
    width: int | None = output(1280)
    height: int | None = output(720)
    duration: float | None = output(8.0, "seconds: 4, 8 or 12")
    fps: float | None = output(24.0, "nominal (planning only): the API chooses the frame rate")


class Sora2(RemoteVideoGenerator):
    name = "sora2"
    adapter_version = "1"
    Settings = Sora2Settings
    default_key_env = "OPENAI_API_KEY"
    capabilities = Capabilities(modes=("t2va", "it2va"),
                                resolutions=((1280, 720), (720, 1280), (1792, 1024), (1024, 1792)),
                                max_duration_s=12.0)

    def checkpoint_ref(self) -> str:
        return self.settings.model

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if round(p.duration_s) not in SECONDS or abs(p.duration_s - round(p.duration_s)) > 0.05:
            raise GenerationError(f"sora2 makes clips of {'/'.join(map(str, SECONDS))} s; asked for {p.duration_s:.2f} s")
        if self.checkpoint_ref() == "sora-2" and p.width * p.height > 1280 * 720:
            raise GenerationError(f"model sora-2 supports 1280x720 and 720x1280 only; {p.width}x{p.height} needs sora-2-pro")
        return p

    def _payload(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        form = {"model": self.checkpoint_ref(), "prompt": plan.prompt, "seconds": str(round(plan.duration_s)),
                "size": f"{plan.width}x{plan.height}"}
        png = None
        if plan.first_frame:  # the reference image must match the output size
            buf = io.BytesIO()
            load_image(plan.first_frame, plan.width, plan.height).save(buf, format="PNG")
            png = buf.getvalue()
        return {"form": form, "input_reference": png}

    def _submit(self, payload: dict[str, Any]) -> str:
        png = payload["input_reference"]
        files: dict = {k: (None, v) for k, v in payload["form"].items()}  # always multipart/form-data
        if png is not None:
            files["input_reference"] = ("first_frame.png", png, "image/png")
        video = self._http("POST", f"{self.base}/v1/videos", files=files).json()
        if not video.get("id"):
            raise RemoteError(f"Videos API returned no id: {str(video)[:300]}")
        return str(video["id"])

    def _status(self, remote_id: str):
        video = self._http("GET", f"{self.base}/v1/videos/{remote_id}").json()
        status = video.get("status")
        if status == "completed":
            return "done", video
        if status == "failed":
            err = video.get("error") or {}
            return "failed", f"{err.get('code', '')}: {err.get('message', 'no reason given')}".strip(": ")
        return "running", f"status {status}, progress {video.get('progress')}"

    def _download_url(self, remote_id: str, video: dict) -> str:
        return f"{self.base}/v1/videos/{remote_id}/content"

    def _extra(self, plan: Plan, video: dict) -> dict[str, Any]:
        return {"seed_honoured": False, "remote_model": video.get("model"), "remote_size": video.get("size"),
                "remote_seconds": video.get("seconds")}

    def billed_seconds(self, plan: Plan) -> float:
        return float(round(plan.duration_s))
