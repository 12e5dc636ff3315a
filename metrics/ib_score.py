"""IB-Score: ImageBind (huge) cosine between a clip's audio and video embeddings, plus JavisBench's text–video and
text–audio ImageBind similarities.

``ib_score`` — MOVA's toolkit (``evaluation/metrics/av_quality/eval_av_quality.py`` with its copy of
``hkchengrex/av-benchmark``: ``av_bench/data/media_dataset.py``, ``av_bench/extract.py``), the IB-Score column of
MOVA's Table 4:

1. video: frames at **0.5 fps** from t = 0, ``int(0.5 · 7.9) = 3`` of them (≈ 0, 2, 4 s; a stream short of frames is
   padded with its last frame, as torio's reader does), short side to 224 (bicubic), ``/255``, CLIP mean/std;
   consecutive pairs → 2 two-frame clips, each in 3 spatial crops (start/centre/end of the long side) → 6 clips;
2. audio: the **whole** track (not cut to 7.9 s) at 16 kHz, all channels; ``ConstantClipsPerVideoSampler(2 s, 3)``
   (starts ``k · (D − 2) / 2``); per clip: subtract the clip's mean (over all channels), kaldi fbank of **channel 0**
   (``channel=-1`` in torchaudio means 0), 128 bins, 25/10 ms, pad/cut to 204 frames, ``(x + 4.268) / 9.138``;
3. ImageBind embeds each clip, normalises (audio ×20), averages the clips without renormalising; the clip's value is
   ``cos(video, audio)``; ``all`` is the mean of the category means;
4. MOVA's loader drops a clip whose audio is shorter than 7.9 s (the same dataset serves DeSync); here it is NaN with
   that reason.

``scale: 100`` multiplies by 100 and names the output ``ib_score_x100``: MMAudio's paper and av-benchmark's README
report IB-Score ×100 ("following V-AURA"; 0.2919 ↔ 29.19), MOVA reports the raw cosine (MOVA-360p 0.286). Two scales
never share an output name.

``ib_tv`` / ``ib_ta`` — JavisBench ``calc_imagebind_score`` (JavisDiT ``eval/javisbench/src/metrics.py`` with its
vendored ImageBind ``data.py``): T-V = cos(text(prompt), video), T-A = cos(text(audio prompt, else prompt), audio).
The video input is JavisBench's, not MOVA's: 5 clips of 2 s at starts ``k · max(D − 2, 0) / 4``, the first and last
frame of each clip (``UniformTemporalSubsample(2)``), short side to 224 (bilinear), 3 spatial crops → 15 clips. The
audio input is the same procedure as above. Text: CLIP BPE, context 77; ``text_truncate`` ``"cut"`` (JavisBench's
vendored tokenizer: no end-of-text after truncation; default) or ``"eot"`` (upstream since 2025-11, named
``ib_tv_eot``/``ib_ta_eot``); they differ only for prompts over 75 BPE tokens, whose count is in the details.

Deviations on purpose (docs/metrics/ib_score.md): frames come from the one PyAV decode (nearest earlier frame at
0.5 fps; torio uses ffmpeg's fps filter, JavisBench decord), resizing is Pillow's (bicubic: torchvision v2 antialiased
bicubic on uint8 was written to match it; JavisBench: pytorchvideo's non-antialiased bilinear on floats),
resampling is soxr (MOVA: torchaudio ``Resample``), and the network runs in float32 (MOVA autocasts to fp16).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

from mova_eval import media, weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError, WeightsMissingError
from mova_eval.media import AudioPreset, VideoPreset
from mova_eval.metrics.base import (
    CATEGORY_MEAN,
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

SAMPLE_RATE = 16_000
MOVA_SECONDS = 7.9
MOVA_FPS = 0.5
MOVA_FRAMES = int(MOVA_FPS * MOVA_SECONDS)  # 3
JAVIS_VIDEO_CLIPS = 5

weights.register(weights.WeightSpec(
    name="imagebind_huge",
    filename="imagebind_huge.pth",
    urls=("https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",),
    license="CC-BY-NC-SA 4.0 (non-commercial; the README says CC-BY-NC 4.0, the LICENSE file adds share-alike)",
    used_by=("ib_score", "javis_score"),
    non_commercial=True,
    description="ImageBind huge, a plain state_dict of 1,311 tensors (all six modalities, 1.2 B float32 parameters, "
                "so about 4.8 GB); only vision, text and audio are loaded. No checksum or exact size is published.",
))

VIDEO_PRESET = VideoPreset(fps=MOVA_FPS, short_side=224, filter="bicubic", max_frames=MOVA_FRAMES,
                           name="imagebind_mova")
AUDIO_PRESET = AudioPreset(SAMPLE_RATE, mono=False, name="imagebind16k")


def _outputs(scale: int, truncate: str) -> tuple[Output, ...]:
    av = "ib_score" if scale == 1 else f"ib_score_x{scale}"
    sfx = "" if truncate == "cut" else "_eot"
    unit = "" if scale == 1 else f"cosine ×{scale}"
    return (
        Output(av, "higher", unit, f"cos(ImageBind video, audio) ×{scale}, MOVA toolkit / av-benchmark inputs "
                                   "(3 frames at 0.5 fps × 3 crops; 3 × 2 s audio clips over the whole track)"),
        Output(f"ib_tv{sfx}", "higher", "", "cos(ImageBind text(prompt), video), JavisBench T-V (5 × 2-frame clips × 3 "
                                           f"crops; text truncation {truncate!r})"),
        Output(f"ib_ta{sfx}", "higher", "", "cos(ImageBind text(audio prompt or prompt), audio), JavisBench T-A "
                                           f"(text truncation {truncate!r})"),
    )


_ALL_OUTPUTS = tuple({o.name: o for s in (1, 100) for t in ("cut", "eot") for o in _outputs(s, t)}.values())

_NETS: dict = {}
_NETS_LOCK = threading.Lock()


def shared_network(device: str, context: RunContext | None = None):
    """One ImageBind per (checkpoint, device) in the process (~4.8 GB in float32 for three modalities)."""
    path = weights.resolve("imagebind_huge", context)
    key = (str(path), weights.fingerprint("imagebind_huge", context), str(device))
    with _NETS_LOCK:
        if key not in _NETS:
            from mova_eval.metrics.features import imagebind as ib

            _NETS[key] = ib.load(path, device=device)
        return _NETS[key]


def mova_video_clips(clip: Clip):
    """[6, 3, 2, 224, 224] float tensor of MOVA's vision input, and details."""
    import torch

    from mova_eval.metrics.features import imagebind as ib

    frames = clip.video_for(VIDEO_PRESET)
    details = {"ib_frames": int(len(frames))}
    if len(frames) < MOVA_FRAMES:
        details["ib_video_padded_frames"] = MOVA_FRAMES - len(frames)
        frames = np.concatenate([frames, np.repeat(frames[-1:], MOVA_FRAMES - len(frames), axis=0)])
    _check_size(clip, frames)
    return ib.pair_clips(torch.from_numpy(np.array(frames, dtype=np.uint8))), details


def javis_frame_indices(n_frames: int, fps: float, clips: int = JAVIS_VIDEO_CLIPS) -> list[tuple[int, int]]:
    """(first, last) frame of each of JavisBench's 2 s clips: frames with ``start ≤ i / fps < start + 2`` (the last
    clip runs to the end), at starts ``k · max(D − 2, 0) / (clips − 1)`` with ``D = n_frames / fps``."""
    from mova_eval.metrics.features.imagebind import clip_starts

    duration = Fraction(n_frames) / Fraction(fps).limit_denominator(1_000_000)
    fps_f = Fraction(fps).limit_denominator(1_000_000)
    out = []
    for s in clip_starts(duration, clips):
        first = math.ceil(s * fps_f)
        last = min(math.ceil((s + 2) * fps_f) - 1, n_frames - 1)
        first = min(first, n_frames - 1)
        out.append((first, max(first, last)))
    return out


def javis_video_clips(clip: Clip):
    """[15, 3, 2, 224, 224] float tensor of JavisBench's vision input, and details."""
    import torch

    from mova_eval.metrics.features import imagebind as ib

    native = clip.video_for(VideoPreset(name="native"))
    pairs = javis_frame_indices(native.shape[0], clip.fps)
    idx = sorted({i for p in pairs for i in p})
    h, w = native.shape[1:3]
    s = 224 / min(h, w)
    size = (max(224, int(h * s)), max(224, int(w * s)))  # pytorchvideo ShortSideScale floors the long side
    resized = dict(zip(idx, media.resize_frames(np.ascontiguousarray(native[idx]), size, "bilinear")))
    out = []
    for a, b in pairs:
        x = ib.normalise_pixels(torch.from_numpy(np.stack([resized[a], resized[b]])))
        out += ib.spatial_crops(x)
    return torch.stack(out), {"javis_frame_pairs": pairs}


def _check_size(clip: Clip, frames: np.ndarray) -> None:
    if min(frames.shape[1:3]) < 224:
        raise MediaError(clip.path, f"frames are {frames.shape[2]}x{frames.shape[1]} after the resize; "
                                    "ImageBind needs 224x224 crops")


def audio_clips(clip: Clip):
    """[3, 1, 128, 204] normalised log-mels over the whole track at 16 kHz (channel 0 after the all-channel mean)."""
    import torch

    from mova_eval.metrics.features import imagebind as ib

    wave = clip.audio_for(AUDIO_PRESET)  # [C, N]
    if wave.shape[-1] < int(SAMPLE_RATE * 0.025):
        raise MediaError(clip.path, f"audio has {wave.shape[-1]} samples at 16 kHz; ImageBind needs ≥ one 25 ms frame")
    w = torch.from_numpy(np.array(wave, dtype=np.float64))
    mels, details = ib.audio_clips(w)
    details["audio_channels"] = int(wave.shape[0])
    return mels, details


@dataclass(frozen=True)
class IBScoreOptions:
    """``metrics.options.ib_score.*``."""

    scale: Literal[1, 100] = option(1, protocol=("ib_score",), help="1: cosine as MOVA reports it; 100: ×100 (outputs named *_x100)")
    text_truncate: Literal["cut", "eot"] = option("cut", protocol=("ib_tv", "ib_ta"), help="JavisBench text truncation rule (its own outputs)")
    video_batch: int = option(3, role=RUNTIME, help="clips per forward pass (speed/memory only)")


class IBScoreMetric(Metric):
    """ImageBind huge: audio–video cosine (MOVA protocol) and JavisBench's text–video / text–audio cosines."""

    info = MetricInfo(
        name="ib_score",
        outputs=_outputs(1, "cut"),
        variant_outputs=tuple(o for o in _ALL_OUTPUTS if o.name not in {x.name for x in _outputs(1, "cut")}),
        description="ImageBind-huge audio–video cosine (MOVA toolkit / av-benchmark inputs) and JavisBench T-V, T-A",
        needs=frozenset({"video", "audio"}),
        extra="video",
        packages=("torch", "ftfy", "regex"),
        weights=("imagebind_huge",),
        aggregation=CATEGORY_MEAN,
        version="1",
        reference="hkchengrex/av-benchmark av_bench/extract.py + data/media_dataset.py (OpenMOSS/MOVA "
                  "evaluation/metrics/av_quality copy); JavisDiT eval/javisbench calc_imagebind_score; ImageBind "
                  "imagebind_model.py / data.py",
        card=Card(
            ranges=(
                ("ib_score", "[-1, 1] (cosine); ×100 → [-100, 100] as ib_score_x100"),
                ("ib_tv", "[-1, 1]"),
                ("ib_ta", "[-1, 1]"),
                ("ib_tv_eot", "[-1, 1] (option text_truncate: eot)"),
                ("ib_ta_eot", "[-1, 1] (option text_truncate: eot)"),
                ("ib_score_x100", "[-100, 100] (ib_score ×100, option scale: 100)"),
            ),
            scale="×1 (raw cosine, as MOVA reports); option scale: 100 gives ib_score_x100 as MMAudio/av-benchmark "
                  "print it",
            tables=(
                "MOVA paper Table 4 (Verse-Bench), column IB-Score: ib_score (MOVA toolkit: 3 frames at 0.5 fps from "
                "the first 7.9 s, whole-track audio, mean of the set1/2/3 means)",
                "MMAudio paper / av-benchmark: IB-Score ×100 with 8 s clips (4 frames → 9 video clips): the ×100 "
                "scale, another frame count",
                "JavisBench (JavisDiT paper): T-V and T-A ImageBind columns: ib_tv / ib_ta",
            ),
            reference_values=(
                "MOVA-360p: paper 0.286, MOVA toolkit 0.286 (set1+2+3)",
                "Table 4: LTX-2 0.213, Ovi 0.190, Wan2.1+MMAudio 0.317",
                "MMAudio S-16kHz on VGGSound test: 0.2919 (×100: 29.19; hkchengrex/MMAudio#90)",
            ),
            notes="The checkpoint is non-commercial (CC-BY-NC-SA 4.0); the run log records it. MOVA autocasts to "
                  "fp16 on CUDA; we run fp32.",
            docs="docs/metrics/ib_score.md",
        ),
    )
    Options = IBScoreOptions

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.scale, self.truncate, self.video_batch = self.opts.scale, self.opts.text_truncate, self.opts.video_batch
        if self.video_batch < 1:
            raise ConfigError(f"metrics.options.ib_score.video_batch must be an integer ≥ 1, got {self.video_batch!r}")
        # the outputs this instance reports: their names carry the scale and the truncation rule
        self.info = dataclasses.replace(type(self).info, outputs=_outputs(self.scale, self.truncate))
        self._net = None
        self._tok = None

    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        av = super().availability(context)
        if not av.ok:
            return av
        from mova_eval.metrics.features import clip_bpe

        try:
            clip_bpe.vocab_path(context)
        except WeightsMissingError as e:
            return Availability(False, "the CLIP BPE vocabulary is missing (pip install open-clip-torch --no-deps, "
                                       "or fetch it)", e.command)
        return av

    def cache_token(self) -> str:
        import json

        return json.dumps({"v": self.info.version, "scale": self.scale, "truncate": self.truncate,
                           "w": {"imagebind_huge": weights.fingerprint("imagebind_huge", self.context)}}, sort_keys=True)

    def load(self) -> None:
        require_package("IB-Score", "torch", self.info.extra)
        require_package("IB-Score text tokenizer", "ftfy", self.info.extra)
        from mova_eval.metrics.features import clip_bpe

        self._tok = clip_bpe.shared(str(clip_bpe.vocab_path(self.context)))
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._net is None:
            self.load()
        return score_clip(self._net, self._tok, clip, item, scale=self.scale, truncate=self.truncate,
                          device=self.device, video_batch=self.video_batch, outputs=self.info.outputs)


def score_clip(net, tok, clip: Clip, item: SuiteItem, *, scale: int = 1, truncate: str = "cut", device: str = "cpu",
               video_batch: int = 3, outputs: tuple[Output, ...] | None = None) -> ItemScore:
    """All three values of one clip (the stages are separate functions so tests can compare each)."""
    import torch

    from mova_eval.metrics.features import imagebind as ib

    outs = outputs or _outputs(scale, truncate)
    av_name, tv_name, ta_name = (o.name for o in outs)
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    mels, details = audio_clips(clip)
    with torch.inference_mode():
        audio = ib.clip_mean(net.embed_audio(mels.float().to(device)))
        audio_s = clip.audio_for(AUDIO_PRESET).shape[-1] / SAMPLE_RATE
        if audio_s < MOVA_SECONDS:
            errors[av_name] = (f"audio is {audio_s:.3f} s; MOVA's loader drops clips shorter than {MOVA_SECONDS} s "
                               "(recorded as NaN)")
            values[av_name] = math.nan
        else:
            vclips, d = mova_video_clips(clip)
            details.update(d)
            video = ib.clip_mean(net.embed_vision(vclips.to(device), batch=video_batch))
            values[av_name] = scale * ib.cosine(video, audio)
        prompt = (item.prompt or "").strip()
        audio_text = next((p for p in item.audio_prompts if p.strip()), "") or prompt
        if not prompt:
            for n in (tv_name, ta_name):
                values[n], errors[n] = math.nan, "the item has no prompt text"
        else:
            jclips, d = javis_video_clips(clip)
            details.update(d)
            jvideo = ib.clip_mean(net.embed_vision(jclips.to(device), batch=video_batch))
            ids_v, n_v = tok(prompt, truncate)
            ids_a, n_a = tok(audio_text, truncate)
            text = net.embed_text(torch.tensor([ids_v, ids_a], device=device))
            values[tv_name] = ib.cosine(text[0], jvideo)
            values[ta_name] = ib.cosine(text[1], audio)
            details.update({"prompt_bpe_tokens": n_v, "audio_text_bpe_tokens": n_a,
                            "text_truncated": bool(max(n_v, n_a) > ib.CONTEXT - 2)})
    for k, v in values.items():
        if not math.isfinite(v) and k not in errors:
            errors[k] = "ImageBind gave a non-finite similarity"
    return ItemScore(values, details, errors)


# ----------------------------------------------------------------------------------------------- JavisScore

JAVIS_WINDOW_S = 2.0
JAVIS_OVERLAP_S = 1.5
JAVIS_LOW_SHARE = 0.4
#: AVHScore's frames: every native frame, short side 224 (bicubic), then a 224 centre crop (torchvision rounding)
JAVIS_FRAME_PRESET = VideoPreset(short_side=224, filter="bicubic", name="imagebind_javis_frames")


def window_starts(n: int, size: int, hop: int) -> list[int]:
    """Starts of windows of ``size`` with stride ``hop`` over ``n`` items, the last one clamped to end at ``n`` (one
    window from 0 when ``n ≤ size``). 8.04 s at 24 fps (193 frames, 48/12) and 128,640 samples (32000/8000) both
    give 14 windows, as JavisBench does."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def lowest_share_mean(cos: np.ndarray, share: float = JAVIS_LOW_SHARE) -> float:
    """Mean of the ``int(share · N)`` lowest values (at least one)."""
    k = max(1, int(share * len(cos)))
    return float(np.sort(cos)[:k].mean())


def javis_frame_embeddings(net, clip: Clip, device: str, batch: int):
    """[T, out] embeddings of every native frame as a single image (repeated into a 2-frame clip)."""
    import torch

    from mova_eval.metrics.desync import center_crop
    from mova_eval.metrics.features import imagebind as ib

    frames = center_crop(clip.video_for(JAVIS_FRAME_PRESET))
    out = []
    for i in range(0, len(frames), batch):
        x = ib.normalise_pixels(torch.from_numpy(np.array(frames[i : i + batch], dtype=np.uint8)))  # [3, b, H, W]
        out.append(net.embed_vision(x.permute(1, 0, 2, 3).to(device), batch=batch))
    return torch.cat(out)


def javis_score(net, clip: Clip, *, device: str = "cpu", batch: int = 8) -> tuple[float, dict]:
    import torch

    from mova_eval.metrics.features import imagebind as ib

    fps = float(clip.fps)
    wave = clip.audio_for(AUDIO_PRESET)
    v_win = int(JAVIS_WINDOW_S * fps)
    v_hop = v_win - int(JAVIS_OVERLAP_S * fps)
    a_win = int(JAVIS_WINDOW_S * SAMPLE_RATE)
    a_hop = a_win - int(JAVIS_OVERLAP_S * SAMPLE_RATE)
    if v_win < 1 or v_hop < 1:
        raise MediaError(clip.path, f"{fps:g} fps leaves no 2 s frame window for JavisScore")
    with torch.inference_mode():
        frames = javis_frame_embeddings(net, clip, device, batch)
        vs = window_starts(frames.shape[0], v_win, v_hop)
        as_ = window_starts(wave.shape[-1], a_win, a_hop)
        m = min(len(vs), len(as_))
        per_window = []
        w = torch.from_numpy(np.array(wave, dtype=np.float64))
        for i in range(m):
            mels, _ = ib.audio_clips(w[:, as_[i] : as_[i] + a_win])
            audio = ib.clip_mean(net.embed_audio(mels.float().to(device)))
            fv = frames[vs[i] : vs[i] + v_win].double()
            cos = torch.nn.functional.cosine_similarity(fv, audio.double()[None], dim=-1, eps=1e-6)
            per_window.append(lowest_share_mean(cos.cpu().numpy()))
    details = {"javis_windows": m, "javis_frames_per_window": min(v_win, frames.shape[0]),
               "javis_window_scores": [round(x, 6) for x in per_window]}
    return float(np.mean(per_window)), details


@dataclass(frozen=True)
class JavisOptions:
    """``metrics.options.javis_score.*``."""

    video_batch: int = option(8, role=RUNTIME, help="frames per ViT-H forward pass (speed/memory only)")


class JavisScoreMetric(Metric):
    """JavisBench's JavisScore: per 2 s window (1.5 s overlap), the mean of the lowest 40 % frame–audio cosines."""

    info = MetricInfo(
        name="javis_score",
        outputs=(Output("javis_score", "higher", "",
                        "mean over 2 s windows (hop 0.5 s) of the mean of the lowest 40 % cos(frame, window audio), "
                        "ImageBind huge (JavisBench)"),),
        description="JavisBench JavisScore: windowed ImageBind frame–audio agreement, mean of the lowest 40 %",
        needs=frozenset({"video", "audio"}),
        extra="video",
        packages=("torch",),
        weights=("imagebind_huge",),
        aggregation=POOLED_MEAN,
        version="1",
        reference="JavisDiT eval/javisbench src/metrics.py calc_javis_score (window_size_s=2.0, window_overlap_s=1.5 "
                  "as main.py passes them)",
        card=Card(
            ranges=(("javis_score", "[-1, 1]"),),
            scale="×1 (raw cosine, as JavisBench prints it)",
            tables=("JavisBench (JavisDiT paper), column JavisScore: this variant (2 s windows, 1.5 s overlap, lowest "
                    "40 % of the frames in each window)",),
            notes="Every native frame goes through ImageBind's ViT-H: the most expensive metric per clip. The "
                  "checkpoint is non-commercial (CC-BY-NC-SA 4.0).",
            docs="docs/metrics/ib_score.md",
        ),
    )
    Options = JavisOptions

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.video_batch = self.opts.video_batch
        if self.video_batch < 1:
            raise ConfigError(f"metrics.options.javis_score.video_batch must be an integer ≥ 1, "
                              f"got {self.video_batch!r}")
        self._net = None

    def cache_token(self) -> str:
        import json

        return json.dumps({"v": self.info.version, "w": {"imagebind_huge": weights.fingerprint("imagebind_huge", self.context)}},
                          sort_keys=True)

    def load(self) -> None:
        require_package("JavisScore", "torch", self.info.extra)
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._net is None:
            self.load()
        value, details = javis_score(self._net, clip, device=self.device, batch=self.video_batch)
        if not math.isfinite(value):
            return ItemScore({"javis_score": math.nan}, details, {"javis_score": "non-finite similarity"})
        return ItemScore({"javis_score": value}, details)
