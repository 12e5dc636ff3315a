"""Meta Audiobox-Aesthetics: a WavLM Base+ encoder with four regression heads (CE, CU, PC, PQ), written from the
published architecture in the official checkpoint's key layout (324 tensors).

Upstream: ``facebookresearch/audiobox-aesthetics`` (PyPI ``audiobox_aesthetics`` 0.0.4 = commit 2618e9d):
``model/aes.py`` (``AesMultiOutput``), ``model/wavlm.py`` (WavLM, fairseq style), ``model/utils.py``
(``create_mlp_block``), ``infer.py`` (``AesPredictor``, ``make_inference_batch``).

Stages (each callable alone, for the staged parity test):

1. :func:`resample_like_torchaudio` — ``torchaudio.functional.resample`` with its defaults (windowed-sinc, Hann
   window, ``lowpass_filter_width`` 6, ``rolloff`` 0.99), reimplemented (torchaudio does not load here);
2. :func:`chunk` — ``make_inference_batch``: 10 s windows, hop 10 s, the last zero-padded to 160000 with a mask,
   chunk weight = valid samples / 160000;
3. :meth:`WavLM.features` — conv feature extractor (7 layers, GroupNorm on layer 0 only, no conv bias, stride 320),
   LayerNorm(512), ``post_extract_proj`` 512→768, the padding mask down-sampled (remainder samples dropped, a frame
   is padding only if all its 320 samples are);
4. :meth:`WavLM.layers` — padded frames zeroed, weight-normed conv positional embedding (k 128, groups 16, last frame
   dropped, GELU, residual), encoder LayerNorm (post-LN), 12 post-LN layers with the gated relative position bias;
   returns the 13 hidden states (the input of layer 1 and the 12 layer outputs);
5. :meth:`AesModel.heads` — per axis softmax(``layer_weights``)-weighted sum of the 13 states, masked mean over
   valid frames, L2 normalisation, MLP 4 × [Linear, LayerNorm, GELU] + Linear → z, then ``z·σ + μ``.

Quirks kept: the gate of the relative position bias is computed from the layer's *input* split into heads (not from
the projected query: upstream's fast path passes ``query`` to ``grep_linear``); the bias table exists only in layer 0
and its *ungated* values are reused by every later layer; padded keys are masked but padded queries still flow
(they are excluded only by the heads' masked mean); the inverse target transform is applied per chunk before the
length-weighted mean. ``mask_emb`` is in the checkpoint but unused at inference.
"""
from __future__ import annotations

import math

import numpy as np

AXES = ("CE", "CU", "PC", "PQ")
SAMPLE_RATE = 16_000
WINDOW = 10 * SAMPLE_RATE
CONV_LAYERS = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
#: the published checkpoint's target transform (HF config.json / checkpoint.pt ``target_transform``)
TARGET_TRANSFORM = {"CE": (5.06865, 1.93029), "CU": (5.73633, 1.75669), "PC": (3.18591, 1.86637),
                    "PQ": (6.57505, 1.51466)}


# ------------------------------------------------------------------------------------------- resampling, chunking


def resample_like_torchaudio(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE, lowpass_filter_width: int = 6,
                             rolloff: float = 0.99) -> np.ndarray:
    """``torchaudio.functional.resample(x, sr_in, sr_out)`` with its defaults, along the last axis (float32 in and
    out). The kernel is built in float64 and cast to the signal's dtype, as torchaudio does."""
    import torch
    import torch.nn.functional as F

    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    orig, new = int(sr_in) // g, int(sr_out) // g
    base = min(orig, new) * rolloff
    width = int(math.ceil(lowpass_filter_width * orig / base))
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=torch.float64), t.sin() / t) * window * (base / orig)
    kernel = kernel.to(torch.float32)
    shape = x.shape
    w = torch.from_numpy(np.array(x.reshape(-1, shape[-1]), dtype=np.float32))  # a writable copy
    n = w.shape[-1]
    w = F.pad(w, (width, width + orig))
    out = F.conv1d(w[:, None], kernel, stride=orig).transpose(1, 2).reshape(w.shape[0], -1)
    out = out[..., : int(math.ceil(new * n / orig))]
    return out.reshape(*shape[:-1], out.shape[-1]).numpy()


def chunk(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunks [K, 160000], valid mask [K, 160000] bool, weights [K]) of a mono 16 kHz signal, as
    ``make_inference_batch(hop 10 s, window 10 s, pad_zero)``."""
    wav = np.asarray(wav, dtype=np.float32)
    starts = range(0, wav.shape[-1], WINDOW)
    chunks = np.zeros((len(starts), WINDOW), np.float32)
    mask = np.zeros((len(starts), WINDOW), bool)
    weights = np.zeros(len(starts), np.float64)
    for i, s in enumerate(starts):
        part = wav[s: s + WINDOW]
        chunks[i, : part.shape[0]] = part
        mask[i, : part.shape[0]] = True
        weights[i] = part.shape[0] / WINDOW
    return chunks, mask, weights


# ------------------------------------------------------------------------------------------------------ network


def _build():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim=768, heads=12, bias_table=False):
            super().__init__()
            self.heads, self.hd = heads, dim // heads
            self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.grep_linear = nn.Linear(self.hd, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
            if bias_table:
                self.relative_attention_bias = nn.Embedding(320, heads)

        def position_bias(self, n: int) -> torch.Tensor:
            """[H, n, n] bias of bucketed relative positions (320 buckets, bidirectional, max distance 800)."""
            rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
            half = 160
            bucket = (rel > 0).long() * half
            rel = rel.abs()
            exact = half // 2
            large = exact + (torch.log(rel.float() / exact) / math.log(800 / exact) * (half - exact)).long()
            large = large.clamp(max=half - 1)
            bucket = bucket + torch.where(rel < exact, rel, large)
            return self.relative_attention_bias(bucket.to(self.relative_attention_bias.weight.device)).permute(2, 0, 1)

        def forward(self, x, key_pad, bias):
            # x [B, T, C]; key_pad [B, T] True = padding; bias [H, T, T] ungated
            b, n, c = x.shape
            heads = x.view(b, n, self.heads, self.hd).transpose(1, 2)  # the gate reads the layer input
            ga, gb = torch.sigmoid(self.grep_linear(heads).view(b, self.heads, n, 2, 4).sum(-1)).chunk(2, dim=-1)
            gate = ga * (gb * self.grep_a - 1.0) + 2.0  # [B, H, T, 1]
            attn_bias = gate * bias[None]
            attn_bias = attn_bias.masked_fill(key_pad[:, None, None, :], float("-inf"))
            q = self.q_proj(x).view(b, n, self.heads, self.hd).transpose(1, 2) * self.hd ** -0.5
            k = self.k_proj(x).view(b, n, self.heads, self.hd).transpose(1, 2)
            v = self.v_proj(x).view(b, n, self.heads, self.hd).transpose(1, 2)
            w = torch.softmax(q @ k.transpose(-1, -2) + attn_bias, dim=-1)
            return self.out_proj((w @ v).transpose(1, 2).reshape(b, n, c))

    class Layer(nn.Module):
        def __init__(self, first: bool):
            super().__init__()
            self.self_attn = Attention(bias_table=first)
            self.self_attn_layer_norm = nn.LayerNorm(768)
            self.fc1, self.fc2 = nn.Linear(768, 3072), nn.Linear(3072, 768)
            self.final_layer_norm = nn.LayerNorm(768)

        def forward(self, x, key_pad, bias):
            x = self.self_attn_layer_norm(x + self.self_attn(x, key_pad, bias))
            return self.final_layer_norm(x + self.fc2(torch.nn.functional.gelu(self.fc1(x))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            conv = nn.Conv1d(768, 768, 128, padding=64, groups=16)
            self.pos_conv = nn.Sequential(nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2))
            self.layers = nn.ModuleList(Layer(i == 0) for i in range(12))
            self.layer_norm = nn.LayerNorm(768)

    class ConvBlock(nn.Module):
        def __init__(self, n_in, n_out, k, s, norm):
            super().__init__()
            self.add_module("0", nn.Conv1d(n_in, n_out, k, stride=s, bias=False))
            if norm:
                self.add_module("2", nn.GroupNorm(n_out, n_out))
            self.norm = norm

        def forward(self, x):
            x = getattr(self, "0")(x)
            if self.norm:
                x = getattr(self, "2")(x)
            return torch.nn.functional.gelu(x)

    class FeatureExtractor(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, n_in = [], 1
            for i, (d, k, s) in enumerate(CONV_LAYERS):
                blocks.append(ConvBlock(n_in, d, k, s, norm=i == 0))
                n_in = d
            self.conv_layers = nn.ModuleList(blocks)

        def forward(self, wav):
            x = wav[:, None]
            for blk in self.conv_layers:
                x = blk(x)
            return x

    class WavLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_extractor = FeatureExtractor()
            self.layer_norm = nn.LayerNorm(512)
            self.post_extract_proj = nn.Linear(512, 768)
            self.mask_emb = nn.Parameter(torch.zeros(768))
            self.encoder = Encoder()

        def features(self, wav, valid):
            """(frames [B, T, 768], padding [B, T] True = padding) of [B, N] audio and its valid-sample mask."""
            f = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))
            pad = ~valid
            t = f.shape[1]
            extra = pad.shape[1] % t
            if extra:
                pad = pad[:, :-extra]
            pad = pad.reshape(pad.shape[0], t, -1).all(-1)
            return self.post_extract_proj(f), pad

        def layers(self, x, pad):
            """The 13 hidden states [B, T, 768]: the encoder input after the positional conv and LayerNorm, then
            each layer's output."""
            x = x.masked_fill(pad[..., None], 0.0)
            pc = self.encoder.pos_conv(x.transpose(1, 2))[..., :-1]
            x = self.encoder.layer_norm(x + torch.nn.functional.gelu(pc).transpose(1, 2))
            bias = self.encoder.layers[0].self_attn.position_bias(x.shape[1])
            states = [x]
            for layer in self.encoder.layers:
                x = layer(x, pad, bias)
                states.append(x)
            return states

    def mlp():
        mods = []
        for _ in range(4):
            mods += [nn.Linear(768, 768), nn.LayerNorm(768), nn.GELU()]
        mods.append(nn.Linear(768, 1))
        return nn.Sequential(*mods)

    class AesModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.wavlm_model = WavLM()
            self.proj_layer = nn.ModuleDict({a: mlp() for a in AXES})
            self.layer_weights = nn.ParameterDict({a: nn.Parameter(torch.ones(13) / 13) for a in AXES})

        def heads(self, states, pad) -> dict:
            """Per axis the normalised prediction z [B] (before the inverse target transform)."""
            stack = torch.stack(states, dim=-1)  # [B, T, C, 13]
            keep = (~pad)[..., None].to(stack.dtype)
            out = {}
            for a in AXES:
                emb = torch.einsum("btcl,l->btc", stack, torch.softmax(self.layer_weights[a], dim=-1))
                emb = (emb * keep).sum(1) / keep.sum(1).clamp(min=1)
                emb = torch.nn.functional.normalize(emb, dim=-1)
                out[a] = self.proj_layer[a](emb).squeeze(-1)
            return out

        def forward(self, wav, valid) -> dict:
            x, pad = self.wavlm_model.features(wav, valid)
            return self.heads(self.wavlm_model.layers(x, pad), pad)

    return AesModel


_CLASS = None


def build_model(seed: int | None = None):
    """The network in eval mode; with ``seed``, deterministic random weights (tests)."""
    import torch

    global _CLASS
    if _CLASS is None:
        _CLASS = _build()
    if seed is not None:
        torch.manual_seed(seed)
    return _CLASS().eval()


def state_dict_keys(model) -> dict:
    """The model's state_dict under the checkpoint's names (``weight_g``/``weight_v`` for the weight-normed
    positional conv, as fairseq's ``nn.utils.weight_norm`` stores them)."""
    sd = {}
    for k, v in model.state_dict().items():
        k = k.replace("pos_conv.0.parametrizations.weight.original0", "pos_conv.0.weight_g")
        k = k.replace("pos_conv.0.parametrizations.weight.original1", "pos_conv.0.weight_v")
        sd[k] = v
    return sd


def load_state(model, state: dict) -> None:
    """Load a checkpoint state_dict (``model.`` prefix stripped as upstream's ``re.sub('^model.', '')``) strictly."""
    import re

    sd = {re.sub("^model.", "", k): v for k, v in state.items()}
    sd = {k.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0")
          .replace("pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1"): v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)


def load(path, device: str = "cpu"):
    """The network from ``checkpoint.pt`` (dict with ``state_dict``, ``model_cfg``, ``target_transform``) or a
    ``model.safetensors`` from the HF repo. Returns (model, target transform {axis: (mean, std)})."""
    import torch

    path = str(path)
    transform = dict(TARGET_TRANSFORM)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise ValueError(f"{path}: not an Audiobox-Aesthetics checkpoint (no 'state_dict')")
        cfg = ckpt.get("model_cfg") or {}
        want = {"proj_num_layer": 5, "proj_ln": True, "nth_layer": 13, "use_weighted_layer_sum": True,
                "normalize_embed": True, "output_dim": 1}
        bad = {k: cfg[k] for k in want if k in cfg and cfg[k] != want[k]}
        if bad:
            raise ValueError(f"{path}: model_cfg {bad} differs from the published configuration {want}")
        if ckpt.get("target_transform"):
            transform = {a: (float(ckpt["target_transform"][a]["mean"]), float(ckpt["target_transform"][a]["std"]))
                         for a in AXES}
        state = ckpt["state_dict"]
    model = build_model()
    load_state(model, state)
    return model.to(device), transform


def predict(model, transform: dict, wav16k: np.ndarray, device: str = "cpu", batch: int = 4) -> dict:
    """{axis: value} for one mono 16 kHz signal: chunk, run the network ``batch`` chunks at a time, inverse-transform
    each chunk's prediction, length-weighted mean over chunks (``AesPredictor.forward``)."""
    import torch

    chunks, mask, w = chunk(wav16k)
    preds = {a: [] for a in AXES}
    with torch.inference_mode():
        for s in range(0, len(chunks), batch):
            out = model(torch.from_numpy(chunks[s: s + batch]).to(device), torch.from_numpy(mask[s: s + batch])
                        .to(device))
            for a in AXES:
                mean, std = transform[a]
                preds[a].append((out[a].float() * std + mean).cpu().numpy())
    return {a: float((np.concatenate(preds[a]).astype(np.float64) * w).sum() / w.sum()) for a in AXES}
