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
from pathlib import Path
from typing import Any, Mapping

from mova_eval.errors import ConfigError, GenerationError
from mova_eval.generators._audio_stages import STAGES
from mova_eval.generators._common import ModelGenerator, fingerprint, to_audio
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest, GenResult


def _stage_config(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A video stage's config: its packaged preset, then the overrides given under ``generator.video``."""
    from mova_eval.config import compose, group_options

    name = spec.get("name")
    if not name:
        raise ConfigError(f"generator.{kind}.name is required")
    base = compose([f"generator={name}"])["generator"] if name in group_options("generator") else {"name": name}
    return {**base, **{k: v for k, v in spec.items() if v is not None}}


class Cascade(ModelGenerator):
    name = "cascade"
    adapter_version = "1"
    capabilities = Capabilities(modes=("t2va", "it2va"))

    def __init__(self, config: Mapping[str, Any], device: str = "cpu"):
        super().__init__(config, device)
        from mova_eval.registry import get_generator_class

        self.video_cfg = _stage_config("video", self.config.get("video") or {})
        if self.video_cfg["name"] in ("cascade", self.name):
            raise ConfigError("a cascade's video stage cannot itself be a cascade")
        self.video_cls = get_generator_class(self.video_cfg["name"])
        self.capabilities = self.video_cls.capabilities  # what the video stage can serve
        acfg = dict(self.config.get("audio") or {})
        if acfg.get("name") not in STAGES:
            raise ConfigError(f"generator.audio.name must be one of {sorted(STAGES)}; got {acfg.get('name')!r}")
        self.audio_cfg = acfg
        self.stage_cls = STAGES[acfg["name"]]

    @classmethod
    def availability(cls, config):
        try:
            self = cls(config)
        except Exception as e:  # noqa: BLE001
            return False, str(e), None
        ok, reason, cmd = self.video_cls.availability(self.video_cfg)
        if not ok:
            return False, f"video stage {self.video_cfg['name']}: {reason}", cmd
        ok, reason, cmd = self.stage_cls.ready(self.audio_cfg)
        return (True, "", None) if ok else (False, f"audio stage {self.stage_cls.name}: {reason}", cmd)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "adapter_version": self.adapter_version,
                "video": self.video.identity() if self._loaded and self.video else self.video_cfg,
                "audio": {"name": self.stage_cls.name, **self.stage.settings()} if self._loaded and self.stage
                else self.audio_cfg, "audio_checkpoint_hash": getattr(getattr(self, "stage", None), "checkpoint_hash", None),
                "prompts": {"video": self.config.get("video_prompt", "prompt"), "audio": self.config.get("audio_prompt", "audio")},
                "seed": self.config.get("seed", 0)}

    def validate(self, suite) -> list[str]:
        video = self.video_cls(self.video_cfg)
        return video.validate(suite) if hasattr(video, "validate") else []

    def sampler_settings(self) -> dict[str, Any]:
        return {"video": self.video_cfg, "audio": self.audio_cfg}

    def _load(self) -> None:
        self.video = self.stage = None
        self.video = self.video_cls(self.video_cfg, device=self.device)
        self.video.load()
        if getattr(self.video, "_load_error", None):
            raise GenerationError(f"video stage {self.video_cfg['name']}: {self.video._load_error}")
        self.stage = self.stage_cls(self.audio_cfg, self.device)
        self.stage.load()

    def _video_request(self, req: GenRequest) -> GenRequest:
        item = req.item
        if self.config.get("video_prompt", "prompt") == "video_prompt" and item.video_prompt:
            from dataclasses import replace

            item = replace(item, prompt=item.video_prompt)
        out = Path(req.out_path) if req.out_path else None
        return GenRequest(**{**req.__dict__, "item": item,
                             "out_path": str(out.with_name(out.stem + ".video" + out.suffix)) if out else None})

    def audio_prompt(self, req: GenRequest) -> str:
        if self.config.get("audio_prompt", "audio") == "audio" and req.item.audio_prompts:
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
        seed = int(self.config.get("seed", 0) or 0) + req.seed
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
                                                              "settings": self.stage.settings(), "prompt_sent": prompt,
                                                              "seed": seed, "sample_rate": sr,
                                                              "checkpoint_hash": getattr(self.stage, "checkpoint_hash", None)},
                "prompt_sent": {"video": vprov.get("prompt_sent"), "audio": prompt}, "seed": seed, "run_seed": req.seed,
                "mode": vprov.get("mode"), "wall_time_s": round(time.perf_counter() - t0, 3),
                "video_wall_time_s": round(t_video, 3), "audio_wall_time_s": round(time.perf_counter() - t1, 3),
                "peak_gpu_memory_mb": vprov.get("peak_gpu_memory_mb")}
        return GenResult(req.request_id, str(req.out_path), None, prov)

    def close(self) -> None:
        if getattr(self, "video", None) is not None:
            self.video.close()
        self.video = self.stage = None


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
