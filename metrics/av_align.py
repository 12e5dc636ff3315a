"""AV-Align: IoU between audio onsets and optical-flow peaks, as the MOVA toolkit's ``av_align_score.py`` defines it.

Video: every frame at the clip's native fps and resolution, converted to grey; OpenCV Farneback flow between
consecutive frames with (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0);
the per-frame value is the mean flow magnitude, the first pair's value duplicated for frame 0. Video peaks are
strict local maxima with magnitude ≥ 0.1, at time i/fps.

Audio: the whole track as 44.1 kHz mono float; ``librosa.onset.onset_strength`` + ``onset_detect`` with their
defaults (hop 512); the onset times are the audio peaks.

IoU: each audio peak is matched greedily to the first not-yet-used video peak less than 1/fps away;
IoU = matches / (A + V − matches), and 0.0 when both sets are empty (MOVA's rule for a zero denominator).

Decode (option ``decode``): ``mova`` (default) reads the 44.1 kHz track as the toolkit's ``ffmpeg -i CLIP -f f32le
-ac 1 -ar 44100`` writes it (:func:`mova_eval.media.ffmpeg_audio`: FFmpeg's resampler and downmix, AAC end
padding kept, no alignment to the video) — onset times then equal the toolkit's exactly
(tests/metrics/test_mova_decode_parity.py); ``corrected`` uses our aligned Clip track through soxr, which moved
one onset by one hop on 4 of 36 clips, and writes ``av_align_corrected`` (two decodes never share an output name;
runs before metric version 3 wrote ``av_align`` for both). Flow: the per-frame value is ``cv2.mean`` of ``cv2.magnitude`` (a
double-precision mean, as the toolkit); a float32 mean can merge two neighbouring frames' values and lose a peak.
Frames come from our PyAV decoder (MOVA: ``cv2.VideoCapture``, the same FFmpeg decode; RGB→grey here, BGR→grey
there, the same luma formula).

Differences from MOVA, on purpose: MOVA scores a clip 0.0 on any failure (fewer than 2 frames, a decoding or
librosa error, and digital silence gives no onsets so IoU 0.0) and keeps it in the mean; we record NaN with the
reason and the summary counts it as excluded. MOVA's zero-included mean is not recoverable from ours by a
formula when clips are missing altogether; report it with ``aggregation: mova`` (not yet available: see
docs/metrics/av_align.md).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mova_eval.media import AudioPreset
from mova_eval.metrics.base import CATEGORY_MEAN, Card, ItemScore, Metric, MetricInfo, Output, variant_of
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

AUDIO_SR = 44_100
PRESET = AudioPreset(AUDIO_SR, mono=True, name="avalign44k")
#: The toolkit's decode: ffmpeg to 44.1 kHz mono float32, padding kept.
MOVA_PRESET = AudioPreset(AUDIO_SR, mono=True, name="avalign44k_ffmpeg_f32", decoder="ffmpeg", ffmpeg_channels=1,
                          sample_format="flt")
DECODES = {"mova": MOVA_PRESET, "corrected": PRESET}
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
MIN_PEAK = 0.1


def flow_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Mean Farneback flow magnitude per frame ([T] float; entry 0 repeats entry 1)."""
    import cv2

    prev = cv2.cvtColor(np.ascontiguousarray(frames[0]), cv2.COLOR_RGB2GRAY)
    mags = []
    for f in frames[1:]:
        cur = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(prev, cur, None, *FARNEBACK)
        mags.append(float(cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]))  # double-precision mean
        prev = cur
    return np.array([mags[0]] + mags, dtype=np.float64)


def video_peaks(mags: np.ndarray, fps: float) -> np.ndarray:
    i = np.arange(1, len(mags) - 1)
    keep = (mags[i] > mags[i - 1]) & (mags[i] > mags[i + 1]) & (mags[i] >= MIN_PEAK)
    return i[keep] / float(fps)


def audio_peaks(audio: np.ndarray, sr: int = AUDIO_SR) -> np.ndarray:
    import librosa

    env = librosa.onset.onset_strength(y=np.asarray(audio, dtype=np.float32), sr=sr)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr)
    return librosa.frames_to_time(frames, sr=sr)


def iou(a_peaks: np.ndarray, v_peaks: np.ndarray, fps: float) -> tuple[float, int]:
    used = np.zeros(len(v_peaks), dtype=bool)
    matches = 0
    tol = 1.0 / float(fps)
    for t in a_peaks:
        for j, v in enumerate(v_peaks):
            if not used[j] and abs(t - v) < tol:
                used[j] = True
                matches += 1
                break
    denom = len(a_peaks) + len(v_peaks) - matches
    return (matches / denom if denom > 0 else 0.0), matches


@dataclass(frozen=True)
class AvAlignOptions:
    """``metrics.options.av_align.*``."""

    decode: Literal["mova", "corrected"] = option("mova", protocol=True, help="mova: the toolkit's s16 decode; "
                                                             "corrected: float (output av_align_corrected)")


_OUTPUTS = (Output("av_align", "higher", "IoU", "IoU of audio onsets and optical-flow peaks"),)
_CORRECTED = variant_of(_OUTPUTS, "_corrected", "decode: corrected, our soxr track, not the toolkit's ffmpeg decode")


class AvAlignMetric(Metric):
    Options = AvAlignOptions
    info = MetricInfo(
        name="av_align",
        outputs=_OUTPUTS,
        variant_outputs=_CORRECTED,
        description="Training-free audio-visual alignment (audio onsets vs optical-flow peaks)",
        needs=frozenset({"audio", "video"}),
        extra="speech",
        packages=("cv2", "librosa"),
        aggregation=CATEGORY_MEAN,
        version="3",  # 3: decode corrected writes av_align_corrected
        reference="OpenMOSS/MOVA evaluation/metrics/av_quality/av_align_score.py (from guyyariv/TempoTokens)",
        card=Card(
            ranges=(
                ('av_align', '[0, 1]'),
                ('av_align_corrected', '[0, 1]'),
            ),
            scale='×1 (IoU as a fraction)',
            tables=(
                "none located: MOVA's evaluation README lists it as a 'paper score' but it is not in Table 4 (MOVA "
                "toolkit variant, set1+2+3)",
            ),
            reference_values=(
                "MOVA-360p 0.238 (MOVA evaluation README, toolkit reproduces it; MOVA scores failures 0.0, we "
                "exclude them)",
            ),
            docs='docs/metrics/av_align.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.decode = self.opts.decode
        if self.decode == "corrected":  # its own output name: two decodes never share one
            self.info = dataclasses.replace(type(self).info, outputs=_CORRECTED)

    def _fail(self, reason: str, details: dict) -> ItemScore:
        name = self.info.outputs[0].name
        return ItemScore({name: math.nan}, details, {name: reason})

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        frames, fps = clip.video, clip.fps
        details: dict = {"decode": self.decode, "fps": fps, "frames": int(frames.shape[0]) if frames is not None else 0}
        if frames is None or frames.shape[0] < 2 or not fps:
            return self._fail("the clip has fewer than 2 video frames (MOVA scores this 0.0)", details)
        audio = clip.audio_for(DECODES[self.decode])
        if not np.any(audio):
            return self._fail("the audio track is digital silence: no onsets to align (MOVA scores this 0.0)", details)
        v = video_peaks(clip.derived("video", "av_align.farneback", lambda: flow_magnitudes(frames)), fps)
        a = audio_peaks(audio)
        score, matches = iou(a, v, fps)
        details.update(audio_peaks=len(a), video_peaks=len(v), matches=matches,
                       audio_peak_times=[round(float(x), 4) for x in a], video_peak_times=[round(float(x), 4) for x in v])
        return ItemScore({self.info.outputs[0].name: float(score)}, details)
