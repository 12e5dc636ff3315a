"""A test-only ``torchaudio`` with the two transforms LAION-CLAP's data pipeline calls (``get_mel``).

torchaudio does not load on this machine. These stand-ins compute what torchaudio's ``MelSpectrogram`` and
``AmplitudeToDB(top_db=None)`` compute, from librosa's HTK filter bank (``htk=True, norm=None``) and ``torch.stft``,
so the reference package can run its own padding / fusion code around them. Never imported by project code.
"""
from __future__ import annotations

import sys
import types

import torch


class MelSpectrogram(torch.nn.Module):
    def __init__(self, sample_rate, n_fft, win_length, hop_length, center, pad_mode, power, norm, onesided, n_mels,
                 f_min, f_max):
        super().__init__()
        import librosa

        assert norm is None and power == 2.0 and onesided and win_length == n_fft
        self.n_fft, self.hop, self.center, self.pad_mode = n_fft, hop_length, center, pad_mode
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True,
                                 norm=None)
        self.register_buffer("fb", torch.from_numpy(fb.T).float())

    def forward(self, x):
        spec = torch.stft(x, self.n_fft, self.hop, self.n_fft, torch.hann_window(self.n_fft), center=self.center,
                          pad_mode=self.pad_mode, return_complex=True).abs().pow(2)
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class AmplitudeToDB(torch.nn.Module):
    def __init__(self, stype="power", top_db=None):
        super().__init__()
        assert stype == "power" and top_db is None

    def forward(self, x):
        return 10.0 * torch.log10(torch.clamp(x, min=1e-10))


def install() -> None:
    mod = types.ModuleType("torchaudio")
    mod.transforms = types.ModuleType("torchaudio.transforms")
    mod.transforms.MelSpectrogram = MelSpectrogram
    mod.transforms.AmplitudeToDB = AmplitudeToDB
    sys.modules["torchaudio"] = mod
    sys.modules["torchaudio.transforms"] = mod.transforms


def uninstall() -> None:
    for name in ("torchaudio", "torchaudio.transforms"):
        sys.modules.pop(name, None)
