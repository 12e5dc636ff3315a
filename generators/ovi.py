"""Ovi (character-ai/Ovi): twin-backbone joint video+audio, ``generator=ovi``. Driven through the repo's
``OviFusionEngine.generate`` (not on PyPI: install from the repo). Verse-Bench text reaches Ovi in its own prompt
format: the spoken line wrapped as ``<S>…<E>`` (replacing the quoted copy in the prompt) and the audio prompts
appended as ``<AUDCAP>…<ENDAUDCAP>``, as in Ovi's example prompts. Docs: docs/generators/ovi.md.
"""
from __future__ import annotations

from typing import Any

from mova_eval.generators._common import (ModelGenerator, Plan, call_factory, checkpoint_fingerprint, require,
                                          speech_tagged, write_clip)
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest

INSTALL = ("git clone https://github.com/character-ai/Ovi && pip install -r Ovi/requirements.txt && "
           "export PYTHONPATH=$PWD/Ovi:$PYTHONPATH   (not on PyPI; weights: python Ovi/download_weights.py)")
ENGINE_KEYS = ("model_name", "sample_steps", "solver_name", "shift", "audio_guidance_scale", "video_guidance_scale",
               "slg_layer", "video_negative_prompt", "audio_negative_prompt", "cpu_offload", "fp8", "seed")


class Ovi(ModelGenerator):
    name = "ovi"
    adapter_version = "1"
    requires = (("ovi", INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"), max_duration_s=10.05, fps=(24.0,))

    def sampler_settings(self) -> dict[str, Any]:
        keys = ("width", "height", "num_frames", "fps", "prompt_format", *ENGINE_KEYS)
        return {k: self.config.get(k) for k in keys if k in self.config}

    def checkpoint_ref(self) -> str | None:
        return self.config.get("ckpt_dir")

    def format_prompt(self, req: GenRequest) -> str:
        item = req.item
        if self.config.get("prompt_format", "ovi") != "ovi":
            return item.prompt
        text = speech_tagged(item.prompt, item.speech_text, "<S>", "<E>")
        audio = " ".join(a.strip().rstrip(".") + "." for a in item.audio_prompts if a.strip())
        return f"{text.rstrip()} <AUDCAP>{audio}<ENDAUDCAP>" if audio else text

    def _load(self) -> None:
        import torch

        cfg = self.config
        if cfg.get("engine_factory"):  # a stand-in with OviFusionEngine's generate() signature
            self.engine = call_factory(cfg["engine_factory"])
            return
        require("ovi.ovi_fusion_engine", "Ovi", INSTALL)
        from omegaconf import OmegaConf
        from ovi.ovi_fusion_engine import OviFusionEngine

        from mova_eval.generators._common import resolve_checkpoint

        ckpt = resolve_checkpoint(cfg.get("ckpt_dir"), "Ovi", "python Ovi/download_weights.py --output-dir ./ckpts")
        self._ckpt_hash = checkpoint_fingerprint(ckpt)
        engine_cfg = OmegaConf.create({**{k: cfg[k] for k in ENGINE_KEYS if k in cfg}, "ckpt_dir": str(ckpt),
                                       "mode": "t2v"})  # generate() switches to i2v when given an image
        device = 0 if self.device.startswith("cuda") else self.device
        self.engine = OviFusionEngine(config=engine_cfg, device=device, target_dtype=torch.bfloat16)

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        cfg = self.config
        video, audio, _image = self.engine.generate(
            text_prompt=plan.prompt, image_path=plan.first_frame, video_frame_height_width=[plan.height, plan.width],
            seed=plan.seed, solver_name=cfg.get("solver_name", "unipc"), sample_steps=int(cfg.get("sample_steps", 50)),
            shift=float(cfg.get("shift", 5.0)), video_guidance_scale=float(cfg.get("video_guidance_scale", 4.0)),
            audio_guidance_scale=float(cfg.get("audio_guidance_scale", 3.0)), slg_layer=int(cfg.get("slg_layer", 11)),
            video_negative_prompt=cfg.get("video_negative_prompt", ""),
            audio_negative_prompt=cfg.get("audio_negative_prompt", ""))
        sr = int(cfg.get("audio_sample_rate", 16000))
        write_clip(req.out_path, video, plan.fps, audio, sr)
        return {"audio_sample_rate": sr}
