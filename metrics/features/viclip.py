"""ViCLIP (Wang et al. 2023, InternVid): a CLIP ViT-L/14 that reads 8 frames at once, and CLIP-L's text tower, in the
official checkpoint's key layout.

Written from the published architecture (OpenGVLab/InternVideo ``Data/InternVid/viclip/viclip.py``,
``viclip_vision.py``, ``viclip_text.py``, Apache-2.0; VBench and VABench vendor the same files as
``third_party/ViCLIP``). Key layout of ``ViClip-InternVid-10M-FLT.pth`` (loaded from its ``['model']`` entry, strictly):

* ``vision_encoder.``: ``conv1.weight`` — a bias-free **Conv3d** with kernel and stride (1, 14, 14), so each frame is
  patched on its own; ``class_embedding``; ``positional_embedding`` (257, 1024), spatial, shared by the frames;
  ``temporal_positional_embedding`` (1, 8, 1024), added to every patch token of frame t (not to the class token);
  ``ln_pre``; 24 pre-LN blocks (width 1024, 16 heads, QuickGELU) under ``transformer.resblocks.N`` with CLIP's names;
  ``ln_post`` on the one class token; ``proj`` (1024, 768). The sequence is one class token followed by the
  256 × 8 patch tokens, all attending to each other (joint space–time attention).
* ``text_encoder.``: CLIP-L's text tower (width 768, 12 heads, 12 layers, causal mask) with a **32-token context**
  (``max_txt_l``: ``positional_embedding`` is (32, 768)); the end-of-text token (``argmax(ids)``) ``@
  text_projection`` (768, 768).
* ``temp``: the contrastive temperature (unused by the score).

Inference quirks of the reference kept here: ``encode_vision(test=True)`` (without ``test`` the reference masks 90 % of
the patch tokens at random); a single frame gets the mean of the temporal embedding (the reference's workaround);
drop-path and dropout are off (its towers are built in ``eval()`` mode). The blocks are the ones of
:mod:`.clip_vit` (batch-first, ``scaled_dot_product_attention``): token order does not change the class token's
output, so the reference's space-major order of patch tokens is not reproduced.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from mova_eval.metrics.features.clip_vit import _Transformer


@dataclass(frozen=True)
class ViClipConfig:
    image: int = 224
    patch: int = 14
    frames: int = 8
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    embed: int = 768
    context: int = 32
    vocab: int = 49408
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12


VICLIP_L14 = ViClipConfig()


class _VideoTower(nn.Module):
    def __init__(self, c: ViClipConfig):
        super().__init__()
        w = c.vision_width
        self.conv1 = nn.Conv3d(3, w, (1, c.patch, c.patch), (1, c.patch, c.patch), bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn((c.image // c.patch) ** 2 + 1, w) * w ** -0.5)
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, c.frames, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = _Transformer(w, c.vision_layers, c.vision_heads)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, c.embed) * w ** -0.5)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] → [B, T·N, width] patch tokens with spatial and temporal embeddings (frame-major)."""
        b, t = x.shape[:2]
        x = self.conv1(x.permute(0, 2, 1, 3, 4))  # [B, width, T, g, g]
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, -1, x.shape[1])  # [B, T, N, width]
        x = x + self.positional_embedding[1:].to(x.dtype)
        temporal = self.temporal_positional_embedding
        if t == 1:
            temporal = temporal.mean(1, keepdim=True)
        elif t != temporal.shape[1]:
            raise ValueError(f"ViCLIP reads {temporal.shape[1]} frames (its temporal embedding), got {t}")
        x = x + temporal[0, :, None, :].to(x.dtype)
        return x.reshape(b, -1, x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_tokens(x)
        cls = (self.class_embedding + self.positional_embedding[0]).to(tokens.dtype)
        seq = torch.cat([cls.expand(tokens.shape[0], 1, -1), tokens], dim=1)
        seq = self.transformer(self.ln_pre(seq))
        return self.ln_post(seq[:, 0]) @ self.proj


class _TextTower(nn.Module):
    def __init__(self, c: ViClipConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab, c.text_width)
        self.positional_embedding = nn.Parameter(torch.randn(c.context, c.text_width) * 0.01)
        self.transformer = _Transformer(c.text_width, c.text_layers, c.text_heads)
        self.ln_final = nn.LayerNorm(c.text_width)
        self.text_projection = nn.Parameter(torch.randn(c.text_width, c.embed) * c.text_width ** -0.5)
        self.register_buffer("attn_mask", torch.full((c.context, c.context), float("-inf")).triu_(1),
                             persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask.to(x.dtype)))
        return x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)] @ self.text_projection


class ViClip(nn.Module):
    def __init__(self, cfg: ViClipConfig = VICLIP_L14):
        super().__init__()
        self.cfg = cfg
        self.vision_encoder = _VideoTower(cfg)
        self.text_encoder = _TextTower(cfg)
        self.temp = nn.Parameter(torch.tensor(0.01))

    def encode_video(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, 224, 224] normalised frames → [B, embed] (not normalised)."""
        return self.vision_encoder(x)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, context] token ids (zero-padded, end-of-text the largest id) → [B, embed] (not normalised)."""
        return self.text_encoder(ids)


def read_state(path) -> dict[str, torch.Tensor]:
    """The state_dict of an official ViCLIP checkpoint: ``torch.load(weights_only=True)``, its ``['model']`` entry.

    VBench's copy (``OpenGVLab/VBench_Used_Models``, the registry's file) pickles only tensors and an OrderedDict.
    The 4 GB training checkpoint VABench names ``ViCLIP-L_InternVid-FLT-10M.pth`` also pickles its config as an
    ``EasyDict`` of the training code (VABench loads it with ``weights_only=False``); that cannot be read without
    running pickled code, so it is refused with the file to use instead.
    """
    import pickle

    from mova_eval.errors import MetricUnavailable

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise MetricUnavailable(
            "clip_video_viclip", f"{path} pickles more than tensors ({str(e).splitlines()[-1][:160]}); it is not "
            "read with pickled code allowed — use VBench's ViClip-InternVid-10M-FLT.pth (state_dict only)",
            "mova-eval weights fetch viclip_l14_internvid_10m_flt") from None
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricUnavailable("clip_video_viclip", f"{path} is not a ViCLIP checkpoint (no state_dict under "
                                "'model')", "mova-eval weights fetch viclip_l14_internvid_10m_flt")
    return {k: v.float() for k, v in state.items()}


def load(path, device: str = "cpu", cfg: ViClipConfig = VICLIP_L14) -> ViClip:
    """An official ViCLIP checkpoint, strictly (every key of the layout above, nothing else), float32, eval."""
    net = ViClip(cfg)
    net.load_state_dict(read_state(path), strict=True)
    return net.to(device).eval()
