"""Cost and harmlessness of the arena's per-battle variants (arena/variants.py).

For synthetic clips at a few sizes (moving pattern + speech-like tone, made once through the playback pipeline), it
prints: seconds to make one variant (a battle needs two), wall and CPU (process time, all threads), the CPU of its
decode and of a plain encode of the same frames (the rest is the dither), file size, and what the variant changes against the
playback copy, next to what a plain re-encode of the copy (no dither) changes — the noise floor of one more
encoding generation:

- integrated loudness (BS.1770, the playback module's meter), in LU;
- frame PSNR (dB) over all frames;
- whether the file bytes and the decoded frames differ between two variants of the same clip.

    python benchmarks/arena_variants.py                 # 160x96, 640x360, 1280x720, 5 s at 24 fps
    python benchmarks/arena_variants.py --sizes 1280x720 --seconds 8 --repeats 2   # the 720p 8 s figure
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _source(path: Path, w: int, h: int, seconds: float, fps: int = 24, sr: int = 48000) -> None:
    from mova_eval import media

    n = int(seconds * fps)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = (127 + 100 * np.sin((xx + 3 * t) / 17.0)).astype(np.uint8)
        frames[t, ..., 1] = (127 + 100 * np.cos((yy - 2 * t) / 11.0)).astype(np.uint8)
        frames[t, ..., 2] = ((xx + yy + 5 * t) % 256).astype(np.uint8)
    tt = np.arange(int(seconds * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * 220 * tt) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * tt))).astype(np.float32)
    media.encode(path, frames, fps, np.stack([audio, audio]), sr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="160x96,640x360,1280x720")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from mova_eval import media
    from mova_eval.arena import playback
    from mova_eval.arena.variants import make_variant

    print("| size | variant wall s (one side) | variant CPU s | decode CPU s | encode CPU s | per battle CPU s | MB | "
          "ΔLUFS variant | ΔLUFS re-encode | PSNR variant | PSNR re-encode | bytes differ | frames differ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="arena-variants-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes.split(","):
            w, h = (int(x) for x in size.split("x"))
            _source(tmp / "src.mp4", w, h, args.seconds)
            playback.make_copy(tmp / "src.mp4", tmp / "copy.mp4")
            c0 = time.process_time()
            ref = media.decode(tmp / "copy.mp4")
            cpu_decode = time.process_time() - c0
            l_ref = playback.loudness(ref.audio, ref.sample_rate)
            c0 = time.process_time()
            media.encode(tmp / "plain.mp4", np.array(ref.video), ref.fps, ref.audio, ref.sample_rate)
            cpu_encode = time.process_time() - c0
            plain = media.decode(tmp / "plain.mp4")
            times, cpus, outs = [], [], []
            for i in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                make_variant(tmp / "copy.mp4", tmp / f"v{i}.mp4", seed=1000 + i)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                outs.append(media.decode(tmp / f"v{i}.mp4"))
            dl = max(abs(playback.loudness(o.audio, o.sample_rate) - l_ref) for o in outs)
            ps = min(_psnr(o.video, ref.video) for o in outs)
            bytes_differ = (tmp / "v0.mp4").read_bytes() != (tmp / "v1.mp4").read_bytes() if args.repeats > 1 else None
            frames_differ = not np.array_equal(outs[0].video, outs[1].video) if args.repeats > 1 else None
            t, cpu = float(np.median(times)), float(np.median(cpus))
            print(f"| {size} | {t:.2f} | {cpu:.2f} | {cpu_decode:.2f} | {cpu_encode:.2f} | {2 * cpu:.2f} | "
                  f"{(tmp / 'v0.mp4').stat().st_size / 1e6:.2f} | {dl:.3f} | "
                  f"{abs(playback.loudness(plain.audio, plain.sample_rate) - l_ref):.3f} | {ps:.1f} | "
                  f"{_psnr(plain.video, ref.video):.1f} | {bytes_differ} | {frames_differ} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
