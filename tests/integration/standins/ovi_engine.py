"""OviFusionEngine.generate's signature and output layout (video [3, T, H, W] in [-1, 1], audio [N] at 16 kHz)."""
from __future__ import annotations

import numpy as np


class FakeOviEngine:
    calls: list[dict] = []

    def generate(self, text_prompt, image_path=None, video_frame_height_width=None, seed=100, solver_name="unipc",
                 sample_steps=50, shift=5.0, video_guidance_scale=5.0, audio_guidance_scale=4.0, slg_layer=9,
                 video_negative_prompt="", audio_negative_prompt=""):
        FakeOviEngine.calls.append(dict(locals(), self=None))
        h, w = video_frame_height_width
        rng = np.random.default_rng(seed)
        video = rng.uniform(-1, 1, size=(3, 121, h, w)).astype(np.float32) * 0.1
        audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(5 * 16000) / 16000)).astype(np.float32)
        return video, audio, None


def make():
    return FakeOviEngine()
