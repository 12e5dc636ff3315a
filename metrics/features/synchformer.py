"""Synchformer (Iashin et al., "Synchformer: Efficient Synchronization from Sparse Cues", ICASSP 2024).

Written from the published architecture, with the module names of the released bare state_dict
``synchformer_state_dict.pth`` (MMAudio v0.1 release; 513 tensors, 237,460,245 parameters) so that file loads strictly.
The names follow upstream ``v-iashin/Synchformer`` as re-implemented in ``hkchengrex/av-benchmark``
``av_bench/synchformer/`` (``synchformer.py``, ``motionformer.py``, ``video_model_builder.py``, ``vit_helper.py``,
``ast.py``, ``hf_src/modeling_ast.py``, ``transformer.py``):

* ``vfeat_extractor`` — MotionFormer, a "divided" space-time ViT-B/16 on one segment of 16 RGB frames at 224²
  in [-1, 1]: Conv3d patches (2×16×16) → 8×14×14 tokens (time-major) + CLS; spatial positions tiled over the 8 time
  steps plus a per-step temporal embedding; 12 blocks of time attention, then space attention, then MLP (LayerNorm
  eps 1e-6). In both attentions the CLS query attends to every token and every group also sees the CLS key/value.
  After the blocks: drop CLS, LayerNorm, and a learned-CLS ``TransformerEncoderLayer`` over the 196 tokens of each
  time step → 8 tokens per segment. (``patch_embed``, the 2-D stem, is in the checkpoint but unused.)
* ``afeat_extractor`` — AST (``ASTModel`` with its defaults: LN eps 1e-12, exact GELU) on a 128×66 log-mel:
  Conv2d 16×16 stride 10 → 12 (freq) × 6 (time) patches (freq-major) + CLS + distillation token, 74 learned
  positions; 12 pre-LN layers and a final LayerNorm; drop the two aux tokens and pool the 12 frequency tokens of
  each time step with a learned-CLS ``TransformerEncoderLayer`` → 6 tokens per segment.
* ``vproj``/``aproj`` (768→768) and ``transformer`` — a minGPT-style encoder over
  ``[OFF, 14×8 visual, MOD, 14×6 audio]`` = 198 tokens with learned positions (hence exactly 14 segments), 3 pre-LN
  blocks with 8 heads, ``ln_f`` and ``off_head`` → 21 logits for offsets ``linspace(-2, 2, 21)`` s. A positive offset
  means the audio leads the video.

Quirks kept on purpose: the time attention of every block runs before the space attention; both pooling layers
are torch's own ``nn.TransformerEncoderLayer`` (``norm_first``, GELU, eps 1e-6) so they take the same kernels as
the reference; the AST position table is the first 74 rows of the AudioSet one (the checkpoint stores 74).

The log-mel front end (:func:`log_mel`) reproduces ``torchaudio.transforms.MelSpectrogram(16000, n_fft=1024,
win_length=400, hop_length=160, n_mels=128)`` (periodic Hann of 400 centred in the 1024 frame, reflect-padded
centred frames, power 2, HTK mel scale without normalisation, 0–8 kHz) without importing torchaudio, followed by
``log(x + 1e-6)``, zero-padding to 66 frames and ``(x + 4.2677393) / (2 · 4.5689974)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

#: offset classes in seconds; index 10 is 0.0
CLASS_GRID = tuple(round(-2.0 + 0.2 * i, 10) for i in range(21))
SEGMENT_FRAMES = 16  # video frames per segment (0.64 s at 25 fps)
SEGMENT_STEP_FRAMES = 8
SEGMENT_SAMPLES = 10_240  # audio samples per segment (0.64 s at 16 kHz)
SEGMENT_STEP_SAMPLES = 5_120
N_SEGMENTS = 14  # what the global transformer's 198 positions allow
FPS = 25
SAMPLE_RATE = 16_000
MEL_FRAMES = 66
AST_MEAN, AST_STD = -4.2677393, 4.5689974


@dataclass(frozen=True)
class SynchformerConfig:
    """Sizes of the network; the defaults are the released model's. Smaller ones are only for fast tests."""

    dim: int = 768
    v_depth: int = 12
    v_heads: int = 12
    a_depth: int = 12
    a_heads: int = 12
    mlp: int = 3072
    frames: int = SEGMENT_FRAMES  # frames per segment → frames // 2 time tokens
    image: int = 224
    mel_bins: int = 128
    mel_frames: int = MEL_FRAMES
    g_depth: int = 3
    g_heads: int = 8
    n_segments: int = N_SEGMENTS
    n_classes: int = 21

    @property
    def t_tokens(self) -> int:
        return self.frames // 2

    @property
    def hw(self) -> int:
        return self.image // 16

    @property
    def f_tokens(self) -> int:
        return (self.mel_bins - 16) // 10 + 1

    @property
    def a_t_tokens(self) -> int:
        return (self.mel_frames - 16) // 10 + 1

    @property
    def seq_len(self) -> int:
        return 2 + self.n_segments * (self.t_tokens + self.a_t_tokens)


# ----------------------------------------------------------------------------------------------- shared pieces


class CLSPool(nn.TransformerEncoderLayer):
    """A pre-LN ``nn.TransformerEncoderLayer`` with a learned CLS token prepended; returns the CLS output.

    It stays torch's own layer (not a re-implementation) so the inference fast path and numerics are those of the
    reference, which uses the same class; ``cls_token`` sits beside ``self_attn``/``linear1``/``norm1`` as in the
    checkpoint."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__(d_model=dim, nhead=heads, dim_feedforward=mlp, dropout=0.0, activation=nn.GELU(),
                         layer_norm_eps=1e-6, batch_first=True, norm_first=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, L, D] → [N, D]."""
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return super().forward(x)[:, 0]


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    """[B, N, h·d] → [B, h, N, d]."""
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)


def _unheads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


# ----------------------------------------------------------------------------------------------- MotionFormer


class _Linear2(nn.Module):
    """``qkv`` + ``proj`` of one divided attention (checkpoint names ``attn.qkv``, ``attn.proj``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def divided_attention(mod: _Linear2, x: torch.Tensor, heads: int, t: int, s: int, over_time: bool) -> torch.Tensor:
    """Self-attention restricted to groups of tokens, as MotionFormer's divided blocks do.

    x: [B, 1 + t·s, D], tokens after CLS in time-major order (index = time·s + position). ``over_time`` groups the
    t tokens at one spatial position, otherwise the s tokens of one time step. The CLS query attends to all tokens;
    each group also attends to the CLS key/value. q is scaled by head_dim^-0.5 before the products.
    """
    b, n, c = x.shape
    d = c // heads
    q, k, v = (_heads(z, heads) for z in mod.qkv(x).chunk(3, dim=-1))  # [B, h, N, d]
    q = q * d ** -0.5
    cls_out = torch.softmax(q[:, :, :1] @ k.transpose(-1, -2), dim=-1) @ v  # [B, h, 1, d]

    def groups(z):  # [B, h, t·s, d] → [B, h, G, L, d]
        z = z.reshape(b, heads, t, s, d)
        return z.transpose(2, 3) if over_time else z

    qg, kg, vg = groups(q[:, :, 1:]), groups(k[:, :, 1:]), groups(v[:, :, 1:])
    g = qg.shape[2]
    kg = torch.cat([k[:, :, :1, None].expand(-1, -1, g, -1, -1), kg], dim=3)
    vg = torch.cat([v[:, :, :1, None].expand(-1, -1, g, -1, -1), vg], dim=3)
    out = torch.softmax(qg @ kg.transpose(-1, -2), dim=-1) @ vg  # [B, h, G, L, d]
    if over_time:
        out = out.transpose(2, 3)
    out = torch.cat([cls_out, out.reshape(b, heads, t * s, d)], dim=2)
    return mod.proj(_unheads(out))


class DividedBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Linear2(dim)
        self.timeattn = _Linear2(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, t: int, s: int) -> torch.Tensor:
        x = x + divided_attention(self.timeattn, self.norm3(x), self.heads, t, s, over_time=True)
        x = x + divided_attention(self.attn, self.norm1(x), self.heads, t, s, over_time=False)
        return x + self.mlp(self.norm2(x))


class _Proj(nn.Module):
    def __init__(self, conv: nn.Module):
        super().__init__()
        self.proj = conv


class MotionFormer(nn.Module):
    """Visual stream: [N, 3, 16, 224, 224] segments in [-1, 1] → [N, 8, D]."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        d, s = cfg.dim, cfg.hw * cfg.hw
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, s + 1, d))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.t_tokens, d))
        self.patch_embed = _Proj(nn.Conv2d(3, d, kernel_size=16, stride=16))  # in the checkpoint, unused
        self.patch_embed_3d = _Proj(nn.Conv3d(3, d, kernel_size=(2, 16, 16), stride=(2, 16, 16)))
        self.blocks = nn.ModuleList(DividedBlock(d, cfg.v_heads, cfg.mlp) for _ in range(cfg.v_depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.spatial_attn_agg = CLSPool(d, cfg.v_heads, cfg.mlp)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch + position embedding: [N, 3, T, H, W] → [N, 1 + t·s, D]."""
        x = self.patch_embed_3d.proj(x).flatten(2).transpose(1, 2)
        s = self.pos_embed.shape[1] - 1
        pos = self.pos_embed[:, 1:].repeat(1, self.cfg.t_tokens, 1) + self.temp_embed.repeat_interleave(s, dim=1)
        cls = self.cls_token + self.pos_embed[:, :1]
        return torch.cat([cls.expand(x.shape[0], -1, -1), x + pos], dim=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, T, H, W] → token features after the blocks and ``norm``, without CLS: [N, t·s, D]."""
        t, s = self.cfg.t_tokens, self.cfg.hw * self.cfg.hw
        x = self.tokens(x)
        for blk in self.blocks:
            x = blk(x, t, s)
        return self.norm(x[:, 1:])

    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        """[N, t·s, D] → one CLS-pooled token per time step: [N, t, D]."""
        n, _, d = feats.shape
        t = self.cfg.t_tokens
        return self.spatial_attn_agg.pool(feats.reshape(n * t, -1, d)).view(n, t, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encode(x))


# ----------------------------------------------------------------------------------------------- AST


class _ASTSelfAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)


class _Dense(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dense = nn.Linear(cin, cout)


class _ASTAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.attention = _ASTSelfAttention(dim)
        self.output = _Dense(dim, dim)


class ASTLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.attention = _ASTAttention(dim)
        self.intermediate = _Dense(dim, mlp)
        self.output = _Dense(mlp, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=1e-12)
        self.layernorm_after = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention.attention
        y = self.layernorm_before(x)
        q, k, v = _heads(a.query(y), self.heads), _heads(a.key(y), self.heads), _heads(a.value(y), self.heads)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)
        x = x + self.attention.output.dense(_unheads(att @ v))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _ASTEmbeddings(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        d = cfg.dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(1, d, kernel_size=16, stride=10)
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.f_tokens * cfg.a_t_tokens + 2, d))


class _ASTEncoder(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(ASTLayer(cfg.dim, cfg.a_heads, cfg.mlp) for _ in range(cfg.a_depth))


class _ASTModel(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.embeddings = _ASTEmbeddings(cfg)
        self.encoder = _ASTEncoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.dim, eps=1e-12)


class AST(nn.Module):
    """Audio stream: [N, 128, 66] normalised log-mel (mel bins × frames) → [N, 6, D]."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.cfg = cfg
        self.ast = _ASTModel(cfg)
        self.freq_attn_agg = CLSPool(cfg.dim, cfg.a_heads, cfg.mlp)

    def tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """[N, F, T] → [N, 2 + f·t, D] (patches in frequency-major order after CLS and distillation tokens)."""
        e = self.ast.embeddings
        x = e.patch_embeddings.projection(mel.unsqueeze(1)).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat([e.cls_token.expand(n, -1, -1), e.distillation_token.expand(n, -1, -1), x], dim=1)
        return x + e.position_embeddings

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """[N, F, T] → patch features after the encoder and final LayerNorm, aux tokens dropped: [N, f·t, D]."""
        x = self.tokens(mel)
        for layer in self.ast.encoder.layer:
            x = layer(x)
        return self.ast.layernorm(x)[:, 2:]

    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        """[N, f·t, D] → one CLS-pooled token per time step: [N, t, D]."""
        n, _, d = feats.shape
        f, t = self.cfg.f_tokens, self.cfg.a_t_tokens
        x = feats.view(n, f, t, d).transpose(1, 2).reshape(n * t, f, d)
        return self.freq_attn_agg.pool(x).view(n, t, d)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encode(mel))


# ----------------------------------------------------------------------------------------------- global transformer


class _GPTAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)


class GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = _GPTAttention(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn
        y = self.ln1(x)
        q, k, v = _heads(a.query(y), self.heads), _heads(a.key(y), self.heads), _heads(a.value(y), self.heads)
        att = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(k.shape[-1])), dim=-1)
        x = x + a.proj(_unheads(att @ v))
        return x + self.mlp(self.ln2(x))


class _PosEmb(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, n, dim))


class GlobalTransformer(nn.Module):
    """[B, S·8, D] visual + [B, S·6, D] audio tokens → [B, 21] offset logits."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        d = cfg.dim
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.vis_in_lnorm = nn.LayerNorm(d)
        self.aud_in_lnorm = nn.LayerNorm(d)
        self.pos_emb_cfg = _PosEmb(cfg.seq_len, d)
        self.blocks = nn.Sequential(*(GPTBlock(d, cfg.g_heads) for _ in range(cfg.g_depth)))
        self.ln_f = nn.LayerNorm(d)
        self.off_head = nn.Linear(d, cfg.n_classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat([self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(v),
                       self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(a)], dim=1)
        if x.shape[1] != self.pos_emb_cfg.pos_emb.shape[1]:
            raise ValueError(f"the global transformer takes exactly {self.pos_emb_cfg.pos_emb.shape[1]} tokens "
                             f"(14 segments); got {x.shape[1]}")
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x)[:, 0])


# ----------------------------------------------------------------------------------------------- the model


class Synchformer(nn.Module):
    def __init__(self, cfg: SynchformerConfig = SynchformerConfig()):
        super().__init__()
        self.cfg = cfg
        self.vfeat_extractor = MotionFormer(cfg)
        self.afeat_extractor = AST(cfg)
        self.vproj = nn.Linear(cfg.dim, cfg.dim)
        self.aproj = nn.Linear(cfg.dim, cfg.dim)
        self.transformer = GlobalTransformer(cfg)

    def visual_features(self, segments: torch.Tensor, batch: int = 4) -> torch.Tensor:
        """[S, T, 3, H, W] frames in [-1, 1] (one clip's segments) → [S, 8, D], ``batch`` segments at a time."""
        x = segments.permute(0, 2, 1, 3, 4)  # [S, 3, T, H, W]
        return torch.cat([self.vfeat_extractor(x[i : i + batch]) for i in range(0, x.shape[0], batch)])

    def audio_features(self, mels: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """[S, 128, 66] normalised log-mels → [S, 6, D]."""
        return torch.cat([self.afeat_extractor(mels[i : i + batch]) for i in range(0, mels.shape[0], batch)])

    def compare(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """[B, 14, 8, D] and [B, 14, 6, D] → [B, 21] offset logits (``compare_v_a``)."""
        b, s, tv, d = vis.shape
        v = self.vproj(vis).reshape(b, s * tv, d)
        a = self.aproj(aud).reshape(b, s * aud.shape[2], d)
        return self.transformer(v, a)


def load(path, device: str = "cpu") -> Synchformer:
    """The released ``synchformer_state_dict.pth`` (bare state_dict), loaded strictly, in eval mode.

    The module is built on the meta device and takes the checkpoint's tensors (memory-mapped when the file allows)
    instead of copying them into freshly initialised ones, so loading holds one copy of the 0.95 GB, not two."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) torch file cannot be memory-mapped
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # upstream's training checkpoint (24-01-04T16-39-21.pt) keeps it under 'model'
    with torch.device("meta"):
        net = Synchformer()
    net.load_state_dict(state, strict=True, assign=True)
    return net.float().to(device).eval()


# ----------------------------------------------------------------------------------------------- inputs


def segment_starts(n: int, size: int, step: int) -> list[int]:
    """Starts of the ``(n − size) // step + 1`` windows of ``size`` with stride ``step`` (none if n < size)."""
    return list(range(0, n - size + 1, step)) if n >= size else []


def video_segments(frames: torch.Tensor) -> torch.Tensor:
    """[T, H, W, 3] uint8 → [S, 16, 3, H, W] float in [-1, 1] (``/255``, then ``Normalize(0.5, 0.5)``)."""
    x = frames.permute(0, 3, 1, 2).float().div(255.0).sub(0.5).div(0.5)
    starts = segment_starts(x.shape[0], SEGMENT_FRAMES, SEGMENT_STEP_FRAMES)
    return torch.stack([x[s : s + SEGMENT_FRAMES] for s in starts])


_MEL_CACHE: dict = {}


def mel_filterbank(n_freqs: int = 513, n_mels: int = 128, sr: int = SAMPLE_RATE, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """[n_freqs, n_mels] triangular HTK-mel filters without area normalisation (torchaudio's defaults)."""
    f_max = sr / 2 if f_max is None else f_max
    key = (n_freqs, n_mels, sr, f_min, f_max)
    if key not in _MEL_CACHE:
        freqs = torch.linspace(0, sr // 2, n_freqs)
        to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
        m = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
        f_pts = 700.0 * (10 ** (m / 2595.0) - 1.0)
        diff = f_pts[1:] - f_pts[:-1]
        slopes = f_pts[None, :] - freqs[:, None]
        down = -slopes[:, :-2] / diff[:-1]
        up = slopes[:, 2:] / diff[1:]
        _MEL_CACHE[key] = torch.clamp(torch.minimum(down, up), min=0.0)
    return _MEL_CACHE[key]


def log_mel(segments: torch.Tensor) -> torch.Tensor:
    """[S, 10240] 16 kHz audio segments → [S, 128, 66] normalised log-mel, as Synchformer's audio front end."""
    window = torch.hann_window(400, periodic=True, dtype=segments.dtype, device=segments.device)
    spec = torch.stft(segments, n_fft=1024, hop_length=160, win_length=400, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs().pow(2.0)
    fb = mel_filterbank().to(segments.device, segments.dtype)
    mel = (spec.transpose(-1, -2) @ fb).transpose(-1, -2)  # [S, 128, 65]
    x = torch.log(mel + 1e-6)
    if x.shape[-1] < MEL_FRAMES:
        x = F.pad(x, (0, MEL_FRAMES - x.shape[-1]))
    else:
        x = x[..., :MEL_FRAMES]
    return (x - AST_MEAN) / (2 * AST_STD)


def audio_segments(audio: torch.Tensor) -> torch.Tensor:
    """[N] mono 16 kHz → [S, 10240] windows with stride 5120."""
    starts = segment_starts(audio.shape[0], SEGMENT_SAMPLES, SEGMENT_STEP_SAMPLES)
    return torch.stack([audio[s : s + SEGMENT_SAMPLES] for s in starts])
