"""Lip-sync numbers of other benchmarks: the same SyncNet v2 + S3FD pipeline as MOVA's ``lse``, other aggregation.

Everything up to the per-track SyncNet scores is ``mova_eval.metrics.lse`` (scene cuts, S3FD at 0.25 with conf
0.9, IoU tracking with 25 missed frames, min face size 100, crop scale 0.4, 224² crops, ±15 offsets, 5-frame /
20-MFCC windows; see its docstring). What differs, from ../shared/reference/metrics-2.md §5:

``lse_latentsync`` — ByteDance LatentSync ``eval/eval_sync_conf.py`` (``eval/syncnet_detect.py``,
``eval/syncnet/syncnet_eval.py``): shots of ≥ 50 frames and tracks longer than 50 detections; a video's value is
the **mean confidence over all its face tracks** (MOVA takes the one track with the largest C − D); a video with no
track is skipped (NaN here); the set value is the mean over videos. T2AV-Compass "LS" and VABench "LSA" use it.

``lipsync_offset_avgen`` — microsoft AVGen-Bench ``eval/syncnet_python`` (``batch_eval.py``, ``inference.py``,
``SyncNetInstance.py``): shots ≥ 30 frames, tracks > 30; for each track the **|AV offset| in frames** (0–15) at
the minimum distance; only tracks with SyncNet confidence ≥ ``track_conf_th`` count (AVGen's ``--conf_th``: its code
default is 5.0, its README runs 1.0); the set value pools **all passing tracks of all videos** (a clip with three
faces weighs three times), so the per-clip rows carry the track sum and count (``ItemScore.counts``) and the summary
divides the sums (the ``corpus`` rule). A video with no passing track drops out (NaN here), as in AVGen. Lower is better.

Deviations shared with ``lse`` (no lossy intermediates: LatentSync re-encodes crops to mp4v + AAC, AVGen writes XVID
crops) are listed in docs/metrics/lse.md and docs/metrics/lse_variants.md.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from mova_eval.errors import ConfigError
from mova_eval.metrics.base import CORPUS, POOLED_MEAN, Card, ItemScore, MetricInfo, Output, Ratio
from mova_eval.metrics.lse import ClipResult, LSEMetric, Params
from mova_eval.metrics.options import RUNTIME, option
from mova_eval.spec import Clip

LATENTSYNC = Params(min_track=50)
AVGEN = Params(min_track=30)
AVGEN_TRACK_CONF_TH = 5.0  # AVGen-Bench batch_eval.py's default --conf_th (its README example passes 1.0)


@dataclass(frozen=True)
class VariantOptions:
    """``metrics.options.lse_latentsync.*`` (the variant fixes its protocol, so there is no ``mode``)."""

    detector: Literal["s3fd"] | None = option(None, role=RUNTIME, help="accepted only as s3fd, the variants' one detector (it "
                                                          "changes nothing)")


@dataclass(frozen=True)
class AVGenOptions(VariantOptions):
    """``metrics.options.lipsync_offset_avgen.*``."""

    track_conf_th: float = option(AVGEN_TRACK_CONF_TH, help="tracks below this SyncNet confidence are dropped")


class _VariantBase(LSEMetric):
    __abstract__ = True
    variant: str
    variant_params: Params
    Options = VariantOptions

    def __init__(self, options=None, device="cpu", context=None):
        if "mode" in (options or {}):
            raise ConfigError(f"metrics.options.{self.info.name}.mode: unknown option (the variant fixes its "
                              f"protocol; use the metric 'lse' for MOVA's modes); known: "
                              f"{', '.join(f.name for f in dataclasses.fields(type(self).Options))}")
        super().__init__(options, device, context)

    def _protocol(self) -> tuple[str, Params]:
        return self.variant, self.variant_params

    def _tracks(self, res: ClipResult) -> list[dict]:
        return [{"start": int(t.frames[0]), "end": int(t.frames[-1]) + 1,
                 **({"offset": s.offset, "conf": s.conf, "dist": s.dist} if s else {"error": e})}
                for t, s, e in zip(res.tracks, res.scores, res.errors)]

    def _base_details(self, res: ClipResult, clip: Clip) -> dict:
        return {"variant": self.variant, "min_track": self.params.min_track, "n_frames_25fps": res.n_frames,
                "source_fps": clip.fps, "scenes": len(res.scenes), "face_detections": res.n_detections,
                "tracks": self._tracks(res)}

    @staticmethod
    def _no_tracks_reason(res: ClipResult) -> str:
        return res.reason or "no face track could be scored: " + "; ".join(sorted({e for e in res.errors if e}))


class LSELatentSyncMetric(_VariantBase):
    """Mean SyncNet confidence over every face track of a clip (LatentSync's evaluation)."""

    variant = "latentsync"
    variant_params = LATENTSYNC
    info = MetricInfo(
        name="lse_latentsync",
        outputs=(Output("lse_c_latentsync", "higher", "",
                        "mean SyncNet confidence over all face tracks of the clip (LatentSync eval; min track 50)"),),
        description="Lip-sync confidence as LatentSync evaluates it (mean over tracks); not MOVA's LSE-C",
        needs=frozenset({"video", "audio"}),
        extra="lipsync",
        packages=("torch", "cv2", "python_speech_features", "scipy"),
        weights=("syncnet_v2", "sfd_face"),
        aggregation=POOLED_MEAN,
        version="1",
        reference="bytedance/LatentSync eval/eval_sync_conf.py + eval/syncnet (joonson/syncnet_python)",
        card=Card(
            ranges=(
                ('lse_c_latentsync', '[0, ∞), typically 0–12'),
            ),
            scale='×1',
            tables=(
                "LatentSync's own evaluation (eval/eval_sync_conf.py, mean Sync_conf); which of its paper tables use it is not "
                "verified",
                "T2AV-Compass 'LS' and VABench 'LSA' use LatentSync-style confidence (variant details of those "
                "tables not verified)",
            ),
            docs='docs/metrics/lse_variants.md',
        ),
    )

    def _item_score(self, res: ClipResult, clip: Clip) -> ItemScore:
        name = self.info.outputs[0].name
        details = self._base_details(res, clip)
        confs = [s.conf for s in res.scores if s is not None]
        if not confs:
            reason = self._no_tracks_reason(res)
            return ItemScore({name: math.nan}, details, {name: reason})
        offsets = [s.offset for s in res.scores if s is not None]
        details.update(n_tracks_scored=len(confs), offset=int(sum(offsets) / len(offsets)))
        return ItemScore({name: sum(confs) / len(confs)}, details)


class LipsyncOffsetAVGenMetric(_VariantBase):
    """|SyncNet AV offset| in frames over confident face tracks, pooled over tracks (AVGen-Bench "Lip")."""

    variant = "avgen"
    variant_params = AVGEN
    Options = AVGenOptions
    info = MetricInfo(
        name="lipsync_offset_avgen",
        outputs=(Output("lipsync_offset_avgen", "lower", "frames",
                        "mean |SyncNet AV offset| (25 fps frames) over tracks with confidence ≥ track_conf_th, "
                        "pooled over tracks (AVGen-Bench Lip; min track 30)"),),
        description="Lip-sync offset as AVGen-Bench reports it (|offset| in frames, pooled over confident tracks)",
        needs=frozenset({"video", "audio"}),
        extra="lipsync",
        packages=("torch", "cv2", "python_speech_features", "scipy"),
        weights=("syncnet_v2", "sfd_face"),
        aggregation=CORPUS,
        version="1",
        reference="microsoft/AVGen-Bench eval/syncnet_python (batch_eval.py, inference.py, SyncNetInstance.py)",
        card=Card(
            ranges=(
                ('lipsync_offset_avgen', '[0, 15] frames'),
            ),
            scale="×1 (frames at 25 fps); AVGen's normalised Lip_n = 100·max(0, 1 − value/8) is not computed",
            tables=(
                "AVGen-Bench README 'Lip' column (AVGen variant; README runs --conf_th 1.0, the code default is "
                "5.0: set track_conf_th to match)",
            ),
            reference_values=(
                "AVGen-Bench README Lip (frames): NanoBanana2+MOVA 2.70, Emu3.5+MOVA 4.83, LTX-2 4.76, Ovi 5.40, "
                "Kling-V2.6 2.30",
            ),
            docs='docs/metrics/lse_variants.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        th = self.track_conf_th = self.opts.track_conf_th
        if not math.isfinite(self.track_conf_th):
            raise ConfigError(f"metrics.options.{self.info.name}.track_conf_th must be finite, got {th!r}")

    def _item_score(self, res: ClipResult, clip: Clip) -> ItemScore:
        name = self.info.outputs[0].name
        details = self._base_details(res, clip)
        details["track_conf_th"] = self.track_conf_th
        scored = [s for s in res.scores if s is not None]
        if not scored:
            reason = self._no_tracks_reason(res)
            return ItemScore({name: math.nan}, details, {name: reason})
        passing = [abs(s.offset) for s in scored if s.conf >= self.track_conf_th]
        if not passing:
            reason = (f"no face track has SyncNet confidence ≥ {self.track_conf_th:g} "
                      f"({len(scored)} scored, best {max(s.conf for s in scored):.3f}); AVGen-Bench drops such videos")
            return ItemScore({name: math.nan}, details, {name: reason})
        details["n_tracks_passing"] = len(passing)
        return ItemScore({name: sum(passing) / len(passing)}, details,
                         counts={name: Ratio(float(sum(passing)), float(len(passing)))})
