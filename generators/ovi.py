"""Ovi (character-ai/Ovi): twin-backbone joint video+audio, ``generator=ovi``. Driven through the repo's
``OviFusionEngine.generate`` (not on PyPI: install from the repo). Verse-Bench text reaches Ovi in its own prompt
format: the spoken line wrapped as ``<S>…<E>`` (replacing the quoted copy in the prompt) and the audio prompts
appended as ``<AUDCAP>…<ENDAUDCAP>``, as in Ovi's example prompts. Docs: docs/generators/ovi.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mova_eval.frames import write_clip
from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings, Plan
from mova_eval.generators.checkpoints import call_factory, require, resolve_checkpoint
from mova_eval.generators.prompts import speech_tagged
from mova_eval.generators.settings import model, output, runtime
from mova_eval.spec import GenRequest

INSTALL = ("git clone https://github.com/character-ai/Ovi && pip install -r Ovi/requirements.txt && "
           "export PYTHONPATH=$PWD/Ovi:$PYTHONPATH   (not on PyPI; weights: python Ovi/download_weights.py)")
ENGINE_KEYS = ("model_name", "sample_steps", "solver_name", "shift", "audio_guidance_scale", "video_guidance_scale",
               "slg_layer", "video_negative_prompt", "audio_negative_prompt", "cpu_offload", "fp8", "seed")


@dataclass(frozen=True)
class OviSettings(ModelSettings):
    """ovi/configs/inference/inference_fusion.yaml's settings."""

    ckpt_dir: str | None = model("./ckpts", "where Ovi/download_weights.py put the weights")
    engine_factory: str | None = model(None, '"module:callable" returning an engine (tests)')
    model_name: str = output("720x720_5s", "Ovi 1.0; 960x960_5s / 960x960_10s for Ovi 1.1")
    width: int | None = output(720)
    height: int | None = output(720)
    num_frames: int | None = output(121, "5 s at 24 fps (the engine decides the length from model_name)")
    fps: float | None = output(24.0)
    sample_steps: int = output(50)
    solver_name: str = output("unipc")
    shift: float = output(5.0)
    video_guidance_scale: float = output(4.0)
    audio_guidance_scale: float = output(3.0)
    slg_layer: int = output(11)
    video_negative_prompt: str = output("jitter, bad hands, blur, distortion")
    audio_negative_prompt: str = output("robotic, muffled, echo, distorted")
    audio_sample_rate: int = output(16000, "the rate the engine's audio is written at")
    seed: int = output(103, "Ovi's config seed")
    prompt_format: Literal["ovi", "plain"] = output("ovi", "ovi: <S>speech<E> and <AUDCAP>audio<ENDAUDCAP> tags")
    fp8: bool = output(False, "fp8 weights (changes the numerics)")
    cpu_offload: bool = runtime(False)


class Ovi(ModelGenerator):
    name = "ovi"
    adapter_version = "1"
    Settings = OviSettings
    requires = (("ovi", INSTALL),)
    capabilities = Capabilities(modes=("t2va", "it2va"), max_duration_s=10.05, fps=(24.0,))

    def checkpoint_ref(self) -> str | None:
        return self.settings.ckpt_dir

    def format_prompt(self, req: GenRequest) -> str:
        item = req.item
        if self.settings.prompt_format != "ovi":
            return item.prompt
        text = speech_tagged(item.prompt, item.speech_text, "<S>", "<E>")
        audio = " ".join(a.strip().rstrip(".") + "." for a in item.audio_prompts if a.strip())
        return f"{text.rstrip()} <AUDCAP>{audio}<ENDAUDCAP>" if audio else text

    def _load(self) -> None:
        import torch

        s = self.settings
        if s.engine_factory:  # a stand-in with OviFusionEngine's generate() signature
            self.engine = call_factory(s.engine_factory)
            return
        require("ovi.ovi_fusion_engine", "Ovi", INSTALL)
        from omegaconf import OmegaConf
        from ovi.ovi_fusion_engine import OviFusionEngine

        ckpt = resolve_checkpoint(s.ckpt_dir, "Ovi", "python Ovi/download_weights.py --output-dir ./ckpts",
                                  offline=self.context.offline)
        self.record_fingerprint("ckpt_dir", ckpt)
        engine_cfg = OmegaConf.create({**{k: getattr(s, k) for k in ENGINE_KEYS}, "ckpt_dir": str(ckpt),
                                       "mode": "t2v"})  # generate() switches to i2v when given an image
        device = 0 if self.device.startswith("cuda") else self.device
        self.engine = OviFusionEngine(config=engine_cfg, device=device, target_dtype=torch.bfloat16)

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        video, audio, _image = self.engine.generate(
            text_prompt=plan.prompt, image_path=plan.first_frame, video_frame_height_width=[plan.height, plan.width],
            seed=plan.seed, solver_name=s.solver_name, sample_steps=s.sample_steps, shift=s.shift,
            video_guidance_scale=s.video_guidance_scale, audio_guidance_scale=s.audio_guidance_scale,
            slg_layer=s.slg_layer, video_negative_prompt=s.video_negative_prompt,
            audio_negative_prompt=s.audio_negative_prompt)
        sr = s.audio_sample_rate
        write_clip(req.out_path, video, plan.fps, audio, sr)
        return {"audio_sample_rate": sr}
