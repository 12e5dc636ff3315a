"""Veo 3 through the Gemini API: ``generator=veo3`` (key in ``$GEMINI_API_KEY``, sent as the ``x-goog-api-key``
header, never in a URL).

``POST /v1beta/models/{model}:predictLongRunning`` with ``{"instances": [{"prompt", "image"?}], "parameters":
{aspectRatio, resolution, durationSeconds, negativePrompt?, personGeneration?}}`` → an operation; poll
``GET /v1beta/{operation}`` until ``done``; download ``response.generateVideoResponse.generatedSamples[0].video.uri``
with the same header. The Developer API takes no seed, so clips are not reproducible. Docs: docs/generators/veo3.md.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from mova_eval.errors import GenerationError
from mova_eval.frames import load_image
from mova_eval.generators._remote import RemoteError, RemoteSettings, RemoteVideoGenerator
from mova_eval.generators.base import Capabilities, Plan
from mova_eval.generators.settings import output, runtime
from mova_eval.spec import GenRequest

RESOLUTION = {(1280, 720): ("16:9", "720p"), (1920, 1080): ("16:9", "1080p"), (720, 1280): ("9:16", "720p"),
              (1080, 1920): ("9:16", "1080p")}


@dataclass(frozen=True)
class Veo3Settings(RemoteSettings):
    model: str = output("veo-3.0-generate-001", "or veo-3.0-fast-generate-001")
    url: str | None = runtime("https://generativelanguage.googleapis.com")
    api_key_env: str | None = runtime("GEMINI_API_KEY")
    width: int | None = output(1280, "1280x720 or 1920x1080, or the 9:16 versions")
    height: int | None = output(720)
    duration: float | None = output(8.0, "Veo 3 makes 8 s clips")
    fps: float | None = output(24.0)
    negative_prompt: str | None = output(None)
    person_generation: str | None = output(None, "e.g. allow_all / allow_adult; null = the service default")


class Veo3(RemoteVideoGenerator):
    name = "veo3"
    adapter_version = "1"
    Settings = Veo3Settings
    default_key_env = "GEMINI_API_KEY"
    key_header = "x-goog-api-key"
    capabilities = Capabilities(modes=("t2va", "it2va"), resolutions=tuple(RESOLUTION), max_duration_s=8.0,
                                fps=(24.0,))

    def checkpoint_ref(self) -> str:
        return self.settings.model

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if abs(p.duration_s - 8.0) > 0.05:
            raise GenerationError(f"veo3 makes 8 s clips; asked for {p.duration_s:.2f} s")
        return p

    def _payload(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        aspect, resolution = RESOLUTION[(plan.width, plan.height)]
        instance: dict[str, Any] = {"prompt": plan.prompt}
        if plan.first_frame:
            buf = io.BytesIO()
            load_image(plan.first_frame, plan.width, plan.height).save(buf, format="PNG")
            instance["image"] = {"bytesBase64Encoded": base64.b64encode(buf.getvalue()).decode(), "mimeType": "image/png"}
        params: dict[str, Any] = {"aspectRatio": aspect, "resolution": resolution, "durationSeconds": 8}
        if self.settings.negative_prompt:
            params["negativePrompt"] = self.settings.negative_prompt
        if self.settings.person_generation:
            params["personGeneration"] = self.settings.person_generation
        return {"instances": [instance], "parameters": params}

    def _submit(self, payload: dict[str, Any]) -> str:
        op = self._http("POST", f"{self.base}/v1beta/models/{self.checkpoint_ref()}:predictLongRunning", json=payload).json()
        if not op.get("name"):
            raise RemoteError(f"Gemini API returned no operation name: {str(op)[:300]}")
        return str(op["name"])

    def _status(self, remote_id: str):
        op = self._http("GET", f"{self.base}/v1beta/{remote_id}").json()
        if not op.get("done"):
            return "running", "operation not done"
        if op.get("error"):
            err = op["error"]
            return "failed", f"{err.get('code', '')} {err.get('message', 'no reason given')}".strip()
        resp = (op.get("response") or {}).get("generateVideoResponse") or {}
        samples = resp.get("generatedSamples") or []
        if not samples:
            reasons = resp.get("raiMediaFilteredReasons") or ["no video returned"]
            return "failed", "filtered: " + "; ".join(map(str, reasons))
        return "done", op

    def _download_url(self, remote_id: str, op: dict) -> str:
        return op["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]

    def _extra(self, plan: Plan, op: dict) -> dict[str, Any]:
        return {"seed_honoured": False, "operation": op.get("name")}

    def billed_seconds(self, plan: Plan) -> float:
        return 8.0
