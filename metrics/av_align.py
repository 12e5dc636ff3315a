"""AV-Align: IoU between audio onsets and optical-flow peaks, as the MOVA toolkit's ``av_align_score.py`` defines it.

Video: every frame at the clip's native fps and resolution, converted to grey; OpenCV Farneback flow between
consecutive frames with (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0);
the per-frame value is the mean flow magnitude, the first pair's value duplicated for frame 0. Video peaks are
strict local maxima with magnitude ≥ 0.1, at time i/fps.

Audio: the whole track as 44.1 kHz mono float; ``librosa.onset.onset_strength`` + ``onset_detect`` with their
defaults (hop 512); the onset times are the audio peaks.

IoU: each audio peak is matched greedily to the first not-yet-used video peak less than 1/fps away;
IoU = matches / (A + V − matches), and 0.0 when both sets are empty (MOVA's rule for a zero denominator).

Differences from MOVA, on purpose: frames come from our PyAV decoder (MOVA: ``cv2.VideoCapture``; same FFmpeg
decode, RGB→grey instead of BGR→grey, which is the same luma formula) and the 44.1 kHz track from soxr (MOVA:
ffmpeg). MOVA scores a clip 0.0 on any failure (fewer than 2 frames, a decoding or librosa error) and keeps it
in the mean; we record NaN with the reason and the summary counts it as excluded. MOVA's category mean is
recoverable from ours without scoring failures: mean × n / (n + excluded).
"""
from __future__ import annotations

import math

import numpy as np

from mova_eval.errors import ConfigError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import Card, CATEGORY_MEAN, ItemScore, Metric, MetricInfo, Output
from mova_eval.spec import Clip, SuiteItem

AUDIO_SR = 44_100
PRESET = AudioPreset(AUDIO_SR, mono=True, name="avalign44k")
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
        mag, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        mags.append(float(np.mean(mag)))
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


class AvAlignMetric(Metric):
    info = MetricInfo(
        name="av_align",
        outputs=(Output("av_align", "higher", "IoU", "IoU of audio onsets and optical-flow peaks"),),
        description="Training-free audio-visual alignment (audio onsets vs optical-flow peaks)",
        needs=frozenset({"audio", "video"}),
        extra="speech",
        packages=("cv2", "librosa"),
        aggregation=CATEGORY_MEAN,
        version="1",
        reference="OpenMOSS/MOVA evaluation/metrics/av_quality/av_align_score.py (from guyyariv/TempoTokens)",
        card=Card(
            ranges=(
                ('av_align', '[0, 1]'),
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

    def __init__(self, options=None, device="cpu"):
        super().__init__(options, device)
        if self.options:
            raise ConfigError(f"metrics.options.av_align: unknown option(s) {sorted(self.options)}; it takes none")

    @staticmethod
    def _fail(reason: str, details: dict) -> ItemScore:
        return ItemScore({"av_align": math.nan}, details, {"av_align": reason})

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        frames, fps = clip.video, clip.fps
        details: dict = {"fps": fps, "frames": int(frames.shape[0]) if frames is not None else 0}
        if frames is None or frames.shape[0] < 2 or not fps:
            return self._fail("the clip has fewer than 2 video frames (MOVA scores this 0.0)", details)
        audio = clip.audio_for(PRESET)
        if not np.any(audio):
            return self._fail("the audio track is digital silence: no onsets to align (MOVA scores this 0.0)", details)
        v = video_peaks(clip.derived("video", "av_align.farneback", lambda: flow_magnitudes(frames)), fps)
        a = audio_peaks(audio)
        score, matches = iou(a, v, fps)
        details.update(audio_peaks=len(a), video_peaks=len(v), matches=matches,
                       audio_peak_times=[round(float(x), 4) for x in a], video_peak_times=[round(float(x), 4) for x in v])
        return ItemScore({"av_align": float(score)}, details)
