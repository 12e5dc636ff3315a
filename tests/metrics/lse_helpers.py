"""Shared fixtures for the LSE tests and benchmark: seeded random checkpoints in the official key layouts, synthetic
talking-face clips, and a lossless harness around the syncnet-python 0.2.3 reference pipeline.

The reference writes JPEG frames, XVID crops and MPEG-4 intermediates; to compare numbers at 1e-4 the harness gives
it lossless data instead (PNG bytes under its ``*.jpg`` names — cv2.imread decodes by content — and the crops its own
``_crop`` produced, captured from its VideoWriter) while every computation stays the reference's own code.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FACE_BOX = (70.0, 40.0, 190.0, 170.0)  # where synthetic_clip draws its face in a 256×192 frame


def random_syncnet(path: Path, seed: int = 0) -> Path:
    """A seeded random SyncNet v2 state_dict in the official layout (BN statistics randomised too)."""
    import torch

    from mova_eval.metrics.features.syncnet import SyncNetV2

    torch.manual_seed(seed)
    net = SyncNetV2()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(net.state_dict(), path)
    return path


def random_s3fd(path: Path, seed: int = 1, face_logit: float = 3.0) -> Path:
    """A seeded random S3FD state_dict; small head weights and a face-logit bias make scores land near
    sigmoid(face_logit), so some anchors pass the 0.9 threshold (``face_logit=-10`` gives a realistic
    detector that rarely fires, for speed measurements)."""
    import torch

    from mova_eval.metrics.features.s3fd import S3FDNet

    torch.manual_seed(seed)
    net = S3FDNet()
    with torch.no_grad():
        for c in net.conf:
            c.weight.mul_(0.02)
            c.bias.zero_()
            c.bias[-1] = face_logit
        for c in net.loc:
            c.weight.mul_(0.01)
    torch.save(net.state_dict(), path)
    return path


def synthetic_clip(n_frames: int = 40, size=(192, 256), seed: int = 0, faces=(FACE_BOX,), cut_at: int | None = None,
                   silent: bool = False):
    """(frames uint8 [T,H,W,3] RGB at 25 fps, audio float32 [N] at 16 kHz, per-frame boxes).

    A textured "face" whose lower half moves with the audio envelope; ``faces`` are boxes (x1, y1, x2, y2) that may
    move: a callable ``t -> box`` is allowed. ``cut_at`` switches to a different background (a scene cut)."""
    rng = np.random.default_rng(seed)
    h, w = size
    bg = [rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8) for _ in range(2)]
    import cv2

    bg = [cv2.resize(b, (w, h), interpolation=cv2.INTER_NEAREST) for b in bg]
    tex = cv2.resize(rng.integers(60, 200, (8, 8, 3), dtype=np.uint8), (64, 64))
    t = np.arange(n_frames * 640) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * env + 0.02 * rng.normal(size=t.size)).astype(np.float32)
    if silent:
        audio[:] = 0
    frames, boxes = [], []
    for k in range(n_frames):
        img = bg[1 if cut_at is not None and k >= cut_at else 0].copy()
        fb = []
        for f in faces:
            b = f(k) if callable(f) else f
            x1, y1, x2, y2 = (int(round(v)) for v in b)
            cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if cx2 > cx1 and cy2 > cy1:
                face = cv2.resize(tex, (x2 - x1, y2 - y1))
                mouth = int((y2 - y1) * (0.55 + 0.25 * env[k * 640]))
                face[mouth:] = 255 - face[mouth:]
                img[cy1:cy2, cx1:cx2] = face[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
                fb.append([float(v) for v in b] + [0.99])
        frames.append(img)
        boxes.append(np.asarray(fb, dtype=np.float64).reshape(-1, 5))
    return np.stack(frames), audio, boxes


def write_png_frames(folder: Path, frames_bgr) -> list[str]:
    """Lossless frames under the reference's ``%06d.jpg`` names."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames_bgr):
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(f))
        p = folder / f"{i + 1:06d}.jpg"
        p.write_bytes(buf.tobytes())
        paths.append(str(p))
    return paths


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def reference_score_crops(ref_net, crops_bgr, audio_int16, work: Path, vshift: int = 15):
    """syncnet-python's ``SyncNetInstance.evaluate`` on lossless crops + wav: (offset, conf, dist)."""
    from scipy.io import wavfile
    from syncnet_python.SyncNetInstance import SyncNetInstance

    write_png_frames(work, crops_bgr)
    wavfile.write(work / "audio.wav", 16000, np.asarray(audio_int16, dtype=np.int16))

    class Opt:
        tmp_dir, batch_size = str(work), 20

    Opt.vshift = vshift
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return SyncNetInstance(net=ref_net, device="cpu").evaluate(opt=Opt)


def reference_pipeline_with_boxes(frames_rgb, audio_int16, boxes, work: Path, syncnet_path: Path, min_track: int):
    """The reference pipeline from tracking on (``_track``, ``_crop`` with its ffmpeg audio slice, ``evaluate``),
    given per-frame detections (``boxes``: [n, 5] per frame) and lossless frames. Returns per-track
    (frames, bboxes, crops, (offset, conf, dist) or None without ``syncnet_path``, audio slice)."""
    from unittest import mock

    import cv2
    import torch
    from scipy.io import wavfile
    from syncnet_python import syncnet_pipeline as sp
    from syncnet_python.SyncNetModel import S

    work.mkdir(parents=True, exist_ok=True)
    frame_paths = write_png_frames(work / "frames", [f[..., ::-1] for f in frames_rgb])
    audio_wav = work / "speech.wav"
    wavfile.write(audio_wav, 16000, np.asarray(audio_int16, dtype=np.int16))
    pipe = sp.SyncNetPipeline.__new__(sp.SyncNetPipeline)  # no weight loading: we only use its methods
    pipe.cfg = sp.PipelineConfig(min_track=min_track, ffmpeg_bin=ffmpeg_exe())
    pipe.device = "cpu"
    dets = [[{"frame": i, "bbox": b[:-1].tolist(), "conf": float(b[-1])} for b in fb] for i, fb in enumerate(boxes)]
    tracks = pipe._track([lst.copy() for lst in dets])

    written: list[list[np.ndarray]] = []
    real_writer = cv2.VideoWriter

    class Capture:
        def __init__(self, *a, **k):
            self._w = real_writer(*a, **k)
            written.append([])

        def write(self, img):
            written[-1].append(img.copy())
            self._w.write(img)

        def release(self):
            self._w.release()

    ref_net = None
    if syncnet_path is not None:
        ref_net = S()
        ref_net.load_state_dict(torch.load(syncnet_path, map_location="cpu"))
        ref_net.eval()
    out = []
    with mock.patch.object(sp.cv2, "VideoWriter", Capture):
        for i, t in enumerate(tracks):
            pipe._crop(t, frame_paths, str(audio_wav), work / "cropped" / f"{i:05d}")
            crops = np.stack(written[-1])
            _, seg = wavfile.read(work / "cropped" / f"{i:05d}.wav")
            score = reference_score_crops(ref_net, crops, seg, work / f"score{i}") if ref_net is not None else None
            out.append((t["frame"], t["bbox"], crops, score, seg))
    return out


def save_clip(path: Path, frames, audio, fps: float = 25.0) -> Path:
    """A lossless clip (RGB H.264 qp 0 + PCM) so decoding gives back exactly these frames."""
    from mova_eval import media

    return media.encode(path, np.asarray(frames), fps, np.asarray(audio)[None], 16000, lossless=True)


def env_with(paths: dict[str, Path]):
    """Context manager: MOVA_EVAL_WEIGHTS pointing at a folder holding these files."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        old = os.environ.get("MOVA_EVAL_WEIGHTS")
        folders = sorted({str(p.parent) for p in paths.values()})
        os.environ["MOVA_EVAL_WEIGHTS"] = os.pathsep.join(folders)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("MOVA_EVAL_WEIGHTS", None)
            else:
                os.environ["MOVA_EVAL_WEIGHTS"] = old

    return cm()
