"""Audio stages for the ``cascade`` generator: video-to-audio (MMAudio, HunyuanVideo-Foley) and text-to-audio
(AudioLDM 2 through diffusers). Each takes the silent clip the video stage made (and its prompt) and returns
float audio [C, N] with its sample rate. Packages that are not on PyPI are imported from their repos' installs;
the error names the install command.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

from mova_eval.context import RunContext
from mova_eval.generators._diffusers import DIFFUSERS_INSTALL, diffusers_weights_ready, load_pipeline, torch_generator
from mova_eval.generators.checkpoints import call_factory, checkpoint_fingerprint, require
from mova_eval.generators.settings import MODEL, Settings, check_declared, model, output, parse, plain, runtime
from mova_eval.metrics.base import Availability

MMAUDIO_INSTALL = "pip install git+https://github.com/hkchengrex/MMAudio   (not on PyPI; needs torchaudio)"
FOLEY_INSTALL = ("git clone https://github.com/Tencent-Hunyuan/HunyuanVideo-Foley && pip install -e ./HunyuanVideo-Foley"
                 "   (not on PyPI; weights: huggingface-cli download tencent/HunyuanVideo-Foley)")


@dataclass(frozen=True)
class StageSettings(Settings):
    """Keys every audio stage accepts under ``generator.audio``; each stage adds its published settings."""

    name: str = runtime("", "the stage: audioldm2 | mmaudio | hunyuan_foley")
    pipeline_factory: str | None = model(None, '"module:callable" standing in for the model (tests)')
    offload: Literal["none", "cpu", "group"] = runtime("none")


class AudioStage:
    """One audio stage. Its typed ``Settings`` follow the generators' rule (output / runtime / model fields); a
    null value means the stage's own default, so switching ``generator.audio.name`` never carries another
    stage's sampler settings along."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "v2a" (sees the video) or "t2a" (text only)
    package: ClassVar[str]
    install: ClassVar[str]
    Settings: ClassVar[type[StageSettings]] = StageSettings

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        check_declared(cls.Settings)

    def __init__(self, config: Mapping[str, Any], device: str, context: RunContext | None = None):
        self.settings = self.parse(config)
        self.config = self.settings.as_dict()
        self.device = device
        self.context: RunContext = context if context is not None else RunContext.from_env(device=device)
        self.checkpoint_hash: str | None = None

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> Any:
        """Typed settings; ConfigError names ``generator.audio.<key>`` and the stage's known keys."""
        given = {k: v for k, v in config.items() if v is not None}
        return parse(cls.Settings, given, prefix="generator.audio", owner=f"audio stage {cls.name!r}")

    @classmethod
    def ready(cls, config: Mapping[str, Any]) -> Availability:
        """Package and weights present (for `mova-eval ls`), without loading anything."""
        import importlib.util

        s = cls.parse(config)
        if s.pipeline_factory:
            return Availability(True)
        if importlib.util.find_spec(cls.package) is None:
            return Availability(False, f"the package {cls.package!r} is not installed", cls.install)
        return cls._weights_ready(s)

    @classmethod
    def _weights_ready(cls, settings: Any) -> Availability:
        return Availability(True)

    def load(self) -> None:
        raise NotImplementedError

    def make(self, video_path: str, duration_s: float, prompt: str, seed: int) -> tuple[Any, int]:
        raise NotImplementedError

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the audio (nulls — the stage's own defaults — left out)."""
        return {k: v for k, v in self.settings.output_values().items() if v is not None}

    def identity(self) -> dict[str, Any]:
        """Same rule as ``Generator.identity``: name, output settings, and the model fields' fingerprint (the
        checkpoint hash once loaded, else the configured values)."""
        models = {k: plain(getattr(self.settings, k)) for k in self.Settings.fields_by_role(MODEL)}
        return {"name": self.name, "settings": self.output_settings(),
                "models": {"checkpoint_hash": self.checkpoint_hash} if self.checkpoint_hash else models}


@dataclass(frozen=True)
class AudioLDM2Settings(StageSettings):
    model_id: str = output("cvssp/audioldm2", "Hugging Face id")
    checkpoint: str | None = model(None, "a local diffusers folder; null = model_id")
    num_inference_steps: int = output(200)
    guidance_scale: float = output(3.5)
    negative_prompt: str = output("Low quality.")
    dtype: str = output("float16")


@dataclass(frozen=True)
class MMAudioSettings(StageSettings):
    variant: str = output("large_44k_v2", "MMAudio's released model (weights found by variant)")
    num_steps: int = output(25)
    cfg_strength: float = output(4.5)
    negative_prompt: str = output("")
    dtype: str = output("bfloat16")


@dataclass(frozen=True)
class FoleySettings(StageSettings):
    checkpoint: str = model("tencent/HunyuanVideo-Foley", "a local folder or the Hugging Face id")
    config_path: str | None = model(None, "the model config yaml in its repo, e.g. configs/hunyuanvideo-foley-xxl.yaml")
    num_inference_steps: int = output(50)
    guidance_scale: float = output(4.5)
    negative_prompt: str | None = output(None, "null = upstream's default negative prompt")


class AudioLDM2(AudioStage):
    """Text-to-audio; published sampling: 200 steps, guidance 3.5, negative prompt "Low quality."."""

    name, kind, package, install = "audioldm2", "t2a", "diffusers", DIFFUSERS_INSTALL
    Settings = AudioLDM2Settings

    @classmethod
    def _weights_ready(cls, s: AudioLDM2Settings) -> Availability:
        return diffusers_weights_ready(s.model_id, s.checkpoint, s.pipeline_factory)

    def load(self) -> None:
        s = self.settings
        self.pipe, path = load_pipeline("AudioLDM2Pipeline", model_id=s.model_id, checkpoint=s.checkpoint,
                                        pipeline_factory=s.pipeline_factory, dtype=s.dtype, offload=s.offload,
                                        device=self.device, what="AudioLDM 2",
                                        offline=self.context.offline)
        self.checkpoint_hash = checkpoint_fingerprint(path) if path is not None else None
        lm = self.pipe.language_model
        if not hasattr(lm, "_update_model_kwargs_for_generation"):
            # transformers 5 dropped GenerationMixin from bare models like GPT2Model; diffusers' AudioLDM 2 loop
            # still calls this one helper after each step. Give this instance the helper's behaviour for that loop.
            lm._update_model_kwargs_for_generation = _next_step_kwargs

    def make(self, video_path, duration_s, prompt, seed):
        cfg = self.config
        out = self.pipe(prompt, negative_prompt=cfg.get("negative_prompt") or None, audio_length_in_s=float(duration_s),
                        num_inference_steps=int(cfg.get("num_inference_steps", 200)),
                        guidance_scale=float(cfg.get("guidance_scale", 3.5)), generator=torch_generator(self.device, seed))
        return out.audios[0], int(self.pipe.vocoder.config.sampling_rate)


def _next_step_kwargs(outputs, model_kwargs, **_):
    """What AudioLDM 2's language-model loop needs between steps (diffusers ``generate_language_model``): carry the
    key/value cache the forward pass returned, and extend the 2-D attention mask by the one position just appended
    (the next step feeds only that position, at the cache's length). Matches a cache-free recompute (test)."""
    import torch

    cache = getattr(outputs, "past_key_values", None)
    if cache is not None:
        model_kwargs["past_key_values"] = cache
    mask = model_kwargs.get("attention_mask")
    if mask is not None:
        model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
    return model_kwargs


class MMAudio(AudioStage):
    """Video(+text)-to-audio (hkchengrex/MMAudio). Published demo settings: large_44k_v2, 25 Euler steps,
    cfg_strength 4.5, 8 s."""

    name, kind, package, install = "mmaudio", "v2a", "mmaudio", MMAUDIO_INSTALL
    Settings = MMAudioSettings

    def load(self) -> None:
        import torch

        if self.config.get("pipeline_factory"):  # a stand-in with make()'s signature
            self.impl = call_factory(self.config["pipeline_factory"])
            self.checkpoint_hash = None
            return
        eu = require("mmaudio.eval_utils", "MMAudio", MMAUDIO_INSTALL)
        from mmaudio.model.flow_matching import FlowMatching
        from mmaudio.model.networks import get_my_mmaudio
        from mmaudio.model.utils.features_utils import FeaturesUtils

        self.eu, self.FlowMatching = eu, FlowMatching
        mcfg = eu.all_model_cfg[self.config.get("variant", "large_44k_v2")]
        mcfg.download_if_needed()
        dtype = getattr(torch, self.config.get("dtype", "bfloat16"))
        self.net = get_my_mmaudio(mcfg.model_name).to(self.device, dtype).eval()
        self.net.load_weights(torch.load(mcfg.model_path, map_location=self.device, weights_only=True))
        self.features = FeaturesUtils(tod_vae_ckpt=mcfg.vae_path, synchformer_ckpt=mcfg.synchformer_ckpt,
                                      enable_conditions=True, mode=mcfg.mode, bigvgan_vocoder_ckpt=mcfg.bigvgan_16k_path,
                                      need_vae_encoder=False).to(self.device, dtype).eval()
        self.seq_cfg = mcfg.seq_cfg
        self.checkpoint_hash = checkpoint_fingerprint(mcfg.model_path)
        self.impl = None

    def make(self, video_path, duration_s, prompt, seed):
        if self.impl is not None:
            return self.impl(video_path, duration_s, prompt, seed)
        import torch

        cfg = self.config
        info = self.eu.load_video(video_path, float(duration_s))
        self.seq_cfg.duration = info.duration_sec
        self.net.update_seq_lengths(self.seq_cfg.latent_seq_len, self.seq_cfg.clip_seq_len, self.seq_cfg.sync_seq_len)
        rng = torch.Generator(device=self.device).manual_seed(int(seed))
        fm = self.FlowMatching(min_sigma=0, inference_mode="euler", num_steps=int(cfg.get("num_steps", 25)))
        with torch.inference_mode():
            audio = self.eu.generate(info.clip_frames.unsqueeze(0), info.sync_frames.unsqueeze(0), [prompt],
                                     negative_text=[cfg.get("negative_prompt") or ""], feature_utils=self.features,
                                     net=self.net, fm=fm, rng=rng, cfg_strength=float(cfg.get("cfg_strength", 4.5)))
        return audio.float().cpu()[0], int(self.seq_cfg.sampling_rate)


class HunyuanFoley(AudioStage):
    """Video(+text)-to-audio (Tencent-Hunyuan/HunyuanVideo-Foley). Published: 50 steps, guidance 4.5, 48 kHz."""

    name, kind, package, install = "hunyuan_foley", "v2a", "hunyuanvideo_foley", FOLEY_INSTALL
    Settings = FoleySettings

    @classmethod
    def _weights_ready(cls, s: FoleySettings) -> Availability:
        from mova_eval.generators.checkpoints import weights_ready

        return weights_ready(s.checkpoint, "huggingface-cli download tencent/HunyuanVideo-Foley")

    def load(self) -> None:
        if self.config.get("pipeline_factory"):
            self.impl = call_factory(self.config["pipeline_factory"])
            self.checkpoint_hash = None
            return
        mu = require("hunyuanvideo_foley.utils.model_utils", "HunyuanVideo-Foley", FOLEY_INSTALL)
        from hunyuanvideo_foley.utils.feature_utils import feature_process

        from mova_eval.generators.checkpoints import resolve_checkpoint

        ckpt = resolve_checkpoint(self.config.get("checkpoint") or "tencent/HunyuanVideo-Foley", "HunyuanVideo-Foley",
                                  "huggingface-cli download tencent/HunyuanVideo-Foley", offline=self.context.offline)
        if not self.config.get("config_path"):
            from mova_eval.errors import ConfigError

            raise ConfigError("hunyuan_foley needs generator.audio.config_path (the model config yaml in its repo, "
                              "e.g. configs/hunyuanvideo-foley-xxl.yaml)")
        import torch

        # upstream keeps this device in its model dict and autocasts on its ``.type``: a torch.device, not a str
        self.model_dict, self.cfg = mu.load_model(str(ckpt), self.config["config_path"], torch.device(self.device))
        self.feature_process, self.denoise = feature_process, mu.denoise_process
        self.checkpoint_hash = checkpoint_fingerprint(ckpt)
        self.impl = None

    def make(self, video_path, duration_s, prompt, seed):
        if self.impl is not None:
            return self.impl(video_path, duration_s, prompt, seed)
        import torch

        torch.manual_seed(int(seed))
        visual, text, seconds = self.feature_process(video_path, prompt, self.model_dict, self.cfg,
                                                     neg_prompt=self.config.get("negative_prompt"))
        audio, sr = self.denoise(visual, text, seconds, self.model_dict, self.cfg,
                                 guidance_scale=float(self.config.get("guidance_scale", 4.5)),
                                 num_inference_steps=int(self.config.get("num_inference_steps", 50)))
        return audio, int(sr)


STAGES: dict[str, type[AudioStage]] = {c.name: c for c in (AudioLDM2, MMAudio, HunyuanFoley)}
