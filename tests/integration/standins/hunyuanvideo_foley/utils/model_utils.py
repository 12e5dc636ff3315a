"""``load_model`` and ``denoise_process`` with upstream's signatures. The "model" is a tone at the DAC's 48 kHz
whose loudness follows the brightness of the video frames, plus a little seeded noise from the global torch RNG
(upstream draws its initial latents there too), returned as upstream does: float tensor [batch, 1, samples]."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from hunyuanvideo_foley import CALLS


def load_model(model_path, config_path, device, enable_offload=False, model_size=None):
    CALLS.append(("load_model", dict(model_path=model_path, config_path=config_path, device=device)))
    if not Path(model_path).is_dir():
        raise FileNotFoundError(f"model weights dir {model_path} not found")
    text_length = int(Path(config_path).read_text().split("text_length:")[1].split()[0])  # a YAML key upstream reads
    cfg = SimpleNamespace(model_config=SimpleNamespace(model_kwargs=SimpleNamespace(text_length=text_length)))
    model_dict = SimpleNamespace(device=device, sample_rate=48000)
    return model_dict, cfg


def denoise_process(visual_feats, text_feats, audio_len_in_s, model_dict, cfg, guidance_scale=4.5,
                    num_inference_steps=50, batch_size=1):
    import torch

    CALLS.append(("denoise_process", dict(audio_len_in_s=audio_len_in_s, guidance_scale=guidance_scale,
                                          num_inference_steps=num_inference_steps, batch_size=batch_size,
                                          device_type=model_dict.device.type)))  # upstream autocasts on device.type
    if os.environ.get("FOLEY_STANDIN_FAIL"):
        raise RuntimeError("injected denoise failure")
    sr = model_dict.sample_rate
    n = int(audio_len_in_s * sr)
    level = visual_feats.brightness
    env = level.repeat_interleave(-(-n // len(level)))[:n]
    t = torch.arange(n, dtype=torch.float32) / sr
    audio = 0.5 * env * torch.sin(2 * torch.pi * 440 * t) + 1e-3 * torch.randn(n)
    return audio.reshape(1, 1, n).repeat(batch_size, 1, 1), sr
