"""LSE-C / LSE-D: lip-sync confidence and distance from SyncNet v2 (Prajwal et al., Wav2Lip, 2020).

The whole pipeline, as the MOVA toolkit runs it (``evaluation/models/wav2lip/evaluation/syncnet_python``:
``run_pipeline.py`` + ``SyncNetInstance_calc_scores.py`` + ``eval_lip_sync.py``), but in memory and batched:

1. frames at 25 fps (nearest earlier frame), audio mono 16 kHz as int16 (float × 32768, rounded, clipped);
2. scene cuts: PySceneDetect's ``ContentDetector`` defaults (HSV mean absolute difference ≥ 27, flash filter in
   merge mode over 15 frames, frames downscaled to ~256 px wide with bilinear filtering);
3. S3FD faces on each frame of every scene long enough to hold a track (RGB scaled by 0.25, conf > 0.9);
4. greedy IoU tracking per scene (IoU > 0.5 to the track's last box, ≤ 25 frames gap), tracks longer than
   ``min_track`` detections, boxes linearly interpolated, mean box side > 100 px;
5. crops: centre and half-size median-filtered (kernel 13), frame padded with grey 110, rows cy−s … cy+1.8s,
   cols cx−1.4s … cx+1.4s, bilinear resize to 224×224 (the reference's exact integer truncations);
6. per track: 13 MFCCs (python_speech_features defaults) of the track's audio slice, 5-frame lip windows against
   20-column MFCC windows, offsets −15…+15, ``mdist`` = mean distance per offset, LSE-D = min, LSE-C = median − min,
   offset = 15 − argmin;
7. per video: the track with the largest C − D (first one on ties); its C and D are the clip's values.

Videos with no usable face track are excluded (NaN with the reason), never scored. ``all`` is pooled over clips
(MOVA's LSE rule). Modes (``metrics.options.lse.mode``): ``mova`` (min_track 20, the MOVA toolkit) and ``syncnet``
(min_track 100, joonson/syncnet_python's defaults), whose outputs are named ``lse_c_syncnet``/``lse_d_syncnet``
(``lse_c_mediapipe_syncnet``… for ``lse_mediapipe``) so the two protocols never share a name (before metric
version 2 both wrote ``lse_c``/``lse_d``). The metric ``lse_mediapipe`` swaps S3FD for the weight-free
MediaPipe face detector; its outputs carry their own names so they are never mistaken for S3FD-based LSE.
Deviations from the reference (no lossy JPEG/XVID/MPEG-4 intermediates, soxr resampling, silent audio excluded)
are listed in docs/metrics/lse.md.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError
from mova_eval.media import AudioPreset, frame_indices
from mova_eval.metrics.base import (
    POOLED_MEAN,
    Availability,
    Card,
    ItemScore,
    Metric,
    MetricInfo,
    Output,
    require_package,
    variant_of,
)
from mova_eval.metrics.options import RUNTIME, option
from mova_eval.spec import Clip, SuiteItem

FPS = 25
SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
WINDOW = 5  # video frames per SyncNet window (0.2 s); audio windows are 20 MFCC columns
CROP = 224
PAD_VALUE = 110

weights.register(weights.WeightSpec(
    name="syncnet_v2",
    filename="syncnet_v2.model",
    urls=("https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",),
    license="MIT (joonson/syncnet_python, which distributes it; no separate licence is stated for the weights)",
    used_by=("lse", "lse_mediapipe", "lse_latentsync", "lipsync_offset_avgen"),
    description="SyncNet v2 (1024-d audio and lip streams), state_dict",
))
weights.register(weights.WeightSpec(
    name="sfd_face",
    filename="sfd_face.pth",
    urls=("https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",),
    license="unstated (distributed with joonson/syncnet_python, MIT)",
    used_by=("lse", "lse_latentsync", "lipsync_offset_avgen"),
    description="S3FD face detector state_dict (the face-alignment s3fd-619a316812.pth mirror uses other key names)",
))
weights.register(weights.WeightSpec(
    name="syncnet_example",
    filename="example.avi",
    urls=("https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/example.avi",),
    license="MIT (joonson/syncnet_python demo clip)",
    used_by=("tests",),
    description="SyncNet demo clip: offset 3, min dist 5.353, confidence 10.021 (regression test)",
))


@dataclass(frozen=True)
class Params:
    min_track: int
    facedet_scale: float = 0.25
    conf_th: float = 0.9
    crop_scale: float = 0.40
    num_failed_det: int = 25
    min_face_size: float = 100
    iou_threshold: float = 0.5
    vshift: int = 15
    scene_threshold: float = 27.0
    scene_min_len: int = 15


MODES = {
    "mova": Params(min_track=20),      # OpenMOSS/MOVA run_pipeline.py
    "syncnet": Params(min_track=100),  # joonson/syncnet_python run_pipeline.py
}


# ----------------------------------------------------------------------------------------------- audio


def to_int16(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] → int16 as ffmpeg's pcm_s16le conversion does (× 32768, round half to even, clip)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc(audio_int16: np.ndarray) -> np.ndarray:
    """[13, N] MFCCs at 100 Hz with python_speech_features' defaults, on the raw int16 values (as the reference)."""
    psf = require_package("LSE", "python_speech_features", "lipsync")
    return np.ascontiguousarray(psf.mfcc(audio_int16, SAMPLE_RATE).T)


# ----------------------------------------------------------------------------------------------- scenes


def _downscale(frame: np.ndarray) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    factor = max(w, h) / 256.0
    if max(w, h) < 256 or factor <= 1.0:
        return frame
    return cv2.resize(frame, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_LINEAR)


def scene_cuts(frames_rgb, threshold: float = 27.0, min_len: int = 15) -> list[int]:
    """Frame numbers where a new scene starts (PySceneDetect 0.6 ``ContentDetector`` defaults, merge flash filter)."""
    import cv2

    cuts: list[int] = []
    last = None
    last_above = None
    merge_enabled = merge_triggered = False
    merge_start = 0
    for n, frame in enumerate(frames_rgb):
        hsv = cv2.cvtColor(_downscale(np.ascontiguousarray(frame)), cv2.COLOR_RGB2HSV).astype(np.int32)
        score = 0.0 if last is None else float(np.abs(hsv - last).reshape(-1, 3).mean(0).sum() / 3.0)
        last = hsv
        above = score >= threshold
        if last_above is None:
            last_above = n
        long_enough = (n - last_above) >= min_len
        if above:
            last_above = n
        if merge_triggered:
            if long_enough and not above and (last_above - merge_start) >= min_len:
                merge_triggered = False
                cuts.append(last_above)
            continue
        if not above:
            continue
        if long_enough:
            merge_enabled = True
            cuts.append(n)
        elif merge_enabled:
            merge_triggered, merge_start = True, n
    return sorted(set(cuts))


def scenes_from_cuts(cuts: list[int], n_frames: int) -> list[tuple[int, int]]:
    bounds = [0, *cuts, n_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


# ----------------------------------------------------------------------------------------------- tracking


@dataclass
class Track:
    frames: np.ndarray  # int [T], consecutive frame numbers
    boxes: np.ndarray  # float64 [T, 4] x1, y1, x2, y2 (interpolated)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def track_shot(scene_dets: list[list[tuple[int, list[float]]]], p: Params) -> list[Track]:
    """Greedy tracks in one scene, with the reference's exact visiting order.

    ``scene_dets``: per frame, (frame number, [x1, y1, x2, y2]) detections. The reference removes a face from the
    frame's list while iterating over it, which skips the face that followed; that order is reproduced here.
    A face further than ``num_failed_det`` frames from the track's last box ends the scan of its frame.
    """
    from scipy.interpolate import interp1d

    pending = [list(f) for f in scene_dets]
    tracks = []
    while True:
        track: list[tuple[int, list[float]]] = []
        for faces in pending:
            i = 0
            while i < len(faces):
                frame, box = faces[i]
                if not track:
                    track.append(faces.pop(i))
                elif frame - track[-1][0] <= p.num_failed_det:
                    if _iou(box, track[-1][1]) > p.iou_threshold:
                        track.append(faces.pop(i))
                else:
                    break
                i += 1
        if not track:
            return tracks
        if len(track) > p.min_track:
            fr = np.array([t[0] for t in track])
            bb = np.array([t[1] for t in track], dtype=np.float64)
            full = np.arange(fr[0], fr[-1] + 1)
            boxes = np.stack([interp1d(fr, bb[:, j])(full) for j in range(4)], axis=1)
            if max(np.mean(boxes[:, 2] - boxes[:, 0]), np.mean(boxes[:, 3] - boxes[:, 1])) > p.min_face_size:
                tracks.append(Track(full, boxes))


def find_tracks(detections: list[np.ndarray], scenes: list[tuple[int, int]], p: Params) -> list[Track]:
    tracks: list[Track] = []
    for start, end in scenes:
        if end - start >= p.min_track:
            dets = [[(n, [float(v) for v in b[:4]]) for b in detections[n]] for n in range(start, min(end, len(detections)))]
            tracks += track_shot(dets, p)
    return tracks


# ----------------------------------------------------------------------------------------------- crops


def crop_track(frames, track: Track, crop_scale: float = 0.40) -> np.ndarray:
    """[T, 224, 224, 3] uint8 face crops (same channel order as ``frames``), as the reference's ``crop_video``."""
    import cv2
    from scipy.signal import medfilt

    b = track.boxes
    s = medfilt(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2, kernel_size=13)
    cy = medfilt((b[:, 1] + b[:, 3]) / 2, kernel_size=13)
    cx = medfilt((b[:, 0] + b[:, 2]) / 2, kernel_size=13)
    out = np.empty((len(track.frames), CROP, CROP, 3), dtype=np.uint8)
    for i, n in enumerate(track.frames):
        img = frames[n]
        h, w = img.shape[:2]
        bs = s[i]
        pad = int(bs * (1 + 2 * crop_scale))
        my, mx = cy[i] + pad, cx[i] + pad
        # the rows/cols of the padded frame the reference slices (Python slice semantics, negative starts included),
        # in frame coordinates; padding is only materialised where the crop leaves the frame
        r0, r1, _ = slice(int(my - bs), int(my + bs * (1 + 2 * crop_scale))).indices(h + 2 * pad)
        c0, c1, _ = slice(int(mx - bs * (1 + crop_scale)), int(mx + bs * (1 + crop_scale))).indices(w + 2 * pad)
        r0, r1, c0, c1 = r0 - pad, r1 - pad, c0 - pad, c1 - pad
        if r1 <= r0 or c1 <= c0:
            raise ValueError(f"empty face crop at frame {n} (box {b[i].round(1).tolist()})")
        if r0 >= 0 and c0 >= 0 and r1 <= h and c1 <= w:
            face = img[r0:r1, c0:c1]
        else:
            face = np.full((r1 - r0, c1 - c0, 3), PAD_VALUE, dtype=np.uint8)
            ir0, ir1, ic0, ic1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
            if ir1 > ir0 and ic1 > ic0:
                face[ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] = img[ir0:ir1, ic0:ic1]
        out[i] = cv2.resize(np.ascontiguousarray(face), (CROP, CROP))
    return out


# ----------------------------------------------------------------------------------------------- SyncNet


@dataclass
class TrackScore:
    offset: int
    conf: float  # LSE-C
    dist: float  # LSE-D
    n_windows: int


def sync_track(net, crops_bgr: np.ndarray, audio_int16: np.ndarray, *, vshift: int = 15, device: str = "cpu",
               batch: int = 32) -> TrackScore:
    """SyncNet offset, confidence and distance of one face track (``SyncNetInstance.evaluate``).

    The lip stream runs over the whole track at once: its only temporal kernel is the first conv's 5 frames, so a
    3-D conv over T frames gives the T−4 windows' outputs without recomputing shared frames.
    """
    import torch

    n_frames = len(crops_bgr)
    min_length = min(n_frames, len(audio_int16) // SAMPLES_PER_FRAME)
    last = min_length - WINDOW
    if last <= 0:
        raise ValueError(f"{min_length} usable frames (video {n_frames}, audio {len(audio_int16) / SAMPLE_RATE:.2f} s);"
                         f" SyncNet needs at least {WINDOW + 1}")
    cc = torch.from_numpy(mfcc(audio_int16).astype(np.float32))  # [13, N]
    lip, aud = [], []
    with torch.inference_mode():
        for i in range(0, last, batch):
            j = min(last, i + batch)
            clip = torch.from_numpy(np.ascontiguousarray(crops_bgr[i : j + WINDOW - 1])).to(device)
            x = clip.permute(3, 0, 1, 2).unsqueeze(0).float()  # [1, 3, T, 224, 224]
            feats = net.netcnnlip(x)  # [1, 512, T-4, 1, 1]
            lip.append(net.netfclip(feats[0, :, :, 0, 0].transpose(0, 1)).float().cpu())
            a = torch.stack([cc[:, 4 * k : 4 * k + 20] for k in range(i, j)]).unsqueeze(1).to(device)
            aud.append(net.forward_aud(a).float().cpu())
    lip_f, aud_f = torch.cat(lip), torch.cat(aud)
    win = 2 * vshift + 1
    aud_p = torch.nn.functional.pad(aud_f, (0, 0, vshift, vshift))
    idx = torch.arange(last)[:, None] + torch.arange(win)[None, :]
    dists = torch.nn.functional.pairwise_distance(lip_f[:, None, :].expand(-1, win, -1).reshape(-1, lip_f.shape[1]),
                                                  aud_p[idx.reshape(-1)]).reshape(last, win)
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    return TrackScore(offset=int(vshift - minidx), conf=float(torch.median(mdist) - minval), dist=float(minval),
                      n_windows=last)


def choose_track(scores: list[TrackScore]) -> int:
    """Index of the track the MOVA toolkit reports: the largest C − D, the first one on ties."""
    best, best_v = -1, -100.0
    for i, s in enumerate(scores):
        if s.conf - s.dist > best_v:
            best, best_v = i, s.conf - s.dist
    return best


# ----------------------------------------------------------------------------------------------- detectors


def mediapipe_detect(frames_rgb, *, min_confidence: float = 0.5, model_selection: int = 1) -> list[np.ndarray]:
    """MediaPipe (0.10.21 legacy ``solutions.face_detection``) boxes per frame, [n, 5] like S3FD's output.

    Weight-free (the model ships in the wheel); its boxes are tighter than S3FD's, so crops and scores differ.
    """
    mp = require_package("LSE with the MediaPipe detector", "mediapipe", "lipsync")
    out = []
    with mp.solutions.face_detection.FaceDetection(model_selection=model_selection,
                                                   min_detection_confidence=min_confidence) as fd:
        for f in frames_rgb:
            h, w = f.shape[:2]
            res = fd.process(np.ascontiguousarray(f))
            boxes = []
            for d in res.detections or []:
                r = d.location_data.relative_bounding_box
                x1, y1 = r.xmin * w, r.ymin * h
                boxes.append([x1, y1, x1 + r.width * w, y1 + r.height * h, float(d.score[0])])
            out.append(np.asarray(boxes, dtype=np.float64).reshape(-1, 5))
    return out


# ----------------------------------------------------------------------------------------------- pipeline


@dataclass
class ClipResult:
    tracks: list[Track] = field(default_factory=list)
    scores: list[TrackScore] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # per-track failures (e.g. too short)
    chosen: int = -1
    n_frames: int = 0
    scenes: list[tuple[int, int]] = field(default_factory=list)
    n_detections: int = 0
    reason: str = ""  # why no value, when chosen == -1


def run_pipeline(frames_rgb, audio_int16: np.ndarray, p: Params, *, syncnet, detect, device: str = "cpu",
                 detections: list[np.ndarray] | None = None) -> ClipResult:
    """Frames (25 fps RGB, indexable) + 16 kHz int16 audio → per-track scores and the chosen track.

    ``detect(frames) -> list of [n, 5] boxes`` runs only on frames inside scenes long enough to hold a track
    (the reference detects every frame but never uses the others). ``detections`` bypasses detection (tests).
    """
    n = len(frames_rgb)
    res = ClipResult(n_frames=n)
    res.scenes = scenes_from_cuts(scene_cuts(frames_rgb, p.scene_threshold, p.scene_min_len), n)
    if detections is None:
        wanted = [k for a, b in res.scenes if b - a >= p.min_track for k in range(a, b)]
        found = detect([frames_rgb[k] for k in wanted]) if wanted else []
        detections = [np.empty((0, 5))] * n
        for k, d in zip(wanted, found):
            detections[k] = d
    res.n_detections = int(sum(len(d) for d in detections))
    res.tracks = find_tracks(detections, res.scenes, p)
    if not res.tracks:
        long_scenes = sum(1 for a, b in res.scenes if b - a >= p.min_track)
        res.reason = (f"no usable face track ({res.n_detections} face detections in {n} frames, "
                      f"{long_scenes}/{len(res.scenes)} scenes of ≥ {p.min_track} frames; a track needs more than "
                      f"{p.min_track} detections and a mean box side above {p.min_face_size:g} px)")
        return res
    for t in res.tracks:
        seg = audio_int16[t.frames[0] * SAMPLES_PER_FRAME : (t.frames[-1] + 1) * SAMPLES_PER_FRAME]
        if seg.size and not np.any(seg):
            res.scores.append(None)
            res.errors.append("the track's audio is digital silence")
            continue
        try:
            crops = crop_track(frames_rgb, t, p.crop_scale)[..., ::-1]  # the network sees BGR
            res.scores.append(sync_track(syncnet, crops, seg, vshift=p.vshift, device=device))
            res.errors.append("")
        except ValueError as e:
            res.scores.append(None)
            res.errors.append(str(e))
    valid = [(i, s) for i, s in enumerate(res.scores) if s is not None]
    if not valid:
        res.reason = "no face track could be scored: " + "; ".join(sorted(set(res.errors)))
        return res
    best = choose_track([s for _, s in valid])
    if best < 0:  # the toolkit would report its initial 0.0 values here; we refuse instead
        res.reason = "no face track has C − D above −100 (the toolkit's starting value)"
        return res
    res.chosen = valid[best][0]
    return res


class _FrameView:
    """The 25 fps frame sequence as a view on the decoded clip (no copy of the whole video)."""

    def __init__(self, video: np.ndarray, idx: np.ndarray):
        self.video, self.idx = video, idx

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, k):
        return self.video[self.idx[k]]

    def __iter__(self):
        return (self.video[i] for i in self.idx)


@dataclass(frozen=True)
class LSEOptions:
    """``metrics.options.lse.*``."""

    mode: Literal["mova", "syncnet"] = option("mova", protocol=True, help="protocol: mova (min track 20) or syncnet "
                                                                     "(100; outputs named *_syncnet)")
    detector: Literal["s3fd"] | None = option(None, role=RUNTIME, help="accepted only as the metric's own detector (s3fd), so it "
                                                          "changes nothing; MediaPipe is the metric lse_mediapipe")


@dataclass(frozen=True)
class LSEMediapipeOptions(LSEOptions):
    """``metrics.options.lse_mediapipe.*``."""

    detector: Literal["mediapipe"] | None = option(None, role=RUNTIME, help="accepted only as mediapipe (it changes "
                                                                             "nothing)")
    min_confidence: float = option(0.5, help="MediaPipe face detection confidence threshold")
    model_selection: int = option(1, help="MediaPipe model: 0 short range, 1 full range")


_LSE = (Output("lse_c", "higher", "", "SyncNet confidence of the chosen face track (median − min distance)"),
        Output("lse_d", "lower", "", "SyncNet distance of the chosen face track (min over offsets)"))
_LSE_MEDIAPIPE = (
    Output("lse_c_mediapipe", "higher", "", "SyncNet confidence over MediaPipe face tracks (not S3FD LSE-C)"),
    Output("lse_d_mediapipe", "lower", "", "SyncNet distance over MediaPipe face tracks (not S3FD LSE-D)"))
_SYNCNET_NOTE = "mode syncnet: syncnet_python's min track 100, not MOVA's 20"


class LSEMetric(Metric):
    Options = LSEOptions
    """Per-clip LSE-C and LSE-D with S3FD faces (the MOVA toolkit's pipeline)."""

    detector = "s3fd"
    info = MetricInfo(
        name="lse",
        outputs=_LSE,
        variant_outputs=variant_of(_LSE, "_syncnet", _SYNCNET_NOTE),
        description="Lip-sync error (SyncNet v2 over S3FD face tracks), MOVA toolkit protocol",
        needs=frozenset({"video", "audio"}),
        extra="lipsync",
        packages=("torch", "cv2", "python_speech_features", "scipy"),
        weights=("syncnet_v2", "sfd_face"),
        aggregation=POOLED_MEAN,
        version="2",  # 2: mode syncnet writes lse_c_syncnet / lse_d_syncnet
        reference="OpenMOSS/MOVA evaluation/models/wav2lip/evaluation/syncnet_python (joonson/syncnet_python)",
        card=Card(
            ranges=(
                ('lse_c', '[0, ∞), typically 0–12'),
                ('lse_d', '[0, ∞), typically 5–12'),
                ('lse_c_syncnet', '[0, ∞), typically 0–12'),
                ('lse_d_syncnet', '[0, ∞), typically 5–12'),
            ),
            scale='×1',
            tables=(
                "MOVA paper Table 4 (Verse-Bench objective comparison), columns LSE-D / LSE-C: mode=mova, the set3 "
                "row (all = every category pooled)",
            ),
            reference_values=(
                'MOVA-360p: paper LSE-D 8.098 / LSE-C 6.278, MOVA toolkit identical on set3 (evaluation README)',
                "Table 4: LTX-2 7.261/6.109, Ovi 7.468/6.378, MOVA-720p 8.048/6.593, MOVA-360p dual CFG "
                "7.004/7.800, MOVA-720p dual CFG 7.094/7.452",
                "joonson/syncnet_python README demo clip example.avi: offset 3, min dist 5.353, confidence 10.021 "
                "(tests/metrics/test_lse_parity.py, real weights)",
            ),
            docs='docs/metrics/lse.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.mode, self.params = self._protocol()
        if self.info.variant_outputs and self.mode == "syncnet":  # its own output names: never shared with mova's
            self.info = dataclasses.replace(type(self).info, outputs=type(self).info.variant_outputs)
        if self.opts.detector is not None and self.opts.detector != self.detector:
            raise ConfigError(f"{self.info.name} always uses the {self.detector} detector; "
                              f"use the metric 'lse_mediapipe' (outputs lse_c_mediapipe/lse_d_mediapipe) for MediaPipe")
        self._syncnet = self._s3fd = None
        self._lock = threading.Lock()

    def _protocol(self) -> tuple[str, Params]:
        """The protocol's name and parameters (here: ``metrics.options.<metric>.mode``)."""
        mode = self.opts.mode
        if mode not in MODES:
            raise ConfigError(f"metrics.options.{self.info.name}.mode must be one of {sorted(MODES)}, got {mode!r}")
        return mode, MODES[mode]

    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        """As the base class, but one command fetches every missing checkpoint at once."""
        av = super().availability(context)
        if av.ok or not av.reason.startswith("weights"):
            return av
        missing = [w for w in cls.info.weights if weights.fingerprint(w, context) == "absent"]
        return Availability(False, f"weights {', '.join(repr(w) for w in missing)} are missing",
                            "mova-eval weights fetch " + " ".join(missing))

    def load(self) -> None:
        require_package("LSE", "torch", "lipsync")
        require_package("LSE", "cv2", "lipsync")
        require_package("LSE", "python_speech_features", "lipsync")
        from mova_eval.metrics.features import syncnet

        self._syncnet = syncnet.load(weights.resolve("syncnet_v2", self.context), device=self.device)
        if self.detector == "s3fd":
            from mova_eval.metrics.features import s3fd

            self._s3fd = s3fd.load(weights.resolve("sfd_face", self.context), device=self.device)

    def _detect(self, frames):
        from mova_eval.metrics.features import s3fd

        return s3fd.detect(self._s3fd, frames, conf_th=self.params.conf_th, scales=(self.params.facedet_scale,),
                           device=self.device)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._syncnet is None:
            self.load()
        idx = frame_indices(clip.video.shape[0], clip.fps, FPS) if abs(clip.fps - FPS) > 1e-6 \
            else np.arange(clip.video.shape[0])
        frames = _FrameView(clip.video, idx)
        audio = to_int16(clip.audio_for(AudioPreset(SAMPLE_RATE, mono=True, name="lse16k")))
        if len(frames) < WINDOW + 1 or len(audio) < (WINDOW + 1) * SAMPLES_PER_FRAME:
            raise MediaError(clip.path, f"too short for SyncNet: {len(frames)} frames at 25 fps and "
                                        f"{len(audio) / SAMPLE_RATE:.3f} s of audio; a 5-frame window needs ≥ 6 frames")
        res = run_pipeline(frames, audio, self.params, syncnet=self._syncnet, detect=self._detect, device=self.device)
        return self._item_score(res, clip)

    def _item_score(self, res: ClipResult, clip: Clip) -> ItemScore:
        c_name, d_name = (o.name for o in self.info.outputs)
        details = {
            "mode": self.mode, "detector": self.detector, "n_frames_25fps": res.n_frames, "source_fps": clip.fps,
            "scenes": len(res.scenes), "face_detections": res.n_detections,
            "tracks": [{"start": int(t.frames[0]), "end": int(t.frames[-1]) + 1,
                        **({"offset": s.offset, "lse_c": s.conf, "lse_d": s.dist} if s else {"error": e})}
                       for t, s, e in zip(res.tracks, res.scores, res.errors)],
        }
        if res.chosen < 0:
            reason = res.reason
            return ItemScore({c_name: math.nan, d_name: math.nan}, details, {c_name: reason, d_name: reason})
        best = res.scores[res.chosen]
        details.update(chosen_track=res.chosen, offset=best.offset)
        return ItemScore({c_name: best.conf, d_name: best.dist}, details)


class LSEMediapipeMetric(LSEMetric):
    """LSE with MediaPipe's weight-free face detector instead of S3FD: not comparable with published LSE numbers."""
    Options = LSEMediapipeOptions

    detector = "mediapipe"
    info = MetricInfo(
        name="lse_mediapipe",
        outputs=_LSE_MEDIAPIPE,
        variant_outputs=variant_of(_LSE_MEDIAPIPE, "_syncnet", _SYNCNET_NOTE),
        description="Lip-sync error with MediaPipe faces (no S3FD weights needed); not comparable with papers",
        needs=frozenset({"video", "audio"}),
        extra="lipsync",
        packages=("torch", "cv2", "python_speech_features", "scipy", "mediapipe"),
        weights=("syncnet_v2",),
        aggregation=POOLED_MEAN,
        version="2",  # 2: mode syncnet writes *_syncnet
        reference="MOVA toolkit LSE pipeline with mediapipe 0.10.21 solutions.face_detection instead of S3FD",
        card=Card(
            ranges=(
                ('lse_c_mediapipe', '[0, ∞)'),
                ('lse_d_mediapipe', '[0, ∞)'),
                ('lse_c_mediapipe_syncnet', '[0, ∞)'),
                ('lse_d_mediapipe_syncnet', '[0, ∞)'),
            ),
            scale='×1',
            tables=(
                'none: a weight-free stand-in, never comparable with published LSE',
            ),
            docs='docs/metrics/lse.md',
        ),
    )

    def _detect(self, frames):
        with self._lock:  # a MediaPipe graph is not thread-safe; one at a time
            return mediapipe_detect(frames, min_confidence=self.opts.min_confidence,
                                    model_selection=self.opts.model_selection)
