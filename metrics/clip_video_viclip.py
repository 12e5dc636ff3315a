"""Text–video ViCLIP score: cos(ViCLIP video(8 frames), ViCLIP text(prompt)), a named variant beside ``clip_video``.

ViCLIP (OpenGVLab/InternVideo ``Data/InternVid/viclip``; network in :mod:`.features.viclip`) embeds the 8 frames as
one clip, so the score is one cosine per video, not a mean over frames. Two benchmarks call it differently, and
each protocol writes its own output:

``protocol: vabench`` → ``clip_video_viclip`` (VABench ``vabench/second_viclip.py`` ``_calc_clip_score_for_video``):

1. 8 frames at segment midpoints: ``b = linspace(0, T, 9).astype(int)``, frame ``(b[i] + b[i+1] − 1) // 2``;
   a stream with fewer than 8 frames is NaN with the reason (the reference stacks fewer frames and its 8-entry
   temporal embedding then fails to broadcast; a 0-frame video scores 0.0 there, NaN here);
2. **BGR quirk kept**: decord delivers RGB and the frame transform applies ``cv2.COLOR_BGR2RGB`` again, so ViCLIP
   sees BGR frames;
3. Pillow bicubic to short side 224 (torchvision ``Resize`` on a PIL image, whose ``antialias=False`` has no effect
   there), centre crop 224, ``/255``, OpenAI CLIP mean/std;
4. text: the item's ``video_prompt`` when it has one (VABench scores the visual prompt, ``prompt_vision``), else
   ``prompt``.

``protocol: vbench`` → ``clip_video_viclip_vbench`` (VBench ``vbench/overall_consistency.py``, the same computation
as ``temporal_style.py``; ``vbench/utils.py`` ``read_frames_decord_by_fps(sample="middle")``, ``clip_transform``):

1. the same midpoints; fewer than 8 frames are padded with the last one;
2. RGB frames (no swap);
3. resize on the uint8 **tensor**: bicubic, ``align_corners=False``, **no antialiasing**, rounded and clamped back to
   uint8 (torchvision's tensor ``Resize``), centre crop 224, ``/255``, CLIP mean/std;
4. text: ``prompt``.

Both: CLIP BPE with a 32-token context (``max_txt_l``), end-of-text kept when truncating (the details record the
token count and ``text_truncated``); ``encode_vision(test=True)`` (no token masking); both embeddings L2-normalised;
value = their cosine (no ×100). The set value is pooled over clips. Frames come from the one PyAV decode (the
references read with decord).
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mova_eval import media, weights
from mova_eval.context import RunContext
from mova_eval.errors import MediaError, WeightsMissingError
from mova_eval.media import VideoPreset
from mova_eval.metrics.base import (
    POOLED_MEAN,
    Availability,
    Card,
    ItemScore,
    Metric,
    MetricInfo,
    Output,
    require_package,
)
from mova_eval.metrics.clip_video import MEAN, STD
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

N_FRAMES = 8
CONTEXT = 32
SIZE = 224
WEIGHTS = "viclip_l14_internvid_10m_flt"
_SHA = "7a4d6ad6eac6632db3693f4b97f9f8f6445b65b1e139a6fc6686150522238c56"

weights.register(weights.WeightSpec(
    name=WEIGHTS,
    filename="ViClip-InternVid-10M-FLT.pth",
    urls=("https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/ViClip-InternVid-10M-FLT.pth",),
    license="MIT (OpenGVLab/ViCLIP model card, where the original is a gated download); this copy sits in "
            "OpenGVLab/VBench_Used_Models (card: Apache-2.0); ViCLIP code Apache-2.0",
    used_by=("clip_video_viclip",),
    sha256=_SHA,
    sha256_source="Hugging Face LFS details of OpenGVLab/VBench_Used_Models ViClip-InternVid-10M-FLT.pth "
                  "(revision 83290ee), the file VBench's vbench/utils.py downloads",
    description="ViCLIP ViT-L/14 trained on InternVid-10M-FLT (1.71 GB, float32 state_dict under 'model'); the same "
                "file name as the gated OpenGVLab/ViCLIP original, whose bytes were not compared",
))

_NAMES = {"vabench": "clip_video_viclip", "vbench": "clip_video_viclip_vbench"}


def _outputs(protocol: str) -> tuple[Output, ...]:
    what = ("VABench protocol: BGR frames as its reader delivers them, Pillow bicubic, video_prompt"
            if protocol == "vabench" else "VBench overall_consistency protocol: RGB frames, tensor bicubic "
                                          "without antialiasing, prompt")
    return (Output(_NAMES[protocol], "higher", "", f"cos(ViCLIP ViT-L/14 video(8 frames), text); {what}"),)


def frame_indices(n: int, k: int = N_FRAMES, pad: bool = False) -> np.ndarray:
    """Segment midpoints of ``min(k, n)`` equal segments (VBench ``get_frame_indices(sample="middle")``, VABench);
    ``pad`` repeats the last index up to ``k`` (VBench)."""
    m = min(k, n)
    bounds = np.linspace(0, n, m + 1).astype(int)
    idx = [(int(a) + int(b) - 1) // 2 for a, b in zip(bounds[:-1], bounds[1:])]
    if pad and idx and len(idx) < k:
        idx += [idx[-1]] * (k - len(idx))
    return np.asarray(idx, dtype=int)


def _resized_size(h: int, w: int) -> tuple[int, int]:
    """torchvision ``Resize(224)``: short side 224, long side ``int(224 · long / short)``."""
    return (SIZE, int(SIZE * w / h)) if h <= w else (int(SIZE * h / w), SIZE)


def _tensor_bicubic(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torchvision's tensor ``Resize`` on uint8 with ``antialias=False``: float bicubic (align_corners False),
    clamped to [0, 255], rounded back to uint8."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if tuple(x.shape[2:]) != size:
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False).clamp(0, 255)
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def prepare(clip: Clip, protocol: str = "vabench"):
    """[8, 3, 224, 224] normalised float tensor and details; MediaError where the protocol cannot read the clip."""
    import torch

    from mova_eval.metrics.desync import center_crop

    native = clip.video_for(VideoPreset(name="native"))
    n = native.shape[0]
    if n == 0:
        raise MediaError(clip.path, "the video stream has no frames")
    if protocol == "vabench" and n < N_FRAMES:
        raise MediaError(clip.path, f"the video stream has {n} frames; VABench's ViCLIP score reads {N_FRAMES} "
                                    f"(fewer do not fit its 8-frame temporal embedding)")
    idx = frame_indices(n, pad=protocol == "vbench")
    frames = np.ascontiguousarray(native[idx])
    size = _resized_size(*frames.shape[1:3])
    if protocol == "vabench":
        frames = center_crop(media.resize_frames(frames[..., ::-1].copy(), size, "bicubic"), SIZE)
    else:
        frames = center_crop(_tensor_bicubic(frames, size), SIZE)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(STD)[None, :, None, None]
    return x, {"frame_indices": [int(i) for i in idx], "protocol": protocol,
               "channel_order": "bgr" if protocol == "vabench" else "rgb"}


def text_for(item: SuiteItem, protocol: str) -> tuple[str, str]:
    """(text, which field it came from)."""
    if protocol == "vabench" and item.video_prompt.strip():
        return item.video_prompt.strip(), "video_prompt"
    return (item.prompt or "").strip(), "prompt"


_NETS: dict = {}
_LOCK = threading.Lock()


def shared_network(device: str, context: RunContext | None = None):
    path = weights.resolve(WEIGHTS, context)
    key = (str(path), str(device))
    with _LOCK:
        if key not in _NETS:
            from mova_eval.metrics.features import viclip

            _NETS[key] = viclip.load(path, device=device)
        return _NETS[key]


def score_video(net, tok, x, text: str, device: str = "cpu") -> tuple[float, dict]:
    """Cosine of the normalised video and text embeddings for one prepared [8, 3, 224, 224] clip."""
    import torch
    import torch.nn.functional as F

    ids, n_tokens = tok(text, "eot", CONTEXT)
    with torch.inference_mode():
        v = F.normalize(net.encode_video(x[None].to(device)).double(), dim=-1)
        t = F.normalize(net.encode_text(torch.tensor([ids], device=device)).double(), dim=-1)
        cos = float((v[0] * t[0]).sum())
    return cos, {"prompt_bpe_tokens": n_tokens, "text_truncated": n_tokens > CONTEXT - 2}


@dataclass(frozen=True)
class ClipVideoViclipOptions:
    """``metrics.options.clip_video_viclip.*``."""

    protocol: Literal["vabench", "vbench"] = option(
        "vabench", protocol=True, help="vabench: VABench second_viclip (BGR quirk, Pillow resize, video_prompt) → clip_video_viclip; "
                        "vbench: VBench overall_consistency (RGB, tensor resize) → clip_video_viclip_vbench")


class ClipVideoViclipMetric(Metric):
    """Prompt–video ViCLIP ViT-L/14 similarity (8 frames, one cosine per clip): VABench's or VBench's protocol."""

    info = MetricInfo(
        name="clip_video_viclip",
        outputs=_outputs("vabench"),
        variant_outputs=_outputs("vbench"),
        description="Text–video ViCLIP score (ViT-L/14 InternVid-10M-FLT, 8 segment-midpoint frames, one cosine; "
                    "VABench, or VBench's overall_consistency with protocol: vbench)",
        needs=frozenset({"video", "text"}),
        extra="video",
        packages=("torch", "ftfy", "regex"),
        weights=(WEIGHTS,),
        aggregation=POOLED_MEAN,
        version="1",
        reference="OpenGVLab/InternVideo Data/InternVid/viclip (network, tokenizer); VABench vabench/second_viclip.py "
                  "and VBench vbench/overall_consistency.py + vbench/utils.py (frames, preprocessing)",
        card=Card(
            ranges=(("clip_video_viclip", "[-1, 1] (cosine of one video and one text embedding)"),
                    ("clip_video_viclip_vbench", "[-1, 1] (cosine; protocol: vbench)")),
            scale="×1 (raw cosine, as both references compute it; no ×100)",
            tables=("VABench: the ViCLIP text–video score (second_viclip), this default variant (BGR frames, "
                    "video prompt)",
                    "VBench: Overall Consistency and Temporal Style dimensions, protocol: vbench "
                    "(clip_video_viclip_vbench) — VBench averages it over its own prompt lists"),
            notes="Not comparable with clip_video (a different network, 8 frames embedded jointly, one cosine); "
                  "the two ViCLIP protocols differ in channel order, resize and text.",
            docs="docs/metrics/clip_video.md",
        ),
    )
    Options = ClipVideoViclipOptions

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.protocol = self.opts.protocol
        self.info = dataclasses.replace(type(self).info, outputs=_outputs(self.protocol))
        self._net = self._tok = None

    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        av = super().availability(context)
        if not av.ok:
            return av
        from mova_eval.metrics.features import clip_bpe

        try:
            clip_bpe.vocab_path(context)
        except WeightsMissingError as e:
            return Availability(False, "the CLIP BPE vocabulary is missing", e.command)
        return av

    def cache_token(self) -> str:
        return json.dumps({"v": self.info.version, "protocol": self.protocol,
                           "w": {WEIGHTS: weights.fingerprint(WEIGHTS, self.context)}}, sort_keys=True)

    def load(self) -> None:
        require_package("clip_video_viclip", "torch", self.info.extra)
        require_package("clip_video_viclip text tokenizer", "ftfy", self.info.extra)
        from mova_eval.metrics.features import clip_bpe

        self._tok = clip_bpe.shared(str(clip_bpe.vocab_path(self.context)))
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        name = self.info.outputs[0].name
        text, field = text_for(item, self.protocol)
        if not text:
            return ItemScore({name: math.nan}, {}, {name: "the item has no prompt text"})
        if self._net is None:
            self.load()
        x, details = prepare(clip, self.protocol)
        value, d = score_video(self._net, self._tok, x, text, self.device)
        details.update(d, text_field=field)
        if not math.isfinite(value):
            return ItemScore({name: math.nan}, details, {name: "ViCLIP gave a non-finite similarity"})
        return ItemScore({name: value}, details)
