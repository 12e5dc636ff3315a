"""LTX-2 (Lightricks) through diffusers: ``generator=ltx2``. Joint video+audio; ``LTX2Pipeline`` for T2VA and
``LTX2ImageToVideoPipeline`` (same components) for IT2VA. Settings default to the diffusers example (768x512,
24 fps, 30 steps, guidance 3.0 with its negative prompt), with 193 frames so clips are as long as MOVA's 8 s.
Docs: docs/generators/ltx2.md.
"""
from __future__ import annotations

from typing import Any

from mova_eval.errors import GenerationError
from mova_eval.generators._common import ModelGenerator, Plan, load_image, write_clip
from mova_eval.generators._diffusers import (DIFFUSERS_INSTALL, diffusers_version, diffusers_weights_ready, load_pipeline,
                                              torch_generator)
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest

CALL_KEYS = ("num_inference_steps", "guidance_scale", "audio_guidance_scale", "stg_scale", "audio_stg_scale",
             "modality_scale", "audio_modality_scale", "guidance_rescale", "audio_guidance_rescale",
             "spatio_temporal_guidance_blocks", "use_cross_timestep", "max_sequence_length", "decode_timestep",
             "decode_noise_scale")


class LTX2(ModelGenerator):
    name = "ltx2"
    adapter_version = "1"
    requires = (("diffusers", DIFFUSERS_INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"), max_duration_s=20.0)

    @classmethod
    def _more_availability(cls, config):
        return diffusers_weights_ready(config)

    def package_version(self) -> str | None:
        return diffusers_version()

    def checkpoint_ref(self) -> str | None:
        return self.config.get("checkpoint") or self.config.get("model_id")

    def sampler_settings(self) -> dict[str, Any]:
        keys = ("model_id", "width", "height", "num_frames", "fps", "negative_prompt", "seed", "dtype", *CALL_KEYS)
        return {k: self.config.get(k) for k in keys if k in self.config}

    def _load(self) -> None:
        import diffusers

        self._t2v, self._ckpt_hash = load_pipeline("LTX2Pipeline", self.config, self.device, "LTX-2")
        self._i2v = None
        if "it2va" in self.capabilities.modes and hasattr(diffusers, "LTX2ImageToVideoPipeline"):
            self._i2v = diffusers.LTX2ImageToVideoPipeline(**self._t2v.components)

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 8:
            raise GenerationError(f"LTX-2 needs (num_frames - 1) % 8 == 0; got {p.num_frames}")
        if p.width % 32 or p.height % 32:
            raise GenerationError(f"LTX-2 needs width and height divisible by 32; got {p.width}x{p.height}")
        return p

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        cfg = self.config
        kwargs = {k: cfg[k] for k in CALL_KEYS if cfg.get(k) is not None}
        kwargs.update(prompt=plan.prompt, negative_prompt=cfg.get("negative_prompt") or "", width=plan.width,
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
        return {"audio_sample_rate": sr, "negative_prompt": kwargs["negative_prompt"],
                "pipeline": "LTX2ImageToVideoPipeline" if plan.first_frame else "LTX2Pipeline"}

    def close(self) -> None:
        self._t2v = self._i2v = None
