"""PANNs Cnn14 (Kong et al. 2020), the AudioSet tagger behind IS, KL and FD-PANN.

Written here so that neither ``panns_inference`` (which downloads a label CSV at import) nor torchlibrosa is needed at
run time. The module tree and parameter names follow ``audioset_tagging_cnn/pytorch/models.py`` so the official
checkpoints load with ``strict=True``:

* front end as torchlibrosa computes it: a framed DFT as two ``Conv1d`` (``spectrogram_extractor.stft.conv_real`` /
  ``conv_imag``; periodic Hann window, centred with reflect padding), power spectrogram, Slaney mel filterbank
  (``logmel_extractor.melW``, librosa's default ``norm='slaney'``, ``htk=False``), ``10·log10(max(x, 1e-10))``;
* ``bn0`` over the mel bins, six conv blocks (2×[3×3 conv, BN, ReLU] then 2×2 average pooling, the last one 1×1),
  mean over frequency, max + mean over time, ``fc1`` + ReLU = the 2048-d ``embedding``, ``fc_audioset`` = 527 logits.

``load_cnn14(32000, …)`` is ``Cnn14_mAP=0.431.pth`` (window 1024, hop 320, fmax 14 kHz), ``load_cnn14(16000, …)`` is
``Cnn14_16k_mAP=0.438.pth`` (window 512, hop 160, fmax 8 kHz). forward(waveform [B, N] float32) returns
``{"clipwise_output": sigmoid [B, 527], "logits": [B, 527], "embedding": [B, 2048]}``.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.weights import WeightSpec

CLASSES = 527

#: sample rate → (weights name, window, hop, mel bins, fmin, fmax)
CONFIGS = {
    32000: ("panns_cnn14_32k", 1024, 320, 64, 50.0, 14000.0),
    16000: ("panns_cnn14_16k", 512, 160, 64, 50.0, 8000.0),
}

_LICENSE = "MIT (qiuqiangkong/audioset_tagging_cnn code; weights published on Zenodo record 3987831 under CC BY 4.0)"
# Zenodo lists an md5 per file (its only digest). The record page itself was not in the search corpus here; the
# values are the record's md5s as quoted, identically, by several independent projects whose download code checks
# them, so a typo in one copy would not survive the comparison.
_MD5_32K_SOURCE = ("Zenodo record 3987831 (https://zenodo.org/records/3987831, file list: md5 of Cnn14_mAP=0.431.pth, "
                   "327,428,481 bytes), as quoted by Labbeti/dcase2022task6a nn/urls.py ('Zenodo link: "
                   "https://zenodo.org/record/3987831, hash type: md5') and several other projects' download checks")
_MD5_16K_SOURCE = ("Zenodo record 3987831 (https://zenodo.org/records/3987831, file list: md5 of "
                   "Cnn14_16k_mAP=0.438.pth), as quoted identically by several projects' download checks; 358,668,570 "
                   "bytes per huggingface.co/dev-e/panns-cnn14-16k-coreml, which names record 3987831 as its source")
weights.register(WeightSpec(
    name="panns_cnn14_32k",
    filename="Cnn14_mAP=0.431.pth",
    urls=("https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",),
    license=_LICENSE,
    used_by=("is",),
    description="PANNs Cnn14, 32 kHz AudioSet tagger (mAP 0.431); MOVA's IS model",
    md5="541141fa2ee191a88f24a3219fff024e",
    md5_source=_MD5_32K_SOURCE,
))
weights.register(WeightSpec(
    name="panns_cnn14_16k",
    filename="Cnn14_16k_mAP=0.438.pth",
    urls=("https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1",),
    license=_LICENSE,
    used_by=("is", "kl"),
    description="PANNs Cnn14, 16 kHz AudioSet tagger (mAP 0.438); av-benchmark's IS/KL model",
    md5="362fc5ff18f1d6ad2f6d464b45893f2c",
    md5_source=_MD5_16K_SOURCE,
))


# ----------------------------------------------------------------------------------------- filter banks (numpy)
def hann_periodic(n: int) -> np.ndarray:
    """scipy/librosa ``get_window('hann', n, fftbins=True)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed DFT rows for the ``n_fft // 2 + 1`` one-sided bins, shaped [bins, 1, n_fft] like torchlibrosa's
    ``conv_real`` / ``conv_imag`` weights (real = cos, imag = −sin, times the window)."""
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    ang = 2.0 * np.pi * ((k * n) % n_fft) / n_fft
    w = hann_periodic(n_fft)[None, :]
    real = (np.cos(ang) * w).astype(np.float32)[:, None, :]
    imag = (-np.sin(ang) * w).astype(np.float32)[:, None, :]
    return real, imag


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    mel = f / f_sp
    log_region = f >= min_log_hz
    return np.where(log_region, min_log_hz / f_sp + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mel)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank_slaney(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the Slaney mel scale with Slaney area normalisation, [n_fft//2+1, n_mels]
    (librosa ``filters.mel`` defaults, transposed as torchlibrosa stores ``melW``)."""
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    fb *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return fb.T.astype(np.float32)


# ------------------------------------------------------------------------------------------------ the network
def _build_classes():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class _Conv1dKernel(nn.Module):
        """Holds one fixed DFT kernel under the name ``weight`` (checkpoint key ``…stft.conv_real.weight``)."""

        def __init__(self, kernel: np.ndarray):
            super().__init__()
            self.register_buffer("weight", torch.from_numpy(kernel))

    class _STFT(nn.Module):
        def __init__(self, n_fft: int, hop: int):
            super().__init__()
            real, imag = dft_kernels(n_fft)
            self.n_fft, self.hop = n_fft, hop
            self.conv_real = _Conv1dKernel(real)
            self.conv_imag = _Conv1dKernel(imag)

    class Spectrogram(nn.Module):
        def __init__(self, n_fft: int, hop: int):
            super().__init__()
            self.stft = _STFT(n_fft, hop)

        def forward(self, x):  # [B, N] → power [B, 1, T, F]
            s = self.stft
            x = F.pad(x[:, None, :], (s.n_fft // 2, s.n_fft // 2), mode="reflect")
            re = F.conv1d(x, s.conv_real.weight, stride=s.hop)
            im = F.conv1d(x, s.conv_imag.weight, stride=s.hop)
            return (re * re + im * im)[:, None].transpose(2, 3)

    class LogmelFilterBank(nn.Module):
        def __init__(self, sr, n_fft, n_mels, fmin, fmax):
            super().__init__()
            self.register_buffer("melW", torch.from_numpy(mel_filterbank_slaney(sr, n_fft, n_mels, fmin, fmax)))

        def forward(self, x):  # power [B, 1, T, F] → dB [B, 1, T, M]  (ref 1, amin 1e-10, no top_db)
            return 10.0 * torch.log10(torch.clamp(torch.matmul(x, self.melW), min=1e-10))

    class ConvBlock(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x, pool):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            return F.avg_pool2d(x, kernel_size=pool)

    class Cnn14(nn.Module):
        """Inference-only Cnn14 (no SpecAugment, no mixup, dropout inactive in eval)."""

        def __init__(self, sample_rate: int, window: int, hop: int, mel_bins: int, fmin: float, fmax: float,
                     classes: int = CLASSES):
            super().__init__()
            self.sample_rate = sample_rate
            self.spectrogram_extractor = Spectrogram(window, hop)
            self.logmel_extractor = LogmelFilterBank(sample_rate, window, mel_bins, fmin, fmax)
            self.bn0 = nn.BatchNorm2d(mel_bins)
            chans = [1, 64, 128, 256, 512, 1024, 2048]
            for i in range(6):
                setattr(self, f"conv_block{i + 1}", ConvBlock(chans[i], chans[i + 1]))
            self.fc1 = nn.Linear(2048, 2048, bias=True)
            self.fc_audioset = nn.Linear(2048, classes, bias=True)

        def forward(self, waveform):
            x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # [B, 1, T, M]
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(6):
                x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
            x = torch.mean(x, dim=3)
            x = torch.max(x, dim=2).values + torch.mean(x, dim=2)
            embedding = F.relu(self.fc1(x))
            logits = self.fc_audioset(embedding)
            return {"clipwise_output": torch.sigmoid(logits), "logits": logits, "embedding": embedding}

    return Cnn14


_CLASSES = None


def _cnn14_class():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_classes()
    return _CLASSES


def build_cnn14(sample_rate: int, seed: int | None = None):
    """Cnn14 with the front end for ``sample_rate`` (32000 or 16000) and freshly initialised weights, in eval mode.
    With ``seed`` the initialisation is reproducible (tests load the same state into the reference code)."""
    import torch

    if sample_rate not in CONFIGS:
        raise ValueError(f"Cnn14 exists for sample rates {sorted(CONFIGS)}, not {sample_rate}")
    _, window, hop, mels, fmin, fmax = CONFIGS[sample_rate]
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = _cnn14_class()(sample_rate, window, hop, mels, fmin, fmax)
            _randomise_batchnorm(model, seed)
    else:
        model = _cnn14_class()(sample_rate, window, hop, mels, fmin, fmax)
    return model.eval()


def _randomise_batchnorm(model, seed: int) -> None:
    """Give BatchNorm layers non-trivial statistics so a parity test exercises them."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def read_checkpoint(path) -> dict:
    """The state dict inside an official PANNs checkpoint (a dict with key ``model``, pickled with numpy scalars)."""
    import pickle

    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # training-state entries hold numpy scalars; allow exactly those types
        safe = [np.dtype, type(np.dtype("float64")), type(np.dtype("int64")), type(np.dtype("float32"))]
        try:
            safe.append(np._core.multiarray.scalar)  # numpy ≥ 2
        except AttributeError:  # pragma: no cover - numpy 1.x
            safe.append(np.core.multiarray.scalar)
        with torch.serialization.safe_globals(safe):
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    return ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt


_LOADED: dict[tuple[int, str, str], object] = {}
_LOCK = threading.Lock()


def load_cnn14(sample_rate: int, device: str = "cpu", context: RunContext | None = None):
    """The official Cnn14 checkpoint for ``sample_rate`` (32000 or 16000) on ``device``, in eval mode, loaded once
    per process. Raises WeightsMissingError (with the fetch command) when the file is absent."""
    if sample_rate not in CONFIGS:
        raise ValueError(f"Cnn14 exists for sample rates {sorted(CONFIGS)}, not {sample_rate}")
    path = weights.resolve(CONFIGS[sample_rate][0], context)
    key = (sample_rate, str(path), str(device))
    with _LOCK:
        if key not in _LOADED:
            model = build_cnn14(sample_rate)
            model.load_state_dict(read_checkpoint(path), strict=True)
            _LOADED[key] = model.to(device).eval()
        return _LOADED[key]


def run_cnn14(model, waveforms: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Forward [B, N] float32 audio (equal lengths) in batches without gradients; numpy outputs."""
    import torch

    dev = next(model.parameters()).device
    outs: dict[str, list] = {}
    with torch.inference_mode():
        for i in range(0, len(waveforms), batch_size):
            x = torch.tensor(np.asarray(waveforms[i:i + batch_size], dtype=np.float32), device=dev)
            for k, v in model(x).items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}
