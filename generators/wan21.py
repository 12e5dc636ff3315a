"""Wan2.1 text-to-video (and image-to-video) through diffusers: ``generator=wan21``. Video only — silent clips,
meant as the video stage of a cascade (the paper's WAN2.1 + MMAudio row: ``generator=wan21_mmaudio``), or for
video-only metrics. Settings default to Wan2.1's published 480p sampling (832x480, 16 fps, 50 steps, guidance 5.0,
flow shift 3.0 for 480p) with 129 frames (8.06 s, so the added audio spans Verse-Bench's 8 s window).
Docs: docs/generators/wan21.md.
"""
from __future__ import annotations

from typing import Any

from mova_eval.errors import GenerationError
from mova_eval.generators._common import ModelGenerator, Plan, load_image, write_clip
from mova_eval.generators._diffusers import (DIFFUSERS_INSTALL, diffusers_version, diffusers_weights_ready, load_pipeline,
                                              torch_generator)
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest

class Wan21(ModelGenerator):
    name = "wan21"
    adapter_version = "1"
    requires = (("diffusers", DIFFUSERS_INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"))
    produces_audio = False

    @classmethod
    def _more_availability(cls, config):
        return diffusers_weights_ready(config)

    def package_version(self) -> str | None:
        return diffusers_version()

    def sampler_settings(self) -> dict[str, Any]:
        keys = ("model_id", "i2v_model_id", "width", "height", "num_frames", "fps", "num_inference_steps",
                "guidance_scale", "flow_shift", "negative_prompt", "seed", "dtype", "max_sequence_length")
        return {k: self.config.get(k) for k in keys if k in self.config}

    def _load(self) -> None:
        self._pipe, self._ckpt_hash = load_pipeline("WanPipeline", self.config, self.device, "Wan2.1")
        shift = self.config.get("flow_shift")
        if shift is not None and hasattr(self._pipe.scheduler, "config") and "shift" in self._pipe.scheduler.config:
            self._pipe.scheduler = type(self._pipe.scheduler).from_config(self._pipe.scheduler.config, shift=float(shift))
        self._i2v = None

    def _i2v_pipe(self):
        """Wan2.1 I2V is a different checkpoint (an image encoder plus its own transformer)."""
        if self._i2v is None:
            cfg = {**self.config, "model_id": self.config.get("i2v_model_id"), "checkpoint": self.config.get("i2v_checkpoint"),
                   "pipeline_factory": self.config.get("i2v_pipeline_factory")}
            self._i2v, _ = load_pipeline("WanImageToVideoPipeline", cfg, self.device, "Wan2.1 image-to-video")
        return self._i2v

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 4:
            raise GenerationError(f"Wan2.1 needs (num_frames - 1) % 4 == 0; got {p.num_frames}")
        if p.width % 16 or p.height % 16:
            raise GenerationError(f"Wan2.1 needs width and height divisible by 16; got {p.width}x{p.height}")
        return p

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        cfg = self.config
        kwargs = dict(prompt=plan.prompt, negative_prompt=cfg.get("negative_prompt") or "", height=plan.height,
                      width=plan.width, num_frames=plan.num_frames,
                      num_inference_steps=int(cfg.get("num_inference_steps", 50)),
                      guidance_scale=float(cfg.get("guidance_scale", 5.0)),
                      generator=torch_generator(self.device, plan.seed), output_type="np")
        if cfg.get("max_sequence_length"):
            kwargs["max_sequence_length"] = int(cfg["max_sequence_length"])
        if plan.first_frame:
            frames = self._i2v_pipe()(image=load_image(plan.first_frame, plan.width, plan.height), **kwargs).frames
        else:
            frames = self._pipe(**kwargs).frames
        write_clip(req.out_path, frames[0], plan.fps, None, None)
        return {"negative_prompt": kwargs["negative_prompt"], "has_audio": False}

    def close(self) -> None:
        self._pipe = self._i2v = None
