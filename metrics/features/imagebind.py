"""ImageBind (Girdhar et al., "ImageBind: One Embedding Space To Bind Them All", CVPR 2023), vision/text/audio.

Written from the published architecture of ``imagebind_huge`` (``facebookresearch/ImageBind``
``imagebind/models/imagebind_model.py``, ``multimodal_preprocessors.py``, ``transformer.py``, ``helpers.py``) with
the module names of the released plain state_dict ``imagebind_huge.pth`` (1,311 tensors for all six modalities), so
that file's vision, text and audio entries load strictly; the depth, thermal and IMU entries are ignored.

* **vision** — an image becomes a 2-frame clip by repetition (``PadIm2Video(repeat, 2)``; a 2-frame clip passes
  unchanged); Conv3d 3→1280, kernel = stride = (2, 14, 14), no bias → 16×16 = 256 patches; CLS; learned positions
  (257); LayerNorm (eps 1e-6) before the trunk; 32 pre-LN blocks, 16 heads.
* **text** — CLIP BPE ids (context 77); token + learned position embeddings; causal mask (a buffer *saved in the
  state_dict*); 24 blocks, 16 heads; the head reads the token at ``argmax(ids)`` (the end-of-text id is the largest).
* **audio** — a 1×128×204 kaldi log-mel image; Conv2d 1→768, kernel 16, stride 10, no bias → 12×19 = 228 patches;
  LayerNorm (eps 1e-5) on the patches; CLS; learned positions (229); 12 blocks, 12 heads, attention with
  ``add_bias_kv`` (one learned extra key/value token).
* every block: ``x + attn(LN(x))``, ``x + MLP(LN(x))`` with LN eps 1e-6, MLP 4× with exact GELU, no layer scale;
  drop-path is training-only and absent here.
* heads: LayerNorm (eps 1e-6) → CLS (text: the EOT token) → Linear to 1024 without bias; postprocessors
  L2-normalise, text then multiplies by ``min(exp(log_logit_scale), 100)`` (learned), audio by a fixed 20.

Several clips of one input (video crops, audio clips) are embedded one by one, normalised and scaled, then
*averaged without renormalising* — :func:`clip_mean` — which is what ``ImageBindModel.forward`` does for 5-D/6-D
inputs; cosines do not see the scale, dot products do.

The attention is written here (one fused in-projection ``in_proj_weight`` as in ``torch.nn.MultiheadAttention``,
whose names the checkpoint uses) on top of ``scaled_dot_product_attention``. A smaller :class:`ImageBindConfig`
builds the same key layout at reduced width and depth for fast tests; :data:`HUGE` is the released model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

CONTEXT = 77
VOCAB = 49_408
IMAGE = 224
MEL_BINS = 128
MEL_FRAMES = 204
AUDIO_SCALE = 20.0
MAX_LOGIT_SCALE = 100.0
#: the modalities this module builds; the checkpoint's others are skipped on load
MODALITIES = ("vision", "text", "audio")


@dataclass(frozen=True)
class ImageBindConfig:
    """Widths and depths; :data:`HUGE` is ``imagebind_huge``. Smaller values keep the key layout (tests)."""

    vision_dim: int = 1280
    vision_blocks: int = 32
    vision_heads: int = 16
    text_dim: int = 1024
    text_blocks: int = 24
    text_heads: int = 16
    audio_dim: int = 768
    audio_blocks: int = 12
    audio_heads: int = 12
    out_dim: int = 1024


HUGE = ImageBindConfig()


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names (batch-first input).

    ``bias_kv`` appends one learned key and one learned value token to every sequence (torch's ``add_bias_kv``),
    which every query may attend to (the mask gets a zero column for it)."""

    def __init__(self, dim: int, heads: int, bias_kv: bool = False):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        if bias_kv:
            self.bias_k = nn.Parameter(torch.zeros(1, 1, dim))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, dim))
        else:
            self.bias_k = self.bias_v = None
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(b, 1, d)], dim=1)
            v = torch.cat([v, self.bias_v.expand(b, 1, d)], dim=1)
            if mask is not None:
                mask = F.pad(mask, (0, 1))
        h = self.heads

        def split(t):
            return t.reshape(b, t.shape[1], h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, bias_kv: bool):
        super().__init__()
        self.attn = Attention(dim, heads, bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x, mask=None):
        x = x + self.attn(self.norm_1(x), mask)
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    """``modality_trunks.<m>``: optional LayerNorm (key ``pre_transformer_layer.0``) and the blocks."""

    def __init__(self, dim: int, depth: int, heads: int, *, pre_ln: bool, bias_kv: bool):
        super().__init__()
        # index 0 of upstream's Sequential(LayerNorm | Identity, rearrange); only the LayerNorm has weights
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6) if pre_ln else nn.Identity())
        self.blocks = nn.Sequential(*[Block(dim, heads, bias_kv) for _ in range(depth)])

    def forward(self, x, mask=None):
        x = self.pre_transformer_layer(x)
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class _Repeat2(nn.Module):
    """``PadIm2Video(repeat, ntimes=2)``: [B, 3, H, W] → [B, 3, 2, H, W]; a 1-frame clip is repeated."""

    def forward(self, x):
        if x.ndim == 4:
            x = x.unsqueeze(2)
        return x.repeat(1, 1, 2, 1, 1) if x.shape[2] == 1 else x


class _PosEmbed(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * dim ** -0.5)


class _Stem(nn.Module):
    def __init__(self, proj: nn.Module, norm: nn.Module | None = None):
        super().__init__()
        self.proj = proj
        self.norm_layer = norm

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(x) if self.norm_layer is not None else x


class PatchPreprocessor(nn.Module):
    """``modality_preprocessors.{vision,audio}``: stem → tokens, CLS in front, learned positions added."""

    def __init__(self, stem: _Stem, n_patches: int, dim: int):
        super().__init__()
        self.rgbt_stem = stem
        self.pos_embedding_helper = _PosEmbed(n_patches + 1, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * dim ** -0.5)

    def forward(self, x):
        t = self.rgbt_stem(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        return t + self.pos_embedding_helper.pos_embed


class TextPreprocessor(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, CONTEXT, dim) * 0.01)
        self.register_buffer("mask", torch.full((CONTEXT, CONTEXT), float("-inf")).triu_(1))

    def forward(self, ids):
        return self.token_embedding(ids) + self.pos_embed


class _Select(nn.Module):
    """Keeps upstream's Sequential indices (``modality_heads.vision.{0,2}``): index 1 picks the CLS token."""

    def forward(self, x):
        return x[:, 0]


class TextHead(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out, bias=False))

    def forward(self, x, eot):
        return self.proj(x[torch.arange(x.shape[0], device=x.device), eot])


class LogitScale(nn.Module):
    def __init__(self, init: float, learnable: bool):
        super().__init__()
        value = torch.tensor(math.log(init))
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)

    def forward(self, x):
        return torch.clamp(self.log_logit_scale.exp(), max=MAX_LOGIT_SCALE) * x


class _Normalize(nn.Module):
    def forward(self, x):
        return F.normalize(x, dim=-1)


class ImageBind(nn.Module):
    """The vision, text and audio towers of ImageBind in the checkpoint's key layout."""

    def __init__(self, cfg: ImageBindConfig = HUGE):
        super().__init__()
        self.cfg = cfg
        c = cfg
        vision_stem = _Stem(nn.Sequential(_Repeat2(), nn.Conv3d(3, c.vision_dim, (2, 14, 14), (2, 14, 14),
                                                                 bias=False)))
        audio_stem = _Stem(nn.Conv2d(1, c.audio_dim, 16, 10, bias=False), nn.LayerNorm(c.audio_dim))
        n_audio = ((MEL_BINS - 16) // 10 + 1) * ((MEL_FRAMES - 16) // 10 + 1)
        self.modality_preprocessors = nn.ModuleDict({
            "vision": PatchPreprocessor(vision_stem, (IMAGE // 14) ** 2, c.vision_dim),
            "text": TextPreprocessor(c.text_dim),
            "audio": PatchPreprocessor(audio_stem, n_audio, c.audio_dim),
        })
        self.modality_trunks = nn.ModuleDict({
            "vision": Trunk(c.vision_dim, c.vision_blocks, c.vision_heads, pre_ln=True, bias_kv=False),
            "text": Trunk(c.text_dim, c.text_blocks, c.text_heads, pre_ln=False, bias_kv=False),
            "audio": Trunk(c.audio_dim, c.audio_blocks, c.audio_heads, pre_ln=False, bias_kv=True),
        })
        self.modality_heads = nn.ModuleDict({
            "vision": nn.Sequential(nn.LayerNorm(c.vision_dim, eps=1e-6), _Select(),
                                    nn.Linear(c.vision_dim, c.out_dim, bias=False)),
            "text": TextHead(c.text_dim, c.out_dim),
            "audio": nn.Sequential(nn.LayerNorm(c.audio_dim, eps=1e-6), _Select(),
                                   nn.Linear(c.audio_dim, c.out_dim, bias=False)),
        })
        self.modality_postprocessors = nn.ModuleDict({
            "vision": _Normalize(),
            "text": nn.Sequential(_Normalize(), LogitScale(1 / 0.07, learnable=True)),
            "audio": nn.Sequential(_Normalize(), LogitScale(AUDIO_SCALE, learnable=False)),
        })

    def _run(self, m: str, x: torch.Tensor) -> torch.Tensor:
        t = self.modality_trunks[m](self.modality_preprocessors[m](x))
        return self.modality_postprocessors[m](self.modality_heads[m](t))

    def embed_vision(self, clips: torch.Tensor, batch: int = 8) -> torch.Tensor:
        """[N, 3, 2, 224, 224] (or [N, 3, 224, 224] images) normalised pixels → [N, out] unit vectors."""
        return torch.cat([self._run("vision", clips[i : i + batch]) for i in range(0, clips.shape[0], batch)])

    def embed_audio(self, mels: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """[N, 1, 128, 204] normalised log-mels → [N, out] vectors of norm 20."""
        return torch.cat([self._run("audio", mels[i : i + batch]) for i in range(0, mels.shape[0], batch)])

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """[N, 77] token ids → [N, out] vectors of norm ``min(exp(log_logit_scale), 100)``."""
        pre = self.modality_preprocessors["text"]
        t = self.modality_trunks["text"](pre(ids), pre.mask.to(ids.device))
        t = self.modality_heads["text"](t, ids.argmax(dim=-1))
        return self.modality_postprocessors["text"](t)


def clip_mean(emb: torch.Tensor) -> torch.Tensor:
    """The embedding of a multi-clip input: the mean of the per-clip embeddings, not renormalised (upstream)."""
    return emb.mean(dim=0)


def cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> float:
    return float(F.cosine_similarity(a.double().reshape(1, -1), b.double().reshape(1, -1), eps=eps)[0])


def select_state(state: dict) -> dict:
    """The checkpoint entries of the three modalities built here (depth, thermal, IMU dropped)."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if len(parts) > 1 and parts[1] in MODALITIES:
            out[k] = v
    return out


def load(path, device: str = "cpu", cfg: ImageBindConfig = HUGE) -> ImageBind:
    """``imagebind_huge.pth`` (a plain state_dict, loaded with ``weights_only``); every vision/text/audio entry must
    match exactly (strict on those three modalities)."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state_dict")
    net = ImageBind(cfg)
    net.load_state_dict(select_state(state), strict=True)
    return net.to(device).eval()


# ----------------------------------------------------------------------------------------------- inputs

#: CLIP pixel statistics (upstream ``imagebind/data.py``)
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)
#: ImageBind's log-mel statistics (``load_and_transform_audio_data`` defaults)
MEL_MEAN, MEL_STD = -4.268, 9.138
SAMPLE_RATE = 16_000
CLIP_SECONDS = 2
AUDIO_CLIPS = 3

_BANKS: dict = {}


def kaldi_mel_banks(n_mels: int = MEL_BINS, n_fft: int = 512, sr: int = SAMPLE_RATE, low: float = 20.0,
                    high: float = 0.0) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] Kaldi triangular filters on the mel scale ``1127 ln(1 + f/700)``, evenly spaced
    between ``low`` and ``high`` (≤ 0 means Nyquist + high), triangles computed in mel; the Nyquist bin is 0."""
    key = (n_mels, n_fft, sr, low, high)
    if key not in _BANKS:
        nyq = 0.5 * sr
        hi = high if high > 0 else nyq + high

        def mel(f):
            return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)

        m_lo, m_hi = mel(low), mel(hi)
        delta = (m_hi - m_lo) / (n_mels + 1)
        i = torch.arange(n_mels, dtype=torch.float64)[:, None]
        left, centre, right = m_lo + i * delta, m_lo + (i + 1) * delta, m_lo + (i + 2) * delta
        m = mel(sr / n_fft * torch.arange(n_fft // 2, dtype=torch.float64))[None, :]
        up = (m - left) / (centre - left)
        down = (right - m) / (right - centre)
        banks = torch.clamp(torch.minimum(up, down), min=0.0)
        _BANKS[key] = F.pad(banks, (0, 1))
    return _BANKS[key]


def kaldi_fbank(wave: torch.Tensor, sr: int = SAMPLE_RATE, n_mels: int = MEL_BINS) -> torch.Tensor:
    """[N] float waveform → [frames, n_mels] log mel energies, computed as ``torchaudio.compliance.kaldi.fbank`` with
    the options ImageBind passes (htk_compat, Hann window, 25 ms / 10 ms, dither 0, no energy) and torchaudio's
    defaults for the rest: snip_edges (``1 + (N − 400) // 160`` frames), per-frame DC removal, pre-emphasis 0.97
    with the first sample replicated, the *symmetric* Hann window, zero-padding to 512, power spectrum, 20 Hz to
    Nyquist, ``log(max(x, float32 eps))``. Float64 inside; returns float32."""
    win, hop, n_fft = int(sr * 0.025), int(sr * 0.010), 512
    x = wave.to(torch.float64)
    if x.shape[-1] < win:
        return torch.zeros(0, n_mels, dtype=torch.float32)
    frames = x.unfold(0, win, hop)
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * prev
    frames = frames * torch.hann_window(win, periodic=False, dtype=torch.float64)
    spec = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    energies = spec @ kaldi_mel_banks(n_mels, n_fft, sr).T
    eps = torch.finfo(torch.float32).eps
    return torch.clamp(energies, min=eps).log().to(torch.float32)


def clip_starts(duration: float, clips: int, clip_seconds: float = CLIP_SECONDS) -> list:
    """pytorchvideo ``ConstantClipsPerVideoSampler``: ``clips`` starts ``k · max(D − clip, 0) / max(clips − 1, 1)``
    as exact fractions (what upstream slices with), each clip ``clip_seconds`` long."""
    from fractions import Fraction

    span = Fraction(max(Fraction(duration) - Fraction(clip_seconds), 0))
    step = span / max(clips - 1, 1)
    return [step * k for k in range(clips)]


def audio_clips(wave: torch.Tensor, sr: int = SAMPLE_RATE, clips: int = AUDIO_CLIPS) -> tuple[torch.Tensor, dict]:
    """[C, N] (or [N]) waveform at 16 kHz, the whole track → [clips, 1, 128, 204] normalised log-mels, and details.

    Each 2 s clip ``wave[:, int(start·sr) : int((start + 2)·sr)]`` loses its mean over *all* channels (upstream does
    it in place on a view; here on a copy), then the kaldi fbank reads channel 0 only (torchaudio's ``channel=-1``),
    is zero-padded or cut to 204 frames along time and normalised ``(x − (−4.268)) / 9.138``. A clip shorter than
    2 s (a short track) keeps its few frames plus zero padding, as upstream (which only warns)."""
    from fractions import Fraction

    w = wave if wave.ndim == 2 else wave[None]
    duration = Fraction(w.shape[-1], sr)
    starts = clip_starts(duration, clips)
    out, frames_seen = [], []
    for s in starts:
        seg = w[:, int(s * sr) : int((s + CLIP_SECONDS) * sr)].to(torch.float64)
        seg = seg - seg.mean()
        fb = kaldi_fbank(seg[0], sr).T  # [128, frames]
        frames_seen.append(int(fb.shape[1]))
        fb = F.pad(fb, (0, MEL_FRAMES - fb.shape[1])) if fb.shape[1] < MEL_FRAMES else fb[:, :MEL_FRAMES]
        out.append(((fb - MEL_MEAN) / MEL_STD)[None])
    return torch.stack(out), {"audio_clip_starts_s": [round(float(s), 6) for s in starts],
                              "fbank_frames": frames_seen}


def spatial_crops(frames: torch.Tensor, size: int = IMAGE) -> list[torch.Tensor]:
    """``SpatialCrop(224, 3)``: [..., H, W] → three crops along the long side (start, centre with ``ceil`` offsets,
    end); the short side is centred the same way."""
    h, w = frames.shape[-2:]
    y, x = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
    if h > w:
        offsets = [(0, x), (y, x), (h - size, x)]
    else:
        offsets = [(y, 0), (y, x), (y, w - size)]
    return [frames[..., oy : oy + size, ox : ox + size] for oy, ox in offsets]


def normalise_pixels(frames_uint8: torch.Tensor) -> torch.Tensor:
    """[T, H, W, 3] uint8 → [3, T, H, W] float, ``/255`` then CLIP mean/std."""
    x = frames_uint8.permute(3, 0, 1, 2).float().div(255.0)
    mean = torch.tensor(PIXEL_MEAN, device=x.device)[:, None, None, None]
    std = torch.tensor(PIXEL_STD, device=x.device)[:, None, None, None]
    return (x - mean) / std


def pair_clips(frames_uint8: torch.Tensor) -> torch.Tensor:
    """MOVA/av-benchmark video input: T frames (short side 224) → consecutive pairs (T − 1 clips of 2 frames) × 3
    spatial crops → [3·(T − 1), 3, 2, 224, 224], clip-major (pair 0's three crops first)."""
    x = normalise_pixels(frames_uint8)
    clips = [x[:, i : i + 2] for i in range(x.shape[1] - 1)]
    return torch.stack([c for clip in clips for c in spatial_crops(clip)])
