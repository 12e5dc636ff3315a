"""LSE metric behaviour: availability, modes, and bad input (each gives a clear per-item outcome, never a 0)."""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("cv2")
pytest.importorskip("python_speech_features")

from mova_eval import media  # noqa: E402
from mova_eval.errors import ConfigError, MediaError  # noqa: E402
from mova_eval.metrics import lse  # noqa: E402
from mova_eval.spec import SuiteItem  # noqa: E402

from .lse_helpers import env_with, random_s3fd, random_syncnet, save_clip, synthetic_clip  # noqa: E402

ITEM = SuiteItem(id="00000001", category="set3", prompt="a person talks", speech_text="hello")


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lse-w")
    # face_logit -10: like a trained detector on a frame without faces, nothing passes 0.9
    return {"syncnet_v2": random_syncnet(d / "syncnet_v2.model"),
            "sfd_face": random_s3fd(d / "sfd_face.pth", face_logit=-10.0)}


class ForcedBoxes(lse.LSEMetric):
    """The S3FD pipeline with the face boxes the synthetic clip was drawn with (random S3FD weights find none)."""

    __abstract__ = True  # not registered

    def __init__(self, boxes, **kw):
        super().__init__(**kw)
        self._boxes = boxes

    def _detect(self, frames):
        assert len(frames) == len(self._boxes)
        return self._boxes


def _score(metric, tmp_path, frames, audio, fps=25.0):
    clip = media.decode(save_clip(tmp_path / "c.mkv", frames, audio, fps))
    return metric.score(clip, ITEM)


def test_unavailable_without_weights_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = lse.LSEMetric.availability()
    assert not av.ok and "syncnet_v2" in av.reason and av.command == "mova-eval weights fetch syncnet_v2 sfd_face"
    from mova_eval.context import RunContext
    from mova_eval.runner import select_metrics

    plan = select_metrics({"only": ["lse"]}, RunContext.from_env())
    assert not plan.metrics and "mova-eval weights fetch syncnet_v2 sfd_face" in plan.failed_requested["lse"]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="mode"):
        lse.LSEMetric({"mode": "wav2lip"})
    with pytest.raises(ConfigError, match="lse_mediapipe"):
        lse.LSEMetric({"detector": "mediapipe"})
    assert lse.LSEMetric({"mode": "syncnet"}).params.min_track == 100
    assert lse.LSEMetric().params.min_track == 20
    names = {o.name for o in lse.LSEMediapipeMetric.info.outputs}
    assert names == {"lse_c_mediapipe", "lse_d_mediapipe"}  # never the S3FD output names


def test_no_face_is_excluded_with_reason(weight_files, tmp_path):
    frames, audio, _ = synthetic_clip(n_frames=30, faces=())
    with env_with(weight_files):
        m = lse.LSEMetric()
        assert m.availability().ok
        s = _score(m, tmp_path, frames, audio)
    assert math.isnan(s.values["lse_c"]) and math.isnan(s.values["lse_d"])
    assert "no usable face track" in s.errors["lse_c"] and s.details["face_detections"] == 0
    assert s.details["mode"] == "mova" and s.details["detector"] == "s3fd"


def test_several_faces_pick_max_c_minus_d(weight_files, tmp_path):
    faces = ((10.0, 30.0, 125.0, 160.0), (135.0, 30.0, 250.0, 160.0))
    frames, audio, boxes = synthetic_clip(n_frames=30, faces=faces, seed=4)
    with env_with(weight_files):
        s = _score(ForcedBoxes(boxes), tmp_path, frames, audio)
    tracks = s.details["tracks"]
    assert len(tracks) == 2
    best = max(range(2), key=lambda i: tracks[i]["lse_c"] - tracks[i]["lse_d"])
    assert s.details["chosen_track"] == best
    assert s.values["lse_c"] == tracks[best]["lse_c"] and s.values["lse_d"] == tracks[best]["lse_d"]
    assert s.details["offset"] == tracks[best]["offset"] and not s.errors


def test_face_leaving_the_frame(weight_files, tmp_path):
    """The face slides out to the right; the detector loses it after frame 27: a shorter track, padded crops."""
    frames, audio, boxes = synthetic_clip(n_frames=36, faces=(lambda k: (60 + 6 * k, 30, 180 + 6 * k, 160),))
    boxes = [b if k < 28 else np.empty((0, 5)) for k, b in enumerate(boxes)]
    with env_with(weight_files):
        s = _score(ForcedBoxes(boxes), tmp_path, frames, audio)
    assert s.details["tracks"][0]["end"] == 28
    assert math.isfinite(s.values["lse_c"]) and math.isfinite(s.values["lse_d"]) and s.values["lse_d"] > 0


def test_silent_audio_is_excluded(weight_files, tmp_path):
    frames, audio, boxes = synthetic_clip(n_frames=30, silent=True)
    with env_with(weight_files):
        s = _score(ForcedBoxes(boxes), tmp_path, frames, audio)
    assert math.isnan(s.values["lse_c"]) and "digital silence" in s.errors["lse_d"]


def test_clip_shorter_than_the_window(weight_files, tmp_path):
    frames, audio, boxes = synthetic_clip(n_frames=4)
    with env_with(weight_files), pytest.raises(MediaError, match="too short for SyncNet"):
        _score(ForcedBoxes(boxes), tmp_path, frames, audio)


def test_track_shorter_than_min_track_is_not_scored(weight_files, tmp_path):
    frames, audio, boxes = synthetic_clip(n_frames=30)
    boxes = [b if k < 15 else np.empty((0, 5)) for k, b in enumerate(boxes)]
    with env_with(weight_files):
        s = _score(ForcedBoxes(boxes), tmp_path, frames, audio)
    assert math.isnan(s.values["lse_d"]) and "more than 20 detections" in s.errors["lse_d"]


def test_variable_frame_rate_and_non_25fps_input(weight_files, tmp_path):
    """A VFR file (irregular timestamps) and a 30 fps file both decode and score at 25 fps without crashing."""
    import av

    frames, audio, _ = synthetic_clip(n_frames=36, faces=())
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264rgb", rate=30)
        st.pix_fmt, st.width, st.height = "rgb24", frames.shape[2], frames.shape[1]
        st.time_base = Fraction(1, 1000)
        st.options = {"qp": "0"}
        t = 0
        for i, f in enumerate(frames):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24")
            fr.pts, fr.time_base = t, Fraction(1, 1000)
            t += 20 if i % 2 else 45  # 50 fps and 22 fps alternating
            for p in st.encode(fr):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    clip = media.decode(path)
    clip_audio = media.Clip(clip.path, clip.content_hash, clip.video, clip.fps, audio[None], 16000, clip.duration)
    with env_with(weight_files):
        s = lse.LSEMetric().score(clip_audio, ITEM)
    assert s.details["n_frames_25fps"] >= 6 and s.details["source_fps"] == clip.fps
    assert math.isnan(s.values["lse_c"]) and s.errors["lse_c"]  # no face drawn: excluded with a reason, not 0


def test_mediapipe_detector_finds_a_real_face():
    """The weight-free detector on a real portrait (scikit-image's astronaut) gives one face box on the face."""
    pytest.importorskip("mediapipe")
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()  # 512×512 RGB, face around x 170–290, y 60–220
    boxes = lse.mediapipe_detect([img, np.zeros_like(img)])
    assert len(boxes[0]) == 1 and len(boxes[1]) == 0
    x1, y1, x2, y2, score = boxes[0][0]
    assert 140 < x1 < 220 and 230 < x2 < 320 and 40 < y1 < 130 and 170 < y2 < 260 and score > 0.5


def test_track_choice_is_max_c_minus_d_first_on_ties():
    ts = lse.TrackScore
    assert lse.choose_track([ts(0, 5.0, 7.0, 10), ts(1, 6.0, 8.0, 10), ts(2, 4.0, 9.0, 10)]) == 0
    assert lse.choose_track([ts(0, 1.0, 9.0, 10), ts(1, 3.0, 8.0, 10)]) == 1
    assert lse.choose_track([ts(0, 0.0, 150.0, 10)]) == -1  # below the toolkit's −100 start: refused


def test_availability_lists_only_the_missing_checkpoint(weight_files, tmp_path, monkeypatch):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(weight_files["syncnet_v2"].parent) + os.pathsep + str(tmp_path))
    (weight_files["syncnet_v2"].parent / "sfd_face.pth").rename(tmp_path / "moved.pth")
    try:
        av = lse.LSEMetric.availability()
        assert not av.ok and av.command == "mova-eval weights fetch sfd_face"
        assert lse.LSEMediapipeMetric.availability().ok or "mediapipe" in lse.LSEMediapipeMetric.availability().reason
    finally:
        (tmp_path / "moved.pth").rename(weight_files["syncnet_v2"].parent / "sfd_face.pth")


def test_lse_mediapipe_scores_a_real_face_clip(weight_files, tmp_path):
    """End to end with the weight-free detector: a still portrait for 30 frames → one track, finite values under
    the MediaPipe output names (SyncNet weights are random here, so the values themselves mean nothing)."""
    pytest.importorskip("mediapipe")
    skdata = pytest.importorskip("skimage.data")
    frames = np.repeat(skdata.astronaut()[None], 30, axis=0)
    audio = synthetic_clip(n_frames=30)[1]
    with env_with({"syncnet_v2": weight_files["syncnet_v2"]}):
        m = lse.LSEMediapipeMetric()
        assert m.availability().ok  # no S3FD weights needed
        s = _score(m, tmp_path, frames, audio)
    assert set(s.values) == {"lse_c_mediapipe", "lse_d_mediapipe"} and not s.errors
    assert all(math.isfinite(v) for v in s.values.values())
    assert s.details["detector"] == "mediapipe" and len(s.details["tracks"]) == 1
