"""Throughput (clips/s) and peak RSS of ``lse_latentsync`` and ``lipsync_offset_avgen`` on 8 s 640×352 clips,
against the syncnet-python 0.2.3 pipeline run with the variant's ``min_track``.

    python benchmarks/lipsync_variants_speed.py [--clips 2] [--variant latentsync|avgen] [--no-ref] [--no-rss]

The variants run the ``lse`` pipeline (S3FD on every frame, scenes, tracking, crops, SyncNet over ±15 offsets) and
differ only in track filters and aggregation, so their cost is ``lse``'s at another ``min_track``. Same set-up as
``benchmarks/lse_speed.py``: seeded random weights in the official layouts, S3FD's face logit biased low so it runs its
full cost but finds nothing, and the drawn face boxes forced after detection on both sides. Ours is timed through
the metric from the file (one decode); the reference end to end through ``SyncNetPipeline.inference`` (ffmpeg
conversions, JPEG frames, XVID crops). CPU only. Peak RSS (VmHWM) comes from a fresh subprocess scoring one clip.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.metrics.lse_helpers
sys.path.insert(0, str(HERE))  # lse_speed (its clip maker, quiet-fd helper and VmHWM reader)

VARIANTS = {"latentsync": ("lse_latentsync", "lse_c_latentsync"), "avgen": ("lipsync_offset_avgen", "lipsync_offset_avgen")}


def _metric(variant: str, boxes):
    from mova_eval.metrics import lse_variants

    base = {"latentsync": lse_variants.LSELatentSyncMetric, "avgen": lse_variants.LipsyncOffsetAVGenMetric}[variant]

    class Forced(base):
        __abstract__ = True

        def _detect(self, frames):
            super()._detect(frames)  # the detector's full cost; its (empty) result is replaced by the drawn face
            return boxes[: len(frames)]

    opts = {"track_conf_th": -1e9} if variant == "avgen" else {}  # random weights: keep every track
    return Forced(opts)


def run_ours(clips, variant: str):
    from mova_eval import media
    from mova_eval.spec import SuiteItem

    out = VARIANTS[variant][1]
    item = SuiteItem(id="b", category="set3", prompt="")
    values = []
    t0 = time.perf_counter()
    for path, boxes in clips:
        m = _metric(variant, boxes)
        m.load()
        values.append(m.score(media.decode(path), item).values[out])
    return time.perf_counter() - t0, values


def run_reference(clips, syncnet_path, s3fd_path, work: Path, min_track: int):
    import lse_speed
    from syncnet_python import syncnet_pipeline as sp

    from tests.metrics.lse_helpers import ffmpeg_exe

    pipe = sp.SyncNetPipeline({"min_track": min_track, "s3fd_weights": str(s3fd_path),
                               "syncnet_weights": str(syncnet_path), "ffmpeg_bin": ffmpeg_exe()}, device="cpu")
    real_detect = pipe.s3fd.detect_faces
    exe_dir = work / "bin"
    exe_dir.mkdir(exist_ok=True)
    if not (exe_dir / "ffmpeg").exists():
        (exe_dir / "ffmpeg").symlink_to(ffmpeg_exe())
    os.environ["PATH"] = f"{exe_dir}{os.pathsep}{os.environ['PATH']}"
    t0 = time.perf_counter()
    for k, (path, boxes) in enumerate(clips):
        counter = iter(range(10**9))

        def detect(image, conf_th, scales, boxes=boxes, counter=counter):
            real_detect(image, conf_th=conf_th, scales=scales)
            i = next(counter)
            return boxes[i] if i < len(boxes) else np.empty((0, 5))

        pipe.s3fd.detect_faces = detect
        with lse_speed._quiet_fds():
            pipe.inference(str(path), None, cache_dir=str(work / f"ref{k}"))
    return time.perf_counter() - t0


def rss_child(folder: Path, variant: str) -> None:
    import lse_speed

    boxes = list(np.load(folder / "boxes0.npy"))
    t, vals = run_ours([(folder / "clip00.mkv", boxes)], variant)
    print(f"{lse_speed._proc_status_mib('VmHWM'):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--variant", default="latentsync", choices=sorted(VARIANTS))
    ap.add_argument("--no-ref", action="store_true")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--_rss-child", dest="rss_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(Path(args.rss_child), args.variant)
        return
    import lse_speed
    import torch

    from mova_eval.metrics import lse_variants
    from tests.metrics.lse_helpers import random_s3fd, random_syncnet

    min_track = {"latentsync": lse_variants.LATENTSYNC, "avgen": lse_variants.AVGEN}[args.variant].min_track
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sn, fd = random_syncnet(tmp / "syncnet_v2.model"), random_s3fd(tmp / "sfd_face.pth", face_logit=-10.0)
        os.environ["MOVA_EVAL_WEIGHTS"] = str(tmp)
        clips = lse_speed.make_clips(tmp, max(1, args.clips), 8.0, (352, 640))
        np.save(tmp / "boxes0.npy", np.stack(clips[0][1]))
        n = len(clips)
        print(f"{n} clip(s) of 8 s at 640x352, CPU, torch threads {torch.get_num_threads()}, "
              f"metric {VARIANTS[args.variant][0]} (min_track {min_track})")
        t, vals = run_ours(clips, args.variant)
        print(f"  mova-eval     : {n / t:.3f} clips/s ({t:.1f} s)  values {[round(v, 4) for v in vals]}")
        if not args.no_ref:
            try:
                tr = run_reference(clips, sn, fd, tmp, min_track)
            except ImportError as e:
                print(f"  syncnet-python: skipped ({e})")
            else:
                print(f"  syncnet-python: {n / tr:.3f} clips/s ({tr:.1f} s)")
                print(f"  speed-up      : {tr / t:.2f}x")
        if not args.no_rss:
            r = subprocess.run([sys.executable, __file__, "--variant", args.variant, "--_rss-child", str(tmp)],
                               capture_output=True, text=True, env=dict(os.environ))
            print(f"  peak RSS scoring one clip in a fresh process: {r.stdout.strip().splitlines()[-1]} MiB"
                  if r.returncode == 0 and r.stdout.strip() else f"  peak RSS: child failed: {r.stderr[-2000:]}")


if __name__ == "__main__":
    main()
