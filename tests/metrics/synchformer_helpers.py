"""Seeded random Synchformer weights in the official layout, and synthetic clips long enough for DeSync."""
from __future__ import annotations

import numpy as np

_TOKENS = ("cls_token", "pos_embed", "temp_embed", "distillation_token", "position_embeddings", "OFF_tok", "MOD_tok",
           "pos_emb")


def random_state(cfg=None, seed: int = 0) -> dict:
    """A state_dict for :class:`Synchformer` with every tensor random (LayerNorm gains near 1, weights scaled by
    fan-in, learned tokens and positions of order 0.5) so that no stage is an identity or a constant."""
    import torch

    from mova_eval.metrics.features.synchformer import Synchformer, SynchformerConfig

    net = Synchformer(cfg or SynchformerConfig())
    norms = {n for n, m in net.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in net.state_dict().items():
        owner, _, leaf = k.rpartition(".")
        r = torch.randn(v.shape, generator=g)
        if leaf in _TOKENS:
            t = 0.5 * r
        elif owner in norms:
            t = 1.0 + 0.1 * r if leaf == "weight" else 0.05 * r
        elif v.dim() == 1:
            t = 0.05 * r
        else:
            t = r / np.sqrt(v[0].numel())
        out[k] = t.to(v.dtype).contiguous()
    if "transformer.off_head.weight" in out:
        out["transformer.off_head.weight"] *= 4.0  # peaked but not one-hot offset distributions
    return out


def save_random(path, cfg=None, seed: int = 0):
    import torch

    torch.save(random_state(cfg, seed), path)
    return path


def synthetic_av(seconds: float, fps: float = 25.0, size=(352, 640), sr: int = 16_000, seed: int = 0,
                 audio_delay_s: float = 0.0):
    """(frames uint8 [T,H,W,3], audio float32 [1, N]): a moving textured square that flashes at beeps.
    ``audio_delay_s`` shifts the beeps relative to the flashes."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    h, w = size
    base = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    frames = np.empty((n, h, w, 3), np.uint8)
    events = np.arange(0.3, seconds, 0.7)
    for k in range(n):
        f = base.copy()
        x = int((k * 7) % (w - 96))
        y = int(h / 2 - 48 + 40 * np.sin(k / 9))
        on = np.any(np.abs(k / fps - events) < 0.06)
        f[y : y + 96, x : x + 96] = 255 if on else 40
        frames[k] = f
    t = np.arange(int(round(seconds * sr))) / sr
    audio = 0.01 * rng.standard_normal(t.size)
    for e in events + audio_delay_s:
        m = np.abs(t - e) < 0.06
        audio[m] += 0.5 * np.sin(2 * np.pi * 880 * t[m])
    return frames, audio.astype(np.float32)[None]
