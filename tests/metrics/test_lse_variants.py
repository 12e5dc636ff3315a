"""Named lip-sync variants (LatentSync's mean track confidence, AVGen-Bench's pooled |offset|): aggregation rules,
options, names, an end-to-end run on random weights, and parity with the syncnet-python reference pipeline."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("cv2")
pytest.importorskip("python_speech_features")

from mova_eval import media  # noqa: E402
from mova_eval.errors import ConfigError  # noqa: E402
from mova_eval.metrics import lse, lse_variants  # noqa: E402
from mova_eval.metrics.base import CORPUS, POOLED_MEAN  # noqa: E402
from mova_eval.metrics.features import syncnet  # noqa: E402
from mova_eval.spec import SuiteItem  # noqa: E402

from .lse_helpers import env_with, random_s3fd, random_syncnet, save_clip, synthetic_clip  # noqa: E402

ITEM = SuiteItem(id="00000001", category="set3", prompt="two people talk", speech_text="hello")
TOL = 1e-4
LEFT, RIGHT = (20.0, 40.0, 140.0, 170.0), (250.0, 40.0, 370.0, 170.0)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lsev-w")
    return {"syncnet_v2": random_syncnet(d / "syncnet_v2.model"),
            "sfd_face": random_s3fd(d / "sfd_face.pth", face_logit=-10.0)}


def _result(confs_offsets, errors=()):
    res = lse.ClipResult(n_frames=80)
    for i, (c, o) in enumerate(confs_offsets):
        res.tracks.append(lse.Track(np.arange(i, i + 60), np.zeros((60, 4))))
        res.scores.append(lse.TrackScore(offset=o, conf=c, dist=7.0, n_windows=55))
        res.errors.append("")
    for e in errors:
        res.tracks.append(lse.Track(np.arange(0, 60), np.zeros((60, 4))))
        res.scores.append(None)
        res.errors.append(e)
    return res


def _clip():
    """What ``_item_score`` reads of a clip (its fps, for the details)."""
    return SimpleNamespace(fps=25.0, path="x.mp4")


def test_latentsync_is_the_mean_confidence_over_tracks():
    m = lse_variants.LSELatentSyncMetric()
    s = m._item_score(_result([(2.0, 3), (6.0, -1), (1.0, 0)], errors=["too short"]), _clip())
    assert s.values["lse_c_latentsync"] == pytest.approx(3.0)  # not MOVA's max(C − D) track (6.0)
    assert s.details["n_tracks_scored"] == 3 and s.details["offset"] == 0  # int(mean offsets) = int(2/3)
    s = m._item_score(_result([], errors=["the track's audio is digital silence"]), _clip())
    assert math.isnan(s.values["lse_c_latentsync"]) and "silence" in s.errors["lse_c_latentsync"]


def test_avgen_pools_abs_offsets_of_confident_tracks():
    m = lse_variants.LipsyncOffsetAVGenMetric({"track_conf_th": 1.0})
    s = m._item_score(_result([(2.0, -3), (0.5, 9), (1.0, 5)]), _clip())
    name = "lipsync_offset_avgen"
    assert s.values[name] == pytest.approx(4.0)  # |−3| and |5| pass (conf ≥ 1.0); the 0.5 track does not
    assert (s.counts[name].numerator, s.counts[name].denominator) == (8.0, 2.0)
    default = lse_variants.LipsyncOffsetAVGenMetric()
    assert default.track_conf_th == 5.0
    s = default._item_score(_result([(2.0, -3)]), _clip())
    assert math.isnan(s.values[name]) and "≥ 5" in s.errors[name]


def test_avgen_set_value_weighs_tracks_not_videos():
    """The corpus rule over per-clip sums: a clip with two passing tracks counts twice (AVGen's TOTAL row)."""
    import pandas as pd

    from mova_eval import stats

    name = "lipsync_offset_avgen"
    m = lse_variants.LipsyncOffsetAVGenMetric({"track_conf_th": 1.0})
    rows = []
    for i, tracks in enumerate([[(2.0, 1), (3.0, 1)], [(2.0, 7)]]):
        s = m._item_score(_result(tracks), _clip())
        rows.append({"item_id": str(i), "category": "set1", "value": s.values[name],
                     "num": s.counts[name].numerator, "den": s.counts[name].denominator})
    frame = pd.DataFrame(rows)
    pooled = stats.summarize(frame, CORPUS, n_boot=0, numerator="num", denominator="den").mean
    assert pooled == pytest.approx(3.0)  # (1 + 1 + 7) / 3, where the mean of clip means would be 4.0
    assert m.info.aggregation == CORPUS and lse_variants.LSELatentSyncMetric.info.aggregation == POOLED_MEAN


def test_protocol_constants_and_options():
    assert lse_variants.LSELatentSyncMetric().params.min_track == 50
    assert lse_variants.LipsyncOffsetAVGenMetric().params.min_track == 30
    for cls in (lse_variants.LSELatentSyncMetric, lse_variants.LipsyncOffsetAVGenMetric):
        p = cls().params
        assert (p.facedet_scale, p.conf_th, p.crop_scale, p.num_failed_det, p.min_face_size, p.vshift) == \
            (0.25, 0.9, 0.40, 25, 100, 15)
        with pytest.raises(ConfigError, match="use the metric 'lse'"):
            cls({"mode": "syncnet"})
    with pytest.raises(ConfigError, match="must be a number"):
        lse_variants.LipsyncOffsetAVGenMetric({"track_conf_th": "high"})
    with pytest.raises(ConfigError, match="unknown option"):
        lse_variants.LSELatentSyncMetric({"track_conf_th": 1.0})


def test_output_names_are_distinct_from_mova_lse():
    names = [o.name for cls in (lse.LSEMetric, lse.LSEMediapipeMetric, lse_variants.LSELatentSyncMetric,
                                lse_variants.LipsyncOffsetAVGenMetric) for o in cls.info.outputs]
    assert len(names) == len(set(names))


class _Forced:
    """Mixin: the pipeline with the boxes the synthetic clip was drawn with (random S3FD weights find none)."""

    def __init__(self, boxes, **kw):
        super().__init__(**kw)
        self._boxes = boxes

    def _detect(self, frames):
        assert len(frames) == len(self._boxes)
        return self._boxes


class ForcedLatentSync(_Forced, lse_variants.LSELatentSyncMetric):
    __abstract__ = True


class ForcedAVGen(_Forced, lse_variants.LipsyncOffsetAVGenMetric):
    __abstract__ = True


def _two_face_clip(n_frames=64, seed=4):
    return synthetic_clip(n_frames=n_frames, size=(200, 400), seed=seed, faces=(RIGHT, LEFT))


def test_end_to_end_on_random_weights(weight_files, tmp_path):
    frames, audio, boxes = _two_face_clip()
    clip = media.decode(save_clip(tmp_path / "c.mkv", frames, audio))
    with env_with(weight_files):
        ls = ForcedLatentSync(boxes).score(clip, ITEM)
        confs = [t["conf"] for t in ls.details["tracks"]]
        assert len(confs) == 2 and confs[0] != confs[1]
        # the threshold halfway between the two tracks' confidences: exactly one track passes
        th = float(np.mean(confs))
        av = ForcedAVGen(boxes, options={"track_conf_th": th}).score(clip, ITEM)
        assert av.details["n_tracks_passing"] == 1
        short, a2, b2 = _two_face_clip(n_frames=45)  # 45 frames: tracks of ≤ 45 detections fail min track 50
        c2 = media.decode(save_clip(tmp_path / "s.mkv", short, a2))
        s = ForcedLatentSync(b2).score(c2, ITEM)
        assert math.isnan(s.values["lse_c_latentsync"]) and "no usable face track" in s.errors["lse_c_latentsync"]
        assert not math.isnan(ForcedAVGen(b2, options={"track_conf_th": -1e9}).score(c2, ITEM)
                              .values["lipsync_offset_avgen"])  # min track 30 keeps them
    # the values against an independent pipeline, not the metric's own per-track details: syncnet-python's
    # tracking → crops → SyncNet on the same frames and boxes gives each track's (offset, conf); LatentSync's value is
    # the mean of the two confidences, AVGen's the |offset| of the one track whose confidence is ≥ th
    pytest.importorskip("syncnet_python", reason="reference syncnet-python 0.2.3 (requirements/test-nodeps.txt)")
    from .lse_helpers import reference_pipeline_with_boxes

    ref = {name: [r[3] for r in reference_pipeline_with_boxes(frames, lse.to_int16(audio), boxes, tmp_path / name,
                                                             weight_files["syncnet_v2"], min_track=params.min_track)]
           for name, params in (("ls", lse_variants.LATENTSYNC), ("av", lse_variants.AVGEN))}
    assert len(ref["ls"]) == len(ref["av"]) == 2
    assert ls.values["lse_c_latentsync"] == pytest.approx((ref["ls"][0][1] + ref["ls"][1][1]) / 2, abs=TOL)
    assert [abs(o) for o, c, _ in ref["av"] if c >= th] == [av.values["lipsync_offset_avgen"]]


# ----------------------------------------------------------------------------------------------- parity


def test_variants_match_reference_pipeline(weight_files, tmp_path):
    """syncnet-python's tracking → crops → SyncNet with min_track 50 / 30 on the same boxes, then each benchmark's
    rule applied to the reference's per-track (offset, conf): equal within 1e-4, offsets exact."""
    pytest.importorskip("syncnet_python", reason="reference syncnet-python 0.2.3 (requirements/test-nodeps.txt)")
    from .lse_helpers import reference_pipeline_with_boxes

    frames, audio, boxes = _two_face_clip()
    a16 = lse.to_int16(audio)
    net = syncnet.load(weight_files["syncnet_v2"])
    for cls, params in ((lse_variants.LSELatentSyncMetric, lse_variants.LATENTSYNC),
                        (lse_variants.LipsyncOffsetAVGenMetric, lse_variants.AVGEN)):
        ref = reference_pipeline_with_boxes(frames, a16, boxes, tmp_path / cls.info.name, weight_files["syncnet_v2"],
                                            min_track=params.min_track)
        ours = lse.run_pipeline(frames, a16, params, syncnet=net, detect=None, detections=boxes)
        assert len(ours.tracks) == len(ref) == 2
        ref_scores = [r[3] for r in ref]  # (offset, conf, dist) per track
        for s, r in zip(ours.scores, ref_scores):
            assert s.offset == r[0] and s.conf == pytest.approx(r[1], abs=TOL)
        if cls is lse_variants.LSELatentSyncMetric:
            got = cls()._item_score(ours, _clip()).values["lse_c_latentsync"]
            assert got == pytest.approx(np.mean([r[1] for r in ref_scores]), abs=TOL)
        else:
            th = float(np.mean([r[1] for r in ref_scores]))  # one track passes: the filter is exercised
            got = cls({"track_conf_th": th})._item_score(ours, _clip()).values["lipsync_offset_avgen"]
            passing = [abs(r[0]) for r in ref_scores if r[1] >= th]
            assert len(passing) == 1
            assert got == pytest.approx(np.mean(passing), abs=TOL)
