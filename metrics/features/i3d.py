"""I3D (Inception-v1 inflated to 3-D, Kinetics-400) for FVD: our pure-torch network and the StyleGAN-V TorchScript.

* :class:`InceptionI3d` is written from the published architecture (Carreira & Zisserman 2017) with TensorFlow
  "SAME" padding computed per input, so its ``state_dict`` keys are exactly those of ``i3d_pretrained_400.pt``
  (TATS / cd-fvd): ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias`` …
  Output: the 400 pre-softmax logits averaged over time (what FVD uses).
* :func:`load_torchscript` loads StyleGAN-V's ``i3d_torchscript.pt`` (a port of the tf-hub model) with
  ``torch.jit.load``; it is called as ``model(x, rescale=…, resize=…, return_features=True)``.

Input helpers: :func:`resize_bilinear_torch` (``F.interpolate`` bilinear, ``align_corners=False``: cd-fvd) and
:func:`resize_bilinear_tf1` (TF1 ``tf.image.resize_bilinear`` with ``align_corners=False`` and no half-pixel
centres: the TensorFlow FVD original). torch is imported lazily so that listing metrics stays instant.
"""
from __future__ import annotations

import numpy as np

from mova_eval import weights
from mova_eval.weights import WeightSpec

TORCHSCRIPT = weights.register(WeightSpec(
    name="i3d_torchscript",
    filename="i3d_torchscript.pt",
    urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
    license="Apache-2.0 (tf-hub deepmind/i3d-kinetics-400 port by StyleGAN-V)",
    used_by=("fvd",),
    description="StyleGAN-V's TorchScript port of the tf-hub I3D (Kinetics-400); FVD protocols fvd_styleganv, fvd_tf",
))
TATS = weights.register(WeightSpec(
    name="i3d_pretrained_400",
    filename="i3d_pretrained_400.pt",
    urls=("https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt",),
    license="Apache-2.0 (pytorch-i3d weights as redistributed by TATS / cd-fvd)",
    used_by=("fvd",),
    description="I3D Kinetics-400 state_dict used by TATS and cd-fvd; FVD protocol fvd_cdfvd",
))

# (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) of the Inception modules, in order
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (front, back) for one axis."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def build_i3d(num_classes: int = 400):
    """The network as an ``nn.Module`` (torch imported here, not at module import)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def pad_same(x, kernel, stride):
        t, h, w = x.shape[2:]
        pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
        return F.pad(x, (*pw, *ph, *pt))  # zeros, as the reference port does (inputs to its max-pools are ≥ 0)

    class Unit3D(nn.Module):
        """Conv3d (no bias) + BatchNorm3d + ReLU, or a biased conv alone for the logits layer."""

        def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn_relu=True):
            super().__init__()
            self.kernel, self.stride, self.bn_relu = tuple(kernel), tuple(stride), bn_relu
            self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not bn_relu)
            if bn_relu:
                self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001)

        def forward(self, x):
            x = self.conv3d(pad_same(x, self.kernel, self.stride))
            return F.relu(self.bn(x)) if self.bn_relu else x

    class MaxPoolSame(nn.Module):
        def __init__(self, kernel, stride):
            super().__init__()
            self.kernel, self.stride = tuple(kernel), tuple(stride)

        def forward(self, x):
            return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)

    class Mixed(nn.Module):
        def __init__(self, cin, c):
            super().__init__()
            self.b0 = Unit3D(cin, c[0])
            self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
            self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
            self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

        def forward(self, x):
            return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)

    class InceptionI3d(nn.Module):
        def __init__(self):
            super().__init__()
            self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
            self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
            self.Conv3d_2b_1x1 = Unit3D(64, 64)
            self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
            self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
            self.Mixed_3b, self.Mixed_3c = Mixed(*_MIXED["Mixed_3b"]), Mixed(*_MIXED["Mixed_3c"])
            self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
            for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
                setattr(self, name, Mixed(*_MIXED[name]))
            self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
            self.Mixed_5b, self.Mixed_5c = Mixed(*_MIXED["Mixed_5b"]), Mixed(*_MIXED["Mixed_5c"])
            self.logits = Unit3D(1024, num_classes, bn_relu=False)
            self._trunk = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                           "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                           "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")

        def forward(self, x):
            """x: float [B, 3, T, H, W] in [-1, 1] → logits [B, num_classes] averaged over time."""
            for name in self._trunk:
                x = getattr(self, name)(x)
            x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # dropout is the identity at inference
            return self.logits(x).mean(dim=(3, 4)).mean(dim=2)

    return InceptionI3d()


def load_i3d(path, device: str = "cpu"):
    """Our I3D with the TATS/cd-fvd state_dict loaded strictly (every key must match)."""
    import torch

    model = build_i3d()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def load_torchscript(path, device: str = "cpu"):
    """StyleGAN-V's TorchScript detector, called as ``model(x, rescale=, resize=, return_features=True)``."""
    import torch

    return torch.jit.load(str(path), map_location=device).eval()


# ----------------------------------------------------------------------------------------------- input resizing


def resize_bilinear_torch(frames, size: tuple[int, int] = (224, 224)):
    """uint8/float [B, T, H, W, 3] → float32 [B, 3, T, h, w] in [0, 255], bilinear ``align_corners=False`` (cd-fvd)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(frames, dtype=np.float32))  # a writable float copy
    b, t, h, w, c = x.shape
    x = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.reshape(b, t, c, *size).transpose(1, 2).contiguous()


def _tf1_axis(n_in: int, n_out: int):
    import torch

    scale = n_in / n_out
    src = torch.arange(n_out, dtype=torch.float64) * scale  # TF1 legacy: no half-pixel offset
    lo = torch.floor(src).long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, (src - lo).float()


def resize_bilinear_tf1(frames, size: tuple[int, int] = (224, 224)):
    """As :func:`resize_bilinear_torch` but with TF1 ``tf.image.resize_bilinear(align_corners=False)`` sampling:
    output pixel i reads source coordinate ``i · in/out`` (no half-pixel centres, no antialiasing)."""
    import torch

    x = torch.from_numpy(np.array(frames, dtype=np.float32))  # a writable float copy
    b, t, h, w, c = x.shape
    x = x.permute(0, 4, 1, 2, 3)  # B, C, T, H, W
    if (h, w) != tuple(size):
        y0, y1, fy = _tf1_axis(h, size[0])
        x0, x1, fx = _tf1_axis(w, size[1])
        top = x[..., y0, :] + (x[..., y1, :] - x[..., y0, :]) * fy[:, None]
        x = top[..., x0] + (top[..., x1] - top[..., x0]) * fx
    return x.contiguous()


def to_unit_range(x):
    """[0, 255] → [-1, 1] as ``2x/255 − 1`` (all FVD references)."""
    return x * (2.0 / 255.0) - 1.0
