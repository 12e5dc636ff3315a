"""Cascades: any registered video generator followed by an audio stage (``_audio_stages``): video-to-audio
(MMAudio, HunyuanVideo-Foley) or text-to-audio (AudioLDM 2). ``generator=cascade`` (Wan2.1 + AudioLDM 2 by
default), ``generator=wan21_mmaudio`` (the paper's WAN2.1 + MMAudio row). Compose others with
``generator.video.name=ltx2 generator.audio.name=hunyuan_foley``.

The silent video is kept beside the clip (``<clip>.video.mp4`` + a record), so when only the audio stage fails
a re-run does not regenerate the video. The final clip copies the video stream and adds the new audio (AAC).
Docs: docs/generators/cascade.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, GenerationError, MovaEvalError
from mova_eval.frames import to_audio
from mova_eval.generators._audio_stages import STAGES
from mova_eval.generators.base import Capabilities, Generator, GeneratorSettings, ModelGenerator, Problem, fingerprint
from mova_eval.generators.settings import model, output
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult, Suite


def _stage_config(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A video stage's config: its packaged preset, then the overrides given under ``generator.video``."""
    from mova_eval.config import compose, group_options

    name = spec.get("name")
    if not name:
        raise ConfigError(f"generator.{kind}.name is required")
    base = compose([f"generator={name}"])["generator"] if name in group_options("generator") else {"name": name}
    return {**base, **{k: v for k, v in spec.items() if v is not None}}


@dataclass(frozen=True)
class CascadeSettings(GeneratorSettings):
    video: dict[str, Any] = model({"name": "wan21"}, "the video stage: a registered generator's name, then overrides "
                                                     "of its preset (the identity carries that stage's identity)")
    audio: dict[str, Any] = model({"name": "audioldm2"}, "the audio stage (audioldm2 | mmaudio | hunyuan_foley) and "
                                                         "its settings (the identity carries that stage's identity)")
    video_prompt: Literal["prompt", "video_prompt"] = output("prompt", "prompt | video_prompt (Verse-Bench's visual "
                                                                      "caption)")
    audio_prompt: Literal["audio", "prompt"] = output("audio", "audio (Verse-Bench audio_prompt entries, joined) | "
                                                                "prompt")
    seed: int = output(0, "audio seed = seed + the run's seed (the video stage has its own)")


class Cascade(ModelGenerator):
    name = "cascade"
    adapter_version = "1"
    Settings = CascadeSettings  # type: ignore[assignment]
    capabilities = Capabilities(modes=("t2va", "it2va"))

    def __init__(self, config: Mapping[str, Any], device: str = "cpu", context: RunContext | None = None):
        Generator.__init__(self, config, device, context)  # the cascade plans nothing itself: no ModelSettings
        self._load_error = None
        self._loaded = False
        from mova_eval.registry import get_generator_class

        self.video_cfg = _stage_config("video", self.settings.video)
        if self.video_cfg["name"] in ("cascade", self.name):
            raise ConfigError("a cascade's video stage cannot itself be a cascade")
        self.video_cls = get_generator_class(self.video_cfg["name"])
        if isinstance(self.video_cls, type) and issubclass(self.video_cls, Cascade):
            raise ConfigError("a cascade's video stage cannot itself be a cascade")
        self.video_cls.parse_settings(self.video_cfg, prefix="generator.video")  # typos named under generator.video
        self.video = self.video_cls(self.video_cfg, device=device, context=self.context)
        self.capabilities = self.video_cls.capabilities  # what the video stage can serve
        acfg = dict(self.settings.audio)
        if acfg.get("name") not in STAGES:
            raise ConfigError(f"generator.audio.name must be one of {sorted(STAGES)}; got {acfg.get('name')!r}")
        self.audio_cfg = acfg
        self.stage_cls = STAGES[acfg["name"]]
        self.stage = self.stage_cls(acfg, device, self.context)

    @classmethod
    def availability(cls, config: Mapping[str, Any]) -> Availability:
        try:
            self = cls(config)
        except MovaEvalError as e:
            return Availability(False, str(e))
        av = self.video_cls.availability(self.video_cfg)
        if not av.ok:
            return Availability(False, f"video stage {self.video_cfg['name']}: {av.reason}", av.command)
        av = self.stage_cls.ready(self.audio_cfg)
        return av if av.ok else Availability(False, f"audio stage {self.stage_cls.name}: {av.reason}", av.command)

    def fingerprints(self) -> dict[str, Any]:
        """A cascade's models are its two stages: their identities (each by the same rule) stand in."""
        return {"video": self.video.identity(), "audio": self.stage.identity()}

    def validate(self, suite: Suite, seeds: Sequence[int] | str | None = None, *, decode: bool | None = None,
                 audio_track: int | None = None) -> list[Problem]:
        """The video stage's problems (its availability, the items it cannot serve) and the audio stage's."""
        problems = list(self.video.validate(suite, seeds))
        av = self.stage_cls.ready(self.audio_cfg)
        if not av.ok:
            problems.append(Problem("unavailable", f"audio stage {self.stage_cls.name}: {av.reason}"
                                    + (f" (fix: {av.command})" if av.command else "")))
        return problems

    def _load(self) -> None:
        self.video.load()
        if isinstance(self.video, ModelGenerator) and self.video._load_error:
            raise GenerationError(f"video stage {self.video_cfg['name']}: {self.video._load_error}")
        self.stage.load()

    def _video_request(self, req: GenRequest) -> GenRequest:
        item = req.item
        if self.settings.video_prompt == "video_prompt" and item.video_prompt:
            from dataclasses import replace

            item = replace(item, prompt=item.video_prompt)
        out = Path(req.out_path) if req.out_path else None
        return GenRequest(**{**req.__dict__, "item": item,
                             "out_path": str(out.with_name(out.stem + ".video" + out.suffix)) if out else None})

    def audio_prompt(self, req: GenRequest) -> str:
        if self.settings.audio_prompt == "audio" and req.item.audio_prompts:
            return " ".join(p.strip() for p in req.item.audio_prompts if p.strip())
        return req.item.prompt

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        if self._load_error:
            return [GenResult(r.request_id, None, f"{self.name} is not available: {self._load_error}") for r in requests]
        return [self._cascade_one(r) for r in requests]

    def _cascade_one(self, req: GenRequest) -> GenResult:
        import time

        vreq = self._video_request(req)
        record = Path(vreq.out_path).with_suffix(".json")
        key = fingerprint(self.video.identity(), vreq.item.fingerprint(), vreq.seed, vreq.width, vreq.height, vreq.fps)
        t0 = time.perf_counter()
        prev = _read(record)
        if prev and prev.get("key") == key and Path(vreq.out_path).is_file():
            vprov, reused = prev["provenance"], True
        else:
            (vres,) = self.video.generate([vreq])
            if not vres.ok:
                return GenResult(req.request_id, None, f"video stage {self.video.name}: {vres.error}")
            vprov, reused = vres.provenance, False
            record.write_text(json.dumps({"key": key, "provenance": vprov}, default=str))
        t_video = time.perf_counter() - t0
        from mova_eval import media

        info = media.probe(vreq.out_path)
        duration = float(info.get("duration") or vprov.get("num_frames", 0) / max(vprov.get("fps", 1), 1))
        prompt = self.audio_prompt(req)
        seed = int(self.settings.seed) + req.seed
        t1 = time.perf_counter()
        try:
            audio, sr = self.stage.make(vreq.out_path, duration, prompt, seed)
            a = to_audio(audio)
            mux_audio(vreq.out_path, a, sr, req.out_path)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 — the video stays for the next run
            return GenResult(req.request_id, None, f"audio stage {self.stage.name}: {type(e).__name__}: {e}")
        prov = {"generator": self.name, "adapter_version": self.adapter_version, "video_stage": vprov,
                "video_stage_reused": reused, "audio_stage": {"name": self.stage.name, "kind": self.stage.kind,
                                                              "settings": self.stage.output_settings(),
                                                              "prompt_sent": prompt,
                                                              "seed": seed, "sample_rate": sr,
                                                              "checkpoint_hash": self.stage.checkpoint_hash},
                "prompt_sent": {"video": vprov.get("prompt_sent"), "audio": prompt}, "seed": seed, "run_seed": req.seed,
                "mode": vprov.get("mode"), "wall_time_s": round(time.perf_counter() - t0, 3),
                "video_wall_time_s": round(t_video, 3), "audio_wall_time_s": round(time.perf_counter() - t1, 3),
                "peak_gpu_memory_mb": vprov.get("peak_gpu_memory_mb")}
        return GenResult(req.request_id, str(req.out_path), None, prov)

    def close(self) -> None:
        self.video.close()


class Wan21MMAudio(Cascade):
    """The paper's cascaded baseline: Wan2.1 text-to-video, then MMAudio video-to-audio."""

    name = "wan21_mmaudio"


def mux_audio(video_path: str, audio, sample_rate: int, out_path: str) -> Path:
    """Copy the video stream of ``video_path`` and add ``audio`` (float [C, N]) as AAC; atomic write."""
    import av
    import numpy as np

    from mova_eval.media import _mux_audio

    out = Path(out_path)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    a = np.asarray(audio, dtype=np.float32)
    with av.open(str(video_path)) as src, av.open(str(tmp), mode="w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        astream = dst.add_stream("aac", rate=int(sample_rate))
        astream.layout = "mono" if a.shape[0] == 1 else "stereo"
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        _mux_audio(dst, astream, a, int(sample_rate), False)
    tmp.replace(out)
    return out


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
