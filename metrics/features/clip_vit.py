"""OpenAI CLIP ViT (Radford et al. 2021), image and text towers, in the OpenAI / open_clip state_dict layout.

Written from the published architecture (OpenAI ``clip/model.py`` ``VisionTransformer``/``CLIP``; open_clip
``transformer.py`` uses the same names): patches by a bias-free Conv2d (``visual.conv1``), ``class_embedding``,
``positional_embedding``, ``ln_pre``, pre-LN residual blocks (``ln_1``, ``attn`` with one fused ``in_proj_weight``,
``ln_2``, ``mlp.c_fc``/``mlp.c_proj``) with **QuickGELU** ``x·σ(1.702x)`` (the OpenAI weights' activation), ``ln_post``
on the class token, ``@ visual.proj``. Text: ``token_embedding`` + ``positional_embedding``, causal blocks,
``ln_final``, the token at ``argmax(ids)`` (end-of-text), ``@ text_projection``. LayerNorm eps 1e-5.

The OpenAI release is a TorchScript archive (``ViT-B-32.pt``); :func:`load` reads its state_dict with
``torch.jit.load`` (no ``clip`` package), drops the three integer entries (``input_resolution``, ``context_length``,
``vocab_size``) and casts the fp16 weights to float32, as ``clip.load`` does on CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ClipConfig:
    image: int = 224
    patch: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    context: int = 77
    vocab: int = 49408
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    embed: int = 512


VIT_B32 = ClipConfig()


class _Attn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x, mask=None):
        b, n, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        h = self.heads
        q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = self.c_fc(x)
        return self.c_proj(x * torch.sigmoid(1.702 * x))


class _Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(dim), _Attn(dim, heads), nn.LayerNorm(dim), _Mlp(dim)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, dim, layers, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[_Block(dim, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for blk in self.resblocks:
            x = blk(x, mask)
        return x


class _Visual(nn.Module):
    def __init__(self, c: ClipConfig):
        super().__init__()
        w = c.vision_width
        self.conv1 = nn.Conv2d(3, w, c.patch, c.patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn((c.image // c.patch) ** 2 + 1, w) * w ** -0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = _Transformer(w, c.vision_layers, c.vision_heads)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, c.embed) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding)
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


class ClipModel(nn.Module):
    def __init__(self, cfg: ClipConfig = VIT_B32):
        super().__init__()
        c = self.cfg = cfg
        self.visual = _Visual(c)
        self.token_embedding = nn.Embedding(c.vocab, c.text_width)
        self.positional_embedding = nn.Parameter(torch.randn(c.context, c.text_width) * 0.01)
        self.transformer = _Transformer(c.text_width, c.text_layers, c.text_heads)
        self.ln_final = nn.LayerNorm(c.text_width)
        self.text_projection = nn.Parameter(torch.randn(c.text_width, c.embed) * c.text_width ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        self.register_buffer("attn_mask", torch.full((c.context, c.context), float("-inf")).triu_(1),
                             persistent=False)

    def encode_image(self, x: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """[N, 3, 224, 224] normalised pixels → [N, embed] (not normalised)."""
        return torch.cat([self.visual(x[i : i + batch]) for i in range(0, x.shape[0], batch)])

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask))
        return x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)] @ self.text_projection


def load(path, device: str = "cpu", cfg: ClipConfig = VIT_B32) -> ClipModel:
    """OpenAI's TorchScript ``ViT-B-32.pt`` (or a plain state_dict in the same names), strictly, float32, eval."""
    try:
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k: v.float() for k, v in state.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    net = ClipModel(cfg)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()
