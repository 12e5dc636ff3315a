"""DeSync: the audio–visual offset Synchformer predicts, in seconds (lower is better).

Two protocols, two output names (never mixed):

``desync`` — MOVA's toolkit (``evaluation/metrics/av_quality/eval_av_quality.py`` + its copy of
``hkchengrex/av-benchmark``: ``av_bench/data/media_dataset.py``, ``extract_video.py``, ``av_bench/extract.py``,
``av_bench/evaluate.py``), the column of MOVA's Table 4:

1. video at 25 fps, the first ``int(25 · 7.9) = 197`` frames (a stream short by a few frames is padded by repeating
   its last frame, as MOVA does); resize the short side to 224 (bicubic), centre-crop 224 (torchvision's
   rounding of the offsets), ``/255``, ``Normalize(0.5, 0.5)``;
2. audio: channel mean, 16 kHz, the first ``int(16000 · 7.9) = 126400`` samples; **a shorter clip is dropped by MOVA —
   here it is NaN with the reason**;
3. 16-frame / 10240-sample segments with stride 8 / 5120 (23 each), both feature extractors on every segment;
4. ``compare_v_a`` on the first 14 and on the last 14 segments (≈ 0–4.8 s and 2.88–7.68 s); offset = the argmax
   class of ``linspace(-2, 2, 21)``; the clip's value is (|first| + |last|) / 2 (av-benchmark pools both windows
   into one list, which has the same mean); ``all`` is the mean of the category means.

``desync_avgen`` — AVGen-Bench (``microsoft/AVGen-Bench eval/Syncformer/batch_eval.py`` with Synchformer's
``dataset/transforms.py`` and ``configs/sync.yaml``): one window in the first 5 s, 14 segments centred in it (video
frames 2–121, audio from sample 1280, i.e. 0.08–4.88 s), frames at 25 fps with the short side at 256 and a
centre crop of 224 (no resize to 224); the clip's value is |Σ softmax(logits) · offsets|, the absolute value of the
*expected* offset (not the expected absolute offset). Clips under 5 s are dropped by AVGen (NaN here). ``all`` is
pooled over clips, like AVGen's ``__ALL__`` row.

Deviations, on purpose (docs/metrics/desync.md): frames come from our one PyAV decode at 25 fps by presentation
time (nearest earlier frame) where torio's ``frame_rate=25`` uses ffmpeg's fps filter and AVGen re-encodes with
ffmpeg; resizing is Pillow's bicubic (torchvision's antialiased tensor bicubic was written to match it; AVGen:
swscale bicubic); resampling is soxr (MOVA: torchaudio ``Resample``); the network runs in float32 (MOVA and AVGen
autocast to fp16 on CUDA).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError
from mova_eval.media import AudioPreset, VideoPreset
from mova_eval.metrics.base import (
    CATEGORY_MEAN,
    POOLED_MEAN,
    Card,
    ItemScore,
    Metric,
    MetricInfo,
    Output,
    require_package,
)
from mova_eval.metrics.options import RUNTIME, option
from mova_eval.spec import Clip, SuiteItem

FPS = 25
SAMPLE_RATE = 16_000
CROP = 224
N_SEG = 14
GRID = np.round(np.linspace(-2.0, 2.0, 21), 10)

weights.register(weights.WeightSpec(
    name="synchformer",
    filename="synchformer_state_dict.pth",
    urls=("https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth",),
    license="not stated for the weights (Synchformer and av-benchmark code: MIT; MMAudio's own checkpoints: "
            "CC-BY-NC 4.0)",
    used_by=("desync", "desync_avgen"),
    description="Synchformer 24-01-04T16-39-21 (AudioSet) as a bare state_dict, 513 tensors, ~907 MB; MMAudio "
                "publishes an md5 and no sha256",
    md5="5b2f5594b0730f70e41e549b7c94390c",
    md5_source="hkchengrex/MMAudio mmaudio/utils/download_utils.py, `links` entry 'synchformer_state_dict.pth' "
               "(read in its fork zsxkib/cog-mmaudio@3cca975)",
))


@dataclass(frozen=True)
class Protocol:
    """Where the 14-segment windows come from and how a clip's value is formed."""

    name: str
    short_side: int  # the frames' short side before the 224 centre crop
    min_seconds: float  # shorter clips are dropped by the reference (NaN here)
    video_frames: int  # frames taken from t = 0
    audio_samples: int
    windows: str  # "first_last" (MOVA/av-benchmark) or "centred_5s" (AVGen)
    value: str  # "argmax_abs" or "abs_expected"


MOVA = Protocol("mova", short_side=224, min_seconds=7.9, video_frames=int(FPS * 7.9),
                audio_samples=int(SAMPLE_RATE * 7.9), windows="first_last", value="argmax_abs")
AVGEN = Protocol("avgen", short_side=256, min_seconds=5.0, video_frames=5 * FPS, audio_samples=5 * SAMPLE_RATE,
                 windows="centred_5s", value="abs_expected")

#: frames a video stream may fall short of the window and still be padded (MOVA pads any shortfall; a clip whose
#: video is far shorter than its audio is not a 7.9 s clip)
MAX_VIDEO_PAD = 2


@dataclass
class Window:
    """One 14-segment comparison: where it starts and the 21 offset logits."""

    start_s: float
    logits: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        z = self.logits.astype(np.float64) - self.logits.max()
        e = np.exp(z)
        return e / e.sum()

    @property
    def argmax_offset(self) -> float:
        return float(GRID[int(np.argmax(self.logits))])

    @property
    def expected_offset(self) -> float:
        return float(np.sum(self.probs * GRID))


@dataclass
class SyncResult:
    value: float
    windows: list[Window] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def center_crop(frames: np.ndarray, size: int = CROP) -> np.ndarray:
    """torchvision ``CenterCrop``: offsets ``int(round((H − size) / 2))`` (Python rounding), as both references."""
    h, w = frames.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"frames are {w}x{h}, smaller than the {size}x{size} crop")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return frames[:, top : top + size, left : left + size]


def video_preset(p: Protocol) -> VideoPreset:
    return VideoPreset(fps=float(FPS), short_side=p.short_side, filter="bicubic", max_frames=p.video_frames,
                       name=f"synchformer_{p.name}")


AUDIO_PRESET = AudioPreset(SAMPLE_RATE, mono=True, name="synchformer16k")


def prepare(clip: Clip, p: Protocol) -> tuple[np.ndarray, np.ndarray, dict]:
    """(frames uint8 [T, 224, 224, 3], audio float32 [N], details) for the protocol, or MediaError when too short."""
    audio = clip.audio_for(AUDIO_PRESET)
    frames = clip.video_for(video_preset(p))
    have_s = min(len(audio) / SAMPLE_RATE, len(frames) / FPS)
    details: dict = {"protocol": p.name, "frames_25fps": int(len(frames)), "audio_s": round(len(audio) / SAMPLE_RATE, 4)}
    if len(audio) < p.audio_samples or len(frames) < p.video_frames - MAX_VIDEO_PAD:
        raise MediaError(clip.path, f"too short for DeSync ({p.name}): {len(frames)} frames at 25 fps and "
                                    f"{len(audio) / SAMPLE_RATE:.3f} s of audio ({have_s:.3f} s); the protocol needs "
                                    f"{p.min_seconds:g} s (the reference drops such clips)")
    if len(frames) < p.video_frames:  # MOVA's decoder pads a short stream with its last frame
        details["video_padded_frames"] = p.video_frames - len(frames)
        frames = np.concatenate([frames, np.repeat(frames[-1:], p.video_frames - len(frames), axis=0)])
    return center_crop(frames[: p.video_frames]), audio[: p.audio_samples], details


def score_window_sets(net, frames: np.ndarray, audio: np.ndarray, p: Protocol, *, device: str = "cpu",
                      v_batch: int = 4) -> SyncResult:
    """Frames [T, 224, 224, 3] and audio [N] prepared for ``p`` → the clip's value and its windows."""
    import torch

    from mova_eval.metrics.features import synchformer as sf

    if p.windows == "centred_5s":
        span_v = sf.SEGMENT_FRAMES + (N_SEG - 1) * sf.SEGMENT_STEP_FRAMES  # 120 frames
        v0 = (p.video_frames - span_v) // 2  # frame 2
        a0 = v0 * SAMPLE_RATE // FPS  # sample 1280 (the same instant, 0.08 s)
        span_a = sf.SEGMENT_SAMPLES + (N_SEG - 1) * sf.SEGMENT_STEP_SAMPLES
        frames, audio = frames[v0 : v0 + span_v], audio[a0 : a0 + span_a]
    with torch.inference_mode():
        # copies: the preset arrays are read-only and shared with other metrics
        vid = sf.video_segments(torch.from_numpy(np.array(frames, dtype=np.uint8)).to(device))
        aud = sf.log_mel(sf.audio_segments(torch.from_numpy(np.array(audio, dtype=np.float32)).to(device)))
        n = min(vid.shape[0], aud.shape[0])
        if n < N_SEG:
            raise ValueError(f"{n} segments; Synchformer compares exactly {N_SEG}")
        vf = net.visual_features(vid[:n], batch=v_batch)
        af = net.audio_features(aud[:n])
        if p.windows == "first_last":
            starts = [0, n - N_SEG]
        else:
            starts = [0]
        logits = net.compare(torch.stack([vf[s : s + N_SEG] for s in starts]),
                             torch.stack([af[s : s + N_SEG] for s in starts])).float().cpu().numpy()
    offset0 = v0 / FPS if p.windows == "centred_5s" else 0.0
    wins = [Window(offset0 + s * sf.SEGMENT_STEP_FRAMES / FPS, logits[i]) for i, s in enumerate(starts)]
    if p.value == "argmax_abs":
        value = float(np.mean([abs(w.argmax_offset) for w in wins]))
    else:
        value = abs(wins[0].expected_offset)
    details = {"segments": int(n), "windows": [
        {"start_s": round(w.start_s, 4), "argmax_offset_s": w.argmax_offset,
         "expected_offset_s": round(w.expected_offset, 6), "p_max": round(float(w.probs.max()), 6)} for w in wins]}
    return SyncResult(value, wins, details)


_NETS: dict = {}
_NETS_LOCK = threading.Lock()


def shared_network(device: str, context: RunContext | None = None):
    """One Synchformer per (checkpoint, device) in the process: ``desync`` and ``desync_avgen`` share it (~1 GB)."""
    path = weights.resolve("synchformer", context)
    key = (str(path), weights.fingerprint("synchformer", context), str(device))
    with _NETS_LOCK:
        if key not in _NETS:
            from mova_eval.metrics.features import synchformer as sf

            _NETS[key] = sf.load(path, device=device)
        return _NETS[key]


@dataclass(frozen=True)
class DeSyncOptions:
    """``metrics.options.desync.*`` / ``desync_avgen.*``."""

    video_batch: int = option(4, role=RUNTIME, help="clips' windows per Synchformer forward pass (speed/memory only)")


class DeSyncMetric(Metric):
    Options = DeSyncOptions
    """|offset| in seconds from Synchformer, MOVA/av-benchmark protocol (first and last 4.8 s of the first 7.9 s)."""

    protocol = MOVA
    info = MetricInfo(
        name="desync",
        outputs=(Output("desync", "lower", "s",
                        "mean |argmax offset| of Synchformer over the first and last 14 segments of the first 7.9 s"),),
        description="Audio-visual desynchronisation (Synchformer), MOVA toolkit / av-benchmark protocol",
        needs=frozenset({"video", "audio"}),
        extra="video",
        packages=("torch",),
        weights=("synchformer",),
        aggregation=CATEGORY_MEAN,
        version="1",
        reference="hkchengrex/av-benchmark av_bench/synchformer + extract_video.py/extract.py/evaluate.py "
                  "(OpenMOSS/MOVA evaluation/metrics/av_quality copy)",
        card=Card(
            ranges=(
                ('desync', '[0, 2] s in steps of 0.1 s per clip (the mean of two multiples of 0.2 s)'),
            ),
            scale='×1 (seconds)',
            tables=(
                "MOVA paper Table 4 (Verse-Bench objective comparison), column DeSync: this variant (MOVA toolkit = "
                "av-benchmark with L = 7.9 s, mean of the set1/2/3 means)",
                'MMAudio paper tables: av-benchmark with L = 8 s on VGGSound (same rule, other clip length)',
            ),
            reference_values=(
                'MOVA-360p: paper 0.475, MOVA toolkit 0.475 on set1+2+3 (evaluation README)',
                "Table 4: LTX-2 0.451, Ovi 0.515, WAN2.1+MMAudio 0.260, MOVA-720p 0.485, MOVA-360p dual CFG 0.351, "
                "MOVA-720p dual CFG 0.370",
                "av-benchmark on MMAudio S-16kHz, VGGSound test: 0.4891 reproduced vs 0.483 in the MMAudio paper "
                "(hkchengrex/MMAudio#90; 8 s clips)",
            ),
            notes='MOVA and av-benchmark autocast to fp16 on CUDA; we run fp32.',
            docs='docs/metrics/desync.md',
        ),
    )
    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.video_batch = self.opts.video_batch
        if self.video_batch < 1:
            raise ConfigError(f"metrics.options.{self.info.name}.video_batch must be ≥ 1, got {self.video_batch}")
        self._net = None

    def cache_token(self) -> str:
        # the batch size changes speed and memory, not the numbers
        import json

        return json.dumps({"v": self.info.version, "p": self.protocol.name,
                           "w": {"synchformer": weights.fingerprint("synchformer", self.context)}}, sort_keys=True)

    def load(self) -> None:
        require_package("DeSync", "torch", self.info.extra)
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._net is None:
            self.load()
        name = self.info.outputs[0].name
        frames, audio, details = prepare(clip, self.protocol)
        res = score_window_sets(self._net, frames, audio, self.protocol, device=self.device, v_batch=self.video_batch)
        details.update(res.details)
        if not math.isfinite(res.value):
            return ItemScore({name: math.nan}, details, {name: "Synchformer returned non-finite logits"})
        return ItemScore({name: res.value}, details)


class DeSyncAVGenMetric(DeSyncMetric):
    """AVGen-Bench's DeSync: |expected offset| of one centred window in the first 5 s at short side 256."""

    protocol = AVGEN
    info = MetricInfo(
        name="desync_avgen",
        outputs=(Output("desync_avgen", "lower", "s",
                        "|softmax-expected Synchformer offset| of one 14-segment window at 0.08–4.88 s (AVGen-Bench)"),),
        description="Audio-visual desynchronisation (Synchformer), AVGen-Bench protocol; not comparable with desync",
        needs=frozenset({"video", "audio"}),
        extra="video",
        packages=("torch",),
        weights=("synchformer",),
        aggregation=POOLED_MEAN,
        version="1",
        reference="microsoft/AVGen-Bench eval/Syncformer/batch_eval.py (v-iashin/Synchformer transforms)",
        card=Card(
            ranges=(
                ('desync_avgen', '[0, 2] s'),
            ),
            scale="×1 (seconds); AVGen's normalised AV_n = 100·max(0, 1 − value/0.5 s) is not computed",
            tables=(
                "AVGen-Bench README 'AV' column (this variant: one window, |softmax-expected offset|, all videos "
                "pooled)",
            ),
            reference_values=(
                "AVGen-Bench README AV (s): NanoBanana2+MOVA 0.44, Emu3.5+MOVA 0.38, LTX-2 0.23, Ovi 0.37, "
                "Kling-V2.6 0.21",
            ),
            notes="Not comparable with desync: another window, another statistic (expectation vs argmax) and "
                  "another resize.",
            docs='docs/metrics/desync.md',
        ),
    )
