"""LSE throughput against the syncnet-python 0.2.3 pipeline, and peak memory for an 8 s 720p clip.

    python benchmarks/lse_speed.py [--clips 8] [--seconds 8] [--size 352x640] [--repeats 3] [--rss-only | --no-rss]

Both sides get the same seeded random weights in the official layouts (S3FD's face logit biased low, so it behaves
like a trained detector on frames without faces: it runs its full cost but keeps nothing) and the same face boxes,
forced after detection has run, so both do every step: 25 fps conversion, S3FD on every frame, scenes, tracking,
crops, SyncNet over ±15 offsets. The reference is timed end to end through ``SyncNetPipeline.inference`` (ffmpeg
conversions, JPEG frames, XVID crops); ours from the file (decode once) to the clip's LSE values. CPU only.

Timing protocol: both pipelines first score one clip untimed (warm-up: weights loaded, allocator and thread pools
warm, the reference's ffmpeg found and cached by the OS), then ``--repeats`` timed passes over all clips with the
two sides interleaved and the order swapped each repeat (ours→ref, ref→ours, …), so drift in the machine's load hits
both. The speed-up is printed per repeat (reference time / our time of that repeat) with the median and range; on a
shared machine quote the median with the range, never a single pass.
Peak RSS is measured in a fresh subprocess scoring one 8 s 1280×720 clip with ``LSEMetric``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.metrics.lse_helpers


def make_clips(folder: Path, n: int, seconds: float, size: tuple[int, int]):
    from tests.metrics.lse_helpers import save_clip, synthetic_clip

    h, w = size
    box = (w * 0.3, h * 0.15, w * 0.3 + h * 0.6, h * 0.75)
    clips = []
    for i in range(n):
        frames, audio, boxes = synthetic_clip(n_frames=int(seconds * 25), size=size, seed=i, faces=(box,))
        path = save_clip(folder / f"clip{i:02d}.mp4".replace(".mp4", ".mkv"), frames, audio)
        clips.append((path, boxes))
    return clips


def run_ours(clips, syncnet_path, s3fd_path):
    from mova_eval import media
    from mova_eval.media import AudioPreset
    from mova_eval.metrics import lse
    from mova_eval.metrics.features import s3fd, syncnet

    snet, dnet = syncnet.load(syncnet_path), s3fd.load(s3fd_path)
    results = []
    t0 = time.perf_counter()
    for path, boxes in clips:
        clip = media.decode(path)
        audio = lse.to_int16(clip.audio_for(AudioPreset(16000, mono=True)))

        def detect(frames, boxes=boxes):
            s3fd.detect(dnet, frames, conf_th=0.9, scales=(0.25,))  # full detector cost, result replaced
            return boxes[: len(frames)]

        res = lse.run_pipeline(clip.video, audio, lse.MODES["mova"], syncnet=snet, detect=detect)
        s = res.scores[res.chosen]
        results.append((s.offset, s.conf, s.dist))
    return time.perf_counter() - t0, results


@contextlib.contextmanager
def _quiet_fds():
    """Silence stdout/stderr at the file-descriptor level (the reference's ffmpeg children print there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def run_reference(clips, syncnet_path, s3fd_path, work: Path, bin_dir: Path | None = None):
    from syncnet_python import syncnet_pipeline as sp

    from tests.metrics.lse_helpers import ffmpeg_exe

    pipe = sp.SyncNetPipeline({"min_track": 20, "s3fd_weights": str(s3fd_path), "syncnet_weights": str(syncnet_path),
                               "ffmpeg_bin": ffmpeg_exe()}, device="cpu")
    real_detect = pipe.s3fd.detect_faces
    exe_dir = bin_dir or work / "bin"
    exe_dir.mkdir(parents=True, exist_ok=True)
    if not (exe_dir / "ffmpeg").exists():
        (exe_dir / "ffmpeg").symlink_to(ffmpeg_exe())  # ffmpeg-python calls `ffmpeg` from PATH
    if str(exe_dir) not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = f"{exe_dir}{os.pathsep}{os.environ['PATH']}"
    results = []
    t0 = time.perf_counter()
    for k, (path, boxes) in enumerate(clips):
        counter = iter(range(10**9))

        def detect(image, conf_th, scales, boxes=boxes, counter=counter):
            real_detect(image, conf_th=conf_th, scales=scales)
            i = next(counter)
            return boxes[i] if i < len(boxes) else np.empty((0, 5))

        pipe.s3fd.detect_faces = detect
        with _quiet_fds():
            offs, confs, dists, *_ = pipe.inference(str(path), None, cache_dir=str(work / f"ref{k}"))
        results.append((offs[0], confs[0], dists[0]) if offs else None)
    return time.perf_counter() - t0, results


def _proc_status_mib(field: str) -> float:
    """VmHWM/VmRSS of this process in MiB. (getrusage's ru_maxrss survives exec on Linux, so a child started from
    a big parent would report the parent's size.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def make_720p_clip(folder: Path) -> Path:
    """The 8 s 1280×720 clip and its face boxes, made in the parent so the child's peak RSS is only scoring."""
    from tests.metrics.lse_helpers import save_clip, synthetic_clip

    frames, audio, boxes = synthetic_clip(n_frames=200, size=(720, 1280), faces=((400, 150, 800, 600),))
    np.save(folder / "boxes720p.npy", np.stack(boxes))
    return save_clip(folder / "clip720p.mkv", frames, audio)


def peak_rss_child(syncnet_path, s3fd_path, folder: Path) -> None:
    """Runs in a fresh subprocess: decode the 8 s 720p clip and score it through LSEMetric, print peak RSS."""
    from mova_eval import media
    from mova_eval.metrics import lse
    from mova_eval.spec import SuiteItem

    boxes = list(np.load(folder / "boxes720p.npy"))
    os.environ["MOVA_EVAL_WEIGHTS"] = os.pathsep.join({str(Path(syncnet_path).parent), str(Path(s3fd_path).parent)})

    class Forced(lse.LSEMetric):
        __abstract__ = True

        def _detect(self, fr):
            super()._detect(fr)  # the detector's full cost; its (empty) result is replaced by the drawn face
            return boxes[: len(fr)]

    base = _proc_status_mib("VmHWM")
    t0 = time.perf_counter()
    clip = media.decode(folder / "clip720p.mkv")
    after_decode = _proc_status_mib("VmHWM")
    m = Forced()
    m.load()
    s = m.score(clip, SuiteItem(id="x", category="set3", prompt=""))
    print(f"8 s 1280x720 clip (decode + LSE): {time.perf_counter() - t0:.1f} s, LSE-C {s.values['lse_c']:.3f}, "
          f"peak RSS {_proc_status_mib('VmHWM'):.0f} MiB "
          f"(after imports: {base:.0f} MiB; peak while decoding: {after_decode:.0f} MiB; the decoded RGB video alone: {200 * 720 * 1280 * 3 / 2**20:.0f} MiB)")


def timed_passes(clips, sn, fd, work: Path, repeats: int):
    """Warm-up on the first clip (untimed), then ``repeats`` interleaved passes; the order alternates per repeat.
    Returns [(t_ours, t_ref)], the results of the last pass of each side."""
    import shutil

    bin_dir = work / "bin"
    w_o, _ = run_ours(clips[:1], sn, fd)
    w_r, _ = run_reference(clips[:1], sn, fd, work / "warmup", bin_dir)
    shutil.rmtree(work / "warmup", ignore_errors=True)
    print(f"  warm-up (one clip, untimed in the result): mova-eval {w_o:.1f} s, syncnet-python {w_r:.1f} s", flush=True)
    times, r_ours, r_ref = [], None, None
    for k in range(repeats):
        ref_dir = work / f"pass{k}"
        if k % 2 == 0:
            t_o, r_ours = run_ours(clips, sn, fd)
            t_r, r_ref = run_reference(clips, sn, fd, ref_dir, bin_dir)
        else:
            t_r, r_ref = run_reference(clips, sn, fd, ref_dir, bin_dir)
            t_o, r_ours = run_ours(clips, sn, fd)
        shutil.rmtree(ref_dir, ignore_errors=True)  # the reference's frames and crops (hundreds of MB per pass)
        times.append((t_o, t_r))
        first = "mova-eval first" if k % 2 == 0 else "syncnet-python first"
        print(f"  repeat {k + 1} ({first}): mova-eval {t_o:.1f} s, syncnet-python {t_r:.1f} s, "
              f"speed-up {t_r / t_o:.2f}x", flush=True)
    return times, r_ours, r_ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--size", default="352x640", help="HxW of the throughput clips")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed passes after the warm-up")
    ap.add_argument("--rss-only", action="store_true")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--child-rss", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.child_rss:
        peak_rss_child(args.child_rss[0], args.child_rss[1], Path(args.child_rss[2]))
        return
    from tests.metrics.lse_helpers import random_s3fd, random_syncnet

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sn, fd = random_syncnet(tmp / "syncnet_v2.model"), random_s3fd(tmp / "sfd_face.pth", face_logit=-10.0)
        if not args.rss_only:
            h, w = (int(v) for v in args.size.split("x"))
            clips = make_clips(tmp, args.clips, args.seconds, (h, w))
            n = len(clips)
            load = os.getloadavg()[0]
            print(f"{n} clips of {args.seconds:g} s at {w}x{h}, CPU, torch threads {torch.get_num_threads()}, "
                  f"load average {load:.1f} at the start; warm-up on one clip, then {args.repeats} interleaved "
                  f"repeats", flush=True)
            times, r_ours, r_ref = timed_passes(clips, sn, fd, tmp, args.repeats)
            ratios = sorted(t_r / t_o for t_o, t_r in times)
            t_o, t_r = statistics.median(t for t, _ in times), statistics.median(t for _, t in times)
            print(f"  mova-eval     : {n / t_o:.4f} clips/s (median pass {t_o:.1f} s)")
            print(f"  syncnet-python: {n / t_r:.4f} clips/s (median pass {t_r:.1f} s)")
            print(f"  speed-up      : median {statistics.median(ratios):.2f}x, range {ratios[0]:.2f}–{ratios[-1]:.2f}x "
                  f"over {len(ratios)} repeats (load average {os.getloadavg()[0]:.1f} at the end)")
            diffs = [abs(a[2] - b[2]) for a, b in zip(r_ours, r_ref) if b is not None]
            print(f"  |LSE-D ours − reference| max {max(diffs):.4f} (the reference's JPEG/XVID round trips move it)"
                  if diffs else "  reference scored no track")
        if not args.no_rss:
            make_720p_clip(tmp)
            out = subprocess.run([sys.executable, __file__, "--child-rss", str(sn), str(fd), str(tmp)],
                                 capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-2000:])


if __name__ == "__main__":
    main()
