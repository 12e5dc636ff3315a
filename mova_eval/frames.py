"""Arrays from model pipelines → what :mod:`mova_eval.media` encodes, and images prepared for image-conditioned
models. Pipelines return frames as PIL lists, numpy arrays or torch tensors in several layouts and value ranges;
these functions accept all of them so that adapters never reimplement the conversion (each adapter's quirks stay
in the adapter). ``media.py`` stays the one door to containers: ``write_clip`` converts, then calls
``media.encode``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mova_eval.errors import GenerationError

if TYPE_CHECKING:
    from PIL import Image


def to_uint8_frames(video: Any) -> np.ndarray:
    """Frames from a pipeline → uint8 [T, H, W, 3]. Accepts PIL lists, arrays or tensors in THWC, TCHW or CTHW,
    float in [0, 1] (or [-1, 1] when negative values occur) or uint8. Odd sizes are cropped to even ones (H.264
    4:2:0 needs them)."""
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(f.convert("RGB")) if _is_pil(f) else _np(f) for f in video])
    v = _np(video)
    if v.ndim == 5 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 4:
        raise GenerationError(f"pipeline returned video of shape {v.shape}; expected 4 dimensions")
    if v.shape[-1] not in (1, 3):
        if v.shape[1] in (1, 3):       # T C H W
            v = v.transpose(0, 2, 3, 1)
        elif v.shape[0] in (1, 3):     # C T H W
            v = v.transpose(1, 2, 3, 0)
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    if v.dtype != np.uint8:
        v = v.astype(np.float32)
        if v.min() < -1e-3:
            v = (v + 1.0) / 2.0
        v = np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)
    h, w = v.shape[1] - v.shape[1] % 2, v.shape[2] - v.shape[2] % 2
    return np.ascontiguousarray(v[:, :h, :w])


def to_audio(audio: Any) -> np.ndarray:
    """Audio from a pipeline → float32 [C, N] with C ≤ 2; NaN/inf samples are a GenerationError."""
    a = _np(audio).astype(np.float32)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise GenerationError(f"pipeline returned audio of shape {a.shape}; expected [C, N] or [N]")
    if a.shape[0] > a.shape[1]:  # [N, C]
        a = a.T
    if a.shape[0] > 2:
        a = a[:2]
    if not np.isfinite(a).all():
        raise GenerationError("pipeline returned audio with NaN/inf samples")
    return np.ascontiguousarray(a)


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(x, Image.Image)


def _np(x: Any) -> np.ndarray:
    import sys

    torch = sys.modules.get("torch")  # only a tensor if torch is already loaded; never imported here
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    return np.asarray(x)


def write_clip(out_path: str | Path, video: Any, fps: float, audio: Any | None, sample_rate: int | None) -> Path:
    """Convert a pipeline's frames (and audio) and encode them to ``out_path`` through ``media.encode``."""
    from mova_eval import media

    frames = to_uint8_frames(video)
    a = to_audio(audio) if audio is not None else None
    return media.encode(out_path, frames, fps, a, sample_rate)


def load_image(path: str, width: int, height: int) -> Image.Image:
    """Centre-crop to the target aspect, then resize (what MOVA's ``crop_and_resize`` does), as a PIL image."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - width) // 2, (nh - height) // 2
    return img.crop((left, top, left + width, top + height))


def white_image(width: int, height: int) -> Image.Image:
    """The pure-white first frame MOVA's workflow uses for T2VA with an IT2VA pipeline."""
    from PIL import Image

    return Image.new("RGB", (width, height), (255, 255, 255))
