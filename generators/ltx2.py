"""LTX-2 (Lightricks) through diffusers: ``generator=ltx2``. Joint video+audio; ``LTX2Pipeline`` for T2VA and
``LTX2ImageToVideoPipeline`` (same components) for IT2VA. Settings default to the diffusers example (768x512,
24 fps, 30 steps, guidance 3.0 with its negative prompt), with 193 frames so clips are as long as MOVA's 8 s.
Docs: docs/generators/ltx2.md.

Quirk: LTX-2's published ``FlowMatchEulerDiscreteScheduler`` uses dynamic (resolution-dependent) shifting, which
ignores a fixed ``shift``; ``generator.flow_shift`` (default null: the published dynamic shift) therefore also
turns dynamic shifting off, and the provenance says so.
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
from mova_eval.generators.settings import output
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest


@dataclass(frozen=True)
class LTX2Settings(DiffusersSettings):
    model_id: str | None = output("Lightricks/LTX-2", "Hugging Face id of the diffusers checkpoint")
    width: int | None = output(768, "a multiple of 32")
    height: int | None = output(512)
    num_frames: int | None = output(193, "(num_frames - 1) % 8 == 0")
    fps: float | None = output(24.0)
    num_inference_steps: int = output(30)
    guidance_scale: float = output(3.0)
    seed: int = output(42)
    # LTX2Pipeline.__call__ arguments (null = the pipeline's default)
    audio_guidance_scale: float | None = output(None)
    stg_scale: float | None = output(None, "spatio-temporal guidance scale")
    audio_stg_scale: float | None = output(None)
    modality_scale: float | None = output(None)
    audio_modality_scale: float | None = output(None)
    guidance_rescale: float | None = output(None)
    audio_guidance_rescale: float | None = output(None)
    spatio_temporal_guidance_blocks: list[int] | None = output(None)
    use_cross_timestep: bool | None = output(None)
    decode_timestep: float | list[float] | None = output(None)
    decode_noise_scale: float | list[float] | None = output(None)


CALL_KEYS = ("num_inference_steps", "guidance_scale", "audio_guidance_scale", "stg_scale", "audio_stg_scale",
             "modality_scale", "audio_modality_scale", "guidance_rescale", "audio_guidance_rescale",
             "spatio_temporal_guidance_blocks", "use_cross_timestep", "max_sequence_length", "decode_timestep",
             "decode_noise_scale")


class LTX2(ModelGenerator):
    name = "ltx2"
    adapter_version = "1"
    Settings = LTX2Settings
    requires = (("diffusers", DIFFUSERS_INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"), max_duration_s=20.0)

    @classmethod
    def _more_availability(cls, s: LTX2Settings) -> Availability:
        return diffusers_weights_ready(s.model_id, s.checkpoint, s.pipeline_factory)

    def package_version(self) -> str | None:
        return diffusers_version()

    def checkpoint_ref(self) -> str | None:
        return self.settings.checkpoint or self.settings.model_id

    def _load(self) -> None:
        import diffusers

        s = self.settings
        self._t2v, path = load_pipeline("LTX2Pipeline", model_id=s.model_id, checkpoint=s.checkpoint,
                                        pipeline_factory=s.pipeline_factory, dtype=s.dtype, offload=s.offload,
                                        device=self.device, what="LTX-2",
                                        offline=self.context.offline)
        if path is not None:
            self.record_fingerprint("checkpoint", path)
        self._scheduler = set_flow_shift(self._t2v, s.flow_shift) if s.flow_shift is not None else {}
        self._i2v = None
        i2v_cls = getattr(diffusers, "LTX2ImageToVideoPipeline", None)  # absent from older diffusers releases
        if "it2va" in self.capabilities.modes and i2v_cls is not None:
            self._i2v = i2v_cls(**self._t2v.components)

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 8:
            raise GenerationError(f"LTX-2 needs (num_frames - 1) % 8 == 0; got {p.num_frames}")
        if p.width % 32 or p.height % 32:
            raise GenerationError(f"LTX-2 needs width and height divisible by 32; got {p.width}x{p.height}")
        return p

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        kwargs = {k: getattr(s, k) for k in CALL_KEYS if getattr(s, k) is not None}
        kwargs.update(prompt=plan.prompt, negative_prompt=s.negative_prompt or "", width=plan.width,
                      height=plan.height, num_frames=plan.num_frames, frame_rate=plan.fps,
                      generator=torch_generator(self.device, plan.seed), output_type="np", return_dict=False)
        if plan.first_frame:
            if self._i2v is None:
                raise GenerationError("this diffusers has no LTX2ImageToVideoPipeline; IT2VA is unavailable")
            video, audio = self._i2v(image=load_image(plan.first_frame, plan.width, plan.height), **kwargs)
        else:
            video, audio = self._t2v(**kwargs)
        sr = int(self._t2v.vocoder.config.output_sampling_rate)
        write_clip(req.out_path, video[0], plan.fps, audio[0], sr)
        return {"audio_sample_rate": sr, "negative_prompt": kwargs["negative_prompt"], "scheduler": self._scheduler,
                "pipeline": "LTX2ImageToVideoPipeline" if plan.first_frame else "LTX2Pipeline"}

    def close(self) -> None:
        self._t2v = self._i2v = None
