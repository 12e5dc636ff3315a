"""Wan2.1 text-to-video (and image-to-video) through diffusers: ``generator=wan21``. Video only — silent clips,
meant as the video stage of a cascade (the paper's WAN2.1 + MMAudio row: ``generator=wan21_mmaudio``), or for
video-only metrics. Settings default to Wan2.1's published 480p sampling (832x480, 16 fps, 50 steps, guidance 5.0,
flow shift 3.0 for 480p). Docs: docs/generators/wan21.md; docs/adding_a_generator.md uses this file as its worked
example.

Quirk: Wan2.1's published checkpoints ship a ``UniPCMultistepScheduler`` whose shift key is ``flow_shift``, not
FlowMatchEuler's ``shift``; ``generator.flow_shift`` reaches either (``_diffusers.set_flow_shift``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mova_eval.errors import GenerationError
from mova_eval.frames import load_image, write_clip
from mova_eval.generators._diffusers import (
    DIFFUSERS_INSTALL,
    DiffusersSettings,
    diffusers_version,
    diffusers_weights_ready,
    load_pipeline,
    set_flow_shift,
    torch_generator,
)
from mova_eval.generators.base import Capabilities, ModelGenerator, Plan
from mova_eval.generators.settings import model, output
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest


@dataclass(frozen=True)
class Wan21Settings(DiffusersSettings):
    """Every ``generator.*`` key of wan21 (the shared diffusers keys plus the image-to-video checkpoint)."""

    model_id: str | None = output("Wan-AI/Wan2.1-T2V-14B-Diffusers", "text-to-video checkpoint (Hugging Face id)")
    i2v_model_id: str | None = output("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "image-to-video checkpoint, for "
                                                                             "items with a first frame")
    i2v_checkpoint: str | None = model(None, "a local folder of the image-to-video checkpoint")
    i2v_pipeline_factory: str | None = model(None, '"module:callable" returning the image-to-video pipeline')
    width: int | None = output(832, "Wan2.1 480p; a multiple of 16")
    height: int | None = output(480)
    num_frames: int | None = output(81, "(num_frames - 1) % 4 == 0; Wan2.1's trained length (5.06 s at 16 fps)")
    fps: float | None = output(16.0)
    flow_shift: float | None = output(3.0, "3.0 for 480p, 5.0 for 720p (Wan2.1's recommendation)")
    seed: int = output(42)


class Wan21(ModelGenerator):
    name = "wan21"
    adapter_version = "2"  # 2: flow_shift reaches UniPC schedulers (1 recorded it but UniPC never saw it)
    Settings = Wan21Settings
    requires = (("diffusers", DIFFUSERS_INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"))

    @classmethod
    def _more_availability(cls, s: Wan21Settings) -> Availability:
        return diffusers_weights_ready(s.model_id, s.checkpoint, s.pipeline_factory)

    def package_version(self) -> str | None:
        return diffusers_version()

    def checkpoint_ref(self) -> str | None:
        return self.settings.checkpoint or self.settings.model_id

    def _load(self) -> None:
        s = self.settings
        self._pipe, path = load_pipeline("WanPipeline", model_id=s.model_id, checkpoint=s.checkpoint,
                                         pipeline_factory=s.pipeline_factory, dtype=s.dtype, offload=s.offload,
                                         device=self.device, what="Wan2.1",
                                         offline=self.context.offline)
        if path is not None:
            self.record_fingerprint("checkpoint", path)
        self._scheduler = set_flow_shift(self._pipe, s.flow_shift) if s.flow_shift is not None else {}
        self._i2v = None

    def _i2v_pipe(self):
        """Wan2.1 I2V is a different checkpoint (an image encoder plus its own transformer), loaded on first use."""
        if self._i2v is None:
            s = self.settings
            self._i2v, path = load_pipeline("WanImageToVideoPipeline", model_id=s.i2v_model_id,
                                            checkpoint=s.i2v_checkpoint, pipeline_factory=s.i2v_pipeline_factory,
                                            dtype=s.dtype, offload=s.offload, device=self.device,
                                            what="Wan2.1 image-to-video", offline=self.context.offline)
            if path is not None:
                self.record_fingerprint("i2v_checkpoint", path)
            if s.flow_shift is not None:
                set_flow_shift(self._i2v, s.flow_shift)
        return self._i2v

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 4:
            raise GenerationError(f"Wan2.1 needs (num_frames - 1) % 4 == 0; got {p.num_frames}")
        if p.width % 16 or p.height % 16:
            raise GenerationError(f"Wan2.1 needs width and height divisible by 16; got {p.width}x{p.height}")
        return p

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = dict(prompt=plan.prompt, negative_prompt=s.negative_prompt or "", height=plan.height,
                                      width=plan.width, num_frames=plan.num_frames,
                                      num_inference_steps=s.num_inference_steps, guidance_scale=s.guidance_scale,
                                      generator=torch_generator(self.device, plan.seed), output_type="np")
        if s.max_sequence_length:
            kwargs["max_sequence_length"] = s.max_sequence_length
        if plan.first_frame:
            frames = self._i2v_pipe()(image=load_image(plan.first_frame, plan.width, plan.height), **kwargs).frames
        else:
            frames = self._pipe(**kwargs).frames
        write_clip(req.out_path, frames[0], plan.fps, None, None)
        return {"negative_prompt": kwargs["negative_prompt"], "has_audio": False, "scheduler": self._scheduler}

    def close(self) -> None:
        self._pipe = self._i2v = None
