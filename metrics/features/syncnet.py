"""SyncNet v2 (Chung & Zisserman, "Out of time", ACCV-W 2016; the 1024-d release ``syncnet_v2.model``).

Two streams written from the published architecture, with the official checkpoint's key names
(``netcnnaud.N``, ``netfcaud.N``, ``netcnnlip.N``, ``netfclip.N``) so the file loads unchanged:

* audio: 1×13×20 MFCC patch (0.2 s) → 2-D conv/BN/ReLU stack (64, 192, 384, 256, 256, then a 5×4 conv to 512)
  → FC 512-512-1024;
* lip: 3×5×224×224 (five BGR frames, raw 0–255 values) → 3-D conv stack (96 with a 5×7×7 kernel, 256, 256, 256,
  256, then a 1×6×6 conv to 512) → FC 512-512-1024.

Features are the 1024-d outputs, not normalised (the distances in LSE-D are between these raw vectors).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def _bn_relu(layers, cin, cout, conv, bn, inplace=True, **kw):
    layers += [conv(cin, cout, **kw), bn(cout), nn.ReLU(inplace=inplace)]


class SyncNetV2(nn.Module):
    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        a: list[nn.Module] = []
        c2, b2 = nn.Conv2d, nn.BatchNorm2d
        _bn_relu(a, 1, 64, c2, b2, kernel_size=3, padding=1)
        a.append(nn.MaxPool2d(kernel_size=1, stride=1))
        _bn_relu(a, 64, 192, c2, b2, kernel_size=3, padding=1)
        a.append(nn.MaxPool2d(kernel_size=3, stride=(1, 2)))
        _bn_relu(a, 192, 384, c2, b2, kernel_size=3, padding=1)
        _bn_relu(a, 384, 256, c2, b2, kernel_size=3, padding=1)
        _bn_relu(a, 256, 256, c2, b2, kernel_size=3, padding=1)
        a.append(nn.MaxPool2d(kernel_size=3, stride=2))
        _bn_relu(a, 256, 512, c2, b2, inplace=False, kernel_size=(5, 4))
        self.netcnnaud = nn.Sequential(*a)

        def head():
            return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))

        self.netfcaud = head()
        self.netfclip = head()

        v: list[nn.Module] = []
        c3, b3 = nn.Conv3d, nn.BatchNorm3d
        _bn_relu(v, 3, 96, c3, b3, kernel_size=(5, 7, 7), stride=(1, 2, 2))
        v.append(nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)))
        _bn_relu(v, 96, 256, c3, b3, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1))
        v.append(nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        for _ in range(3):
            _bn_relu(v, 256, 256, c3, b3, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        v.append(nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)))
        _bn_relu(v, 256, 512, c3, b3, kernel_size=(1, 6, 6))
        self.netcnnlip = nn.Sequential(*v)


    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 1, 13, 20] MFCC patches → [B, 1024]."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, 5, 224, 224] BGR float 0–255 → [B, 1024]."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load(path, device: str = "cpu") -> SyncNetV2:
    """Load an official-layout state_dict. Every tensor in the file must name a parameter or buffer here; BN
    ``num_batches_tracked`` counters (absent from checkpoints saved by old torch versions) may be missing."""
    net = SyncNetV2()
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if unknown or missing:
        raise ValueError(f"{path}: not a SyncNet v2 state_dict (unknown keys {unknown[:5]}, missing {missing[:5]})")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        own[k].copy_(v)
    return net.to(device).eval()
