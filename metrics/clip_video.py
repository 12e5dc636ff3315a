"""Text–video CLIP score: mean over 48 frames of cos(CLIP image(frame), CLIP text(prompt)), JavisBench's protocol.

JavisDiT ``eval/javisbench`` ``calc_clip_score`` (``src/metrics.py``, ``src/dataset.py`` ``VideoFrameDataset``,
``src/utils.py`` ``read_video_cv2``) with OpenAI CLIP ViT-B/32:

1. frames ``round(linspace(0, T − 1, 48))`` of the native stream (fewer when the stream has fewer frames: repeats);
2. **channel order quirk**: JavisBench's reader converts BGR→RGB and its frame transform converts again, so CLIP sees
   **BGR** images. ``clip_video`` keeps the quirk (comparable with JavisBench); ``channel_order: rgb`` feeds RGB and
   names the output ``clip_video_rgb``;
3. short side to 224 (bicubic; the long side ``int(224 · long / short)`` as torchvision's ``Resize``), centre crop 224
   (torchvision rounding), ``/255``, OpenAI mean/std ``(0.48145466, 0.4578275, 0.40821073)`` /
   ``(0.26862954, 0.26130258, 0.27577711)``;
4. text: CLIP BPE with end-of-text kept when truncating to 77 (``clip.tokenize(truncate=True)``);
5. both embeddings L2-normalised; the clip's value is the **mean of the 48 cosines** (no ×100, no ``max(·, 0)``,
   unlike torchmetrics' CLIPScore); the set value is pooled over clips.

Frames come from the one PyAV decode (JavisBench seeks with cv2); resizing is Pillow's bicubic, as CLIP's own
preprocess (PIL). ViCLIP is the separate metric ``clip_video_viclip`` (``metrics/clip_video_viclip.py``).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mova_eval import media, weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError, WeightsMissingError
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
from mova_eval.metrics.options import RUNTIME, option
from mova_eval.spec import Clip, SuiteItem

N_FRAMES = 48
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"

weights.register(weights.WeightSpec(
    name="clip_vit_b32_openai",
    filename="ViT-B-32.pt",
    urls=(f"https://openaipublic.azureedge.net/clip/models/{_SHA}/ViT-B-32.pt",),
    license="MIT (OpenAI CLIP)",
    used_by=("clip_video",),
    sha256=_SHA,  # OpenAI's download path is the file's sha256 (clip.load checks it)
    sha256_source="OpenAI's download path (openai/CLIP clip/clip.py _MODELS['ViT-B/32'])",
    description="OpenAI CLIP ViT-B/32, TorchScript archive with fp16 weights (cast to float32 on load)",
))


def _outputs(order: str) -> tuple[Output, ...]:
    name = "clip_video" if order == "bgr" else "clip_video_rgb"
    what = ("frames fed in BGR order as JavisBench does (its double colour conversion)" if order == "bgr"
            else "frames fed in RGB order (corrected)")
    return (Output(name, "higher", "", f"mean over 48 frames of cos(CLIP ViT-B/32 image, text(prompt)); {what}"),)


def frame_indices(n: int, k: int = N_FRAMES) -> np.ndarray:
    """``round(linspace(0, n − 1, k))`` (numpy rounds halves to even, as JavisBench's ``np.round``)."""
    return np.round(np.linspace(0, n - 1, k)).astype(int)


def prepare(clip: Clip, order: str = "bgr"):
    """[48, 3, 224, 224] normalised float tensor and details."""
    import torch

    from mova_eval.metrics.desync import center_crop

    native = clip.video_for(VideoPreset(name="native"))
    if native.shape[0] == 0:
        raise MediaError(clip.path, "the video stream has no frames")
    idx = frame_indices(native.shape[0])
    h, w = native.shape[1:3]
    if h <= w:
        size = (224, int(224 * w / h))
    else:
        size = (int(224 * h / w), 224)
    frames = center_crop(media.resize_frames(np.ascontiguousarray(native[idx]), size, "bicubic"))
    if order == "bgr":
        frames = frames[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(STD)[None, :, None, None]
    return x, {"frame_indices": [int(i) for i in idx], "channel_order": order}


_NETS: dict = {}
_LOCK = threading.Lock()


def shared_network(device: str, context: RunContext | None = None):
    path = weights.resolve("clip_vit_b32_openai", context)
    key = (str(path), str(device))
    with _LOCK:
        if key not in _NETS:
            from mova_eval.metrics.features import clip_vit

            _NETS[key] = clip_vit.load(path, device=device)
        return _NETS[key]


def score_frames(net, tok, x, prompt: str, device: str = "cpu", batch: int = 16) -> tuple[float, dict]:
    import torch
    import torch.nn.functional as F

    ids, n_tokens = tok(prompt, "eot")
    with torch.inference_mode():
        img = F.normalize(net.encode_image(x.to(device), batch=batch).double(), dim=-1)
        txt = F.normalize(net.encode_text(torch.tensor([ids], device=device)).double(), dim=-1)
        cos = (img @ txt[0]).cpu().numpy()
    return float(cos.mean()), {"prompt_bpe_tokens": n_tokens, "text_truncated": n_tokens > 75,
                               "frame_cosine_min": round(float(cos.min()), 6),
                               "frame_cosine_max": round(float(cos.max()), 6)}


@dataclass(frozen=True)
class ClipVideoOptions:
    """``metrics.options.clip_video.*``."""

    channel_order: Literal["bgr", "rgb"] = option("bgr", protocol=True, help="bgr: JavisBench's quirk; rgb: the corrected variant "
                                                              "(outputs named *_rgb)")
    frame_batch: int = option(16, role=RUNTIME, help="frames per ViT-B/32 forward pass (speed/memory only)")


class ClipVideoMetric(Metric):
    """Prompt–frames CLIP ViT-B/32 similarity, JavisBench protocol (48 frames, mean cosine)."""

    info = MetricInfo(
        name="clip_video",
        outputs=_outputs("bgr"),
        variant_outputs=_outputs("rgb"),
        description="Text–video CLIP score (OpenAI ViT-B/32, 48 uniformly sampled frames, mean cosine; JavisBench)",
        needs=frozenset({"video", "text"}),
        extra="video",
        packages=("torch", "ftfy", "regex"),
        weights=("clip_vit_b32_openai",),
        aggregation=POOLED_MEAN,
        version="1",
        reference="JavisDiT eval/javisbench src/metrics.py calc_clip_score (OpenAI clip ViT-B/32); network parity "
                  "with open_clip ViT-B-32-quickgelu",
        card=Card(
            ranges=(("clip_video", "[-1, 1] (cosine; ≈ 0.2–0.35 for real pairs with real weights)"),
                    ("clip_video_rgb", "[-1, 1] (cosine; channel_order: rgb)")),
            scale="×1 (raw cosine, as JavisBench prints it; torchmetrics' CLIPScore is 100·max(cos, 0))",
            tables=("JavisBench (JavisDiT paper), text–video CLIP column: this variant (BGR frames as its reader "
                    "delivers them)",),
            notes="channel_order: rgb gives the corrected clip_video_rgb.",
            docs="docs/metrics/clip_video.md",
        ),
    )
    Options = ClipVideoOptions

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.order, self.batch = self.opts.channel_order, self.opts.frame_batch
        if self.batch < 1:
            raise ConfigError(f"metrics.options.clip_video.frame_batch must be an integer ≥ 1, got {self.batch!r}")
        self.info = dataclasses.replace(type(self).info, outputs=_outputs(self.order))
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
        import json

        return json.dumps({"v": self.info.version, "order": self.order,
                           "w": {"clip_vit_b32_openai": weights.fingerprint("clip_vit_b32_openai", self.context)}}, sort_keys=True)

    def load(self) -> None:
        require_package("clip_video", "torch", self.info.extra)
        require_package("clip_video text tokenizer", "ftfy", self.info.extra)
        from mova_eval.metrics.features import clip_bpe

        self._tok = clip_bpe.shared(str(clip_bpe.vocab_path(self.context)))
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        name = self.info.outputs[0].name
        prompt = (item.prompt or "").strip()
        if not prompt:
            return ItemScore({name: math.nan}, {}, {name: "the item has no prompt text"})
        if self._net is None:
            self.load()
        x, details = prepare(clip, self.order)
        value, d = score_frames(self._net, self._tok, x, prompt, self.device, self.batch)
        details.update(d)
        if not math.isfinite(value):
            return ItemScore({name: math.nan}, details, {name: "CLIP gave a non-finite similarity"})
        return ItemScore({name: value}, details)
