"""Deterministic procedural clips from prompt + seed, labelled synthetic (the default generator and test bed).

Sound items: visual flashes whose audio clicks coincide. Speech items: tones following a syllable envelope and a
drawn mouth that opens with it. Extended with TTS voices and controlled defects in later work.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mova_eval import media
from mova_eval.generators.base import Capabilities, Generator
from mova_eval.spec import GenRequest, GenResult


def _rng(req: GenRequest) -> np.random.Generator:
    digest = hashlib.sha256(f"{req.item.fingerprint()}|{req.seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class SyntheticGenerator(Generator):
    name = "synthetic"
    capabilities = Capabilities(modes=("t2va",))

    def identity(self) -> dict:
        return {"name": self.name, "version": "1", **{k: v for k, v in self.config.items() if k != "name"}}

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return [self._one(r) for r in requests]

    def _one(self, req: GenRequest) -> GenResult:
        cfg = self.config
        fps, dur = float(cfg.get("fps", 24)), float(cfg.get("duration", 4.0))
        w, h, sr = int(cfg.get("width", 320)), int(cfg.get("height", 240)), int(cfg.get("sample_rate", 16000))
        rng = _rng(req)
        n_frames, n_samples = int(round(dur * fps)), int(round(dur * sr))
        events = np.sort(rng.uniform(0.3, dur - 0.3, size=4))
        base = rng.integers(30, 120, size=3).astype(np.uint8)
        video = np.empty((n_frames, h, w, 3), dtype=np.uint8)
        video[:] = base
        t = np.arange(n_samples) / sr
        audio = 0.01 * rng.standard_normal(n_samples).astype(np.float32)
        for e in events:
            f0 = int(round(e * fps))
            video[f0 : f0 + 2] = 230
            s0 = int(round(e * sr))
            k = np.arange(min(n_samples - s0, int(0.08 * sr)))
            audio[s0 : s0 + len(k)] += (0.6 * np.exp(-k / (0.015 * sr)) * np.sin(2 * np.pi * 900 * k / sr)).astype(np.float32)
        if req.item.has_speech:
            env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)
            audio += (0.2 * env * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
        out = Path(req.out_path)
        media.encode(out, video, fps, np.clip(audio, -1, 1), sr)
        return GenResult(req.request_id, str(out), None, {"synthetic": True, "prompt": req.item.prompt})
