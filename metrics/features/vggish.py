"""VGGish (Hershey et al. 2017) as the torch port ``harritaylor/torchvggish`` runs it, for FAD.

Front-end (VGGish's published constants): 16 kHz mono → STFT magnitude with a 25 ms periodic-Hann window, 10 ms hop,
512-point FFT → 64 HTK mel bands 125–7500 Hz (DC bin zeroed) → ``log(mel + 0.01)`` → non-overlapping 96-frame
(0.96 s) examples; an incomplete tail example is dropped, as the reference does. Computed in float64 NumPy, like
the reference.

Network: VGG-style conv stack (64, M, 128, M, 256, 256, M, 512, 512, M) and three fully connected layers
(12288→4096→4096→128) with ``state_dict`` keys exactly those of ``vggish-10086976.pth`` (``features.0.weight`` …
``embeddings.4.bias``). The torch port keeps a ReLU after the last layer; the TF original removed it later, and fadtk
strips it (``use_activation=False``) — so does ``final_relu=False`` here, our default. No PCA/quantisation (fadtk
and FAD use the raw 128-d embedding).
"""
from __future__ import annotations

import numpy as np

from mova_eval import weights
from mova_eval.weights import WeightSpec

SAMPLE_RATE = 16_000
WINDOW_S, HOP_S = 0.025, 0.010
NUM_BANDS, MEL_MIN_HZ, MEL_MAX_HZ = 64, 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames, hop 0.96 s
EMBEDDING_DIM = 128

WEIGHTS = weights.register(WeightSpec(
    name="vggish",
    filename="vggish-10086976.pth",
    urls=("https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",),
    license="Apache-2.0 (Google AudioSet VGGish, torch port by harritaylor/torchvggish)",
    used_by=("fad",),
    description="VGGish 128-d audio embedding (torch port state_dict), FAD protocol fad_vggish",
    # torch hub's convention: the name's -HASH part is the start of the file's sha256 (what
    # load_state_dict_from_url(check_hash=True) compares); torchvggish's hubconf.py loads it without check_hash
    sha256_prefix="10086976",
    sha256_prefix_source="the file name vggish-10086976.pth (torch hub's sha256-prefix naming), harritaylor/torchvggish "
                         "GitHub release v0.1",
))


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    n = 1 + (x.shape[0] - length) // hop
    if n <= 0:
        return np.zeros((0, length) + x.shape[1:], dtype=x.dtype)
    return np.lib.stride_tricks.as_strided(x, shape=(n, length) + x.shape[1:],
                                           strides=(x.strides[0] * hop,) + x.strides, writeable=False)


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(n_fft_bins: int = 257, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_fft_bins, 64] triangular HTK mel weights, linear in mel, DC bin excluded."""
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_fft_bins))
    edges = np.linspace(_hz_to_mel(MEL_MIN_HZ), _hz_to_mel(MEL_MAX_HZ), NUM_BANDS + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (bins_mel[:, None] - lo) / (mid - lo)
    down = (hi - bins_mel[:, None]) / (hi - mid)
    m = np.maximum(0.0, np.minimum(up, down))
    m[0] = 0.0
    return m


def log_mel_examples(wave: np.ndarray) -> np.ndarray:
    """16 kHz mono float waveform → float64 [n_examples, 96, 64] log-mel examples (n may be 0 if < 0.96 s)."""
    x = np.asarray(wave, dtype=np.float64)
    win = int(round(SAMPLE_RATE * WINDOW_S))
    hop = int(round(SAMPLE_RATE * HOP_S))
    n_fft = 1 << int(np.ceil(np.log2(win)))
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)  # periodic Hann
    frames = _frames(x, win, hop)
    if frames.shape[0] == 0:
        return np.zeros((0, EXAMPLE_FRAMES, NUM_BANDS))
    mag = np.abs(np.fft.rfft(frames * window, n_fft))
    logmel = np.log(mag @ mel_matrix(n_fft // 2 + 1) + LOG_OFFSET)
    return np.array(_frames(logmel, EXAMPLE_FRAMES, EXAMPLE_FRAMES))  # a writable copy


def build_vggish(final_relu: bool = False):
    """The network (torch imported here). ``final_relu=True`` reproduces the torch port's forward unchanged."""
    import torch
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [], 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                    cin = v
            self.features = nn.Sequential(*layers)
            fc = [nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True),
                  nn.Linear(4096, EMBEDDING_DIM)]
            self.embeddings = nn.Sequential(*fc)
            self.final_relu = final_relu

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """x: float [B, 1, 96, 64] log-mel examples → [B, 128]."""
            x = self.features(x).permute(0, 2, 3, 1).flatten(1)  # flatten in TF's (H, W, C) order
            x = self.embeddings(x)
            return torch.relu(x) if self.final_relu else x

    return VGGish()


def load_vggish(path, device: str = "cpu", final_relu: bool = False):
    """Our VGGish with the torch port's state_dict loaded strictly."""
    import torch

    model = build_vggish(final_relu)
    model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True), strict=True)
    return model.eval().to(device)


def embed(model, wave: np.ndarray, device: str = "cpu", batch: int = 64) -> np.ndarray:
    """Per-example embeddings float32 [n_examples, 128] of a 16 kHz mono waveform."""
    import torch

    ex = log_mel_examples(wave)
    out = []
    with torch.no_grad():
        for i in range(0, ex.shape[0], batch):
            t = torch.from_numpy(ex[i : i + batch]).float()[:, None].to(device)
            out.append(model(t).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)
