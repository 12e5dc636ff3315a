"""Throughput of the decode-once path: decode N synthetic 8 s clips and score loudness on each.

    python benchmarks/decode_loudness.py --n 50            # prints clips/s and peak RSS
    python benchmarks/decode_loudness.py --n 50 --width 320 --height 240

The clips are made first by the synthetic generator in a child process (its time and memory are reported
separately and do not count), then this process decodes each clip once (PyAV → Clip) and runs the loudness
metric on it (48 kHz resample + BS.1770), serially. Peak RSS is this process's ``ru_maxrss``: the cost of
holding one decoded clip at a time plus the Python/NumPy baseline.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_clips(folder: Path, n: int, duration: float, width: int, height: int) -> list[str]:
    """Child-process entry: n clips from the smoke suite (items × seeds), speech included when espeak-ng works."""
    from mova_eval.config import compose
    from mova_eval.generators.synthetic import SyntheticGenerator
    from mova_eval.spec import GenRequest
    from mova_eval.suites import load_suite

    items = load_suite(compose([])["suite"]).items
    gen = SyntheticGenerator({"name": "synthetic", "duration": duration, "width": width, "height": height})
    paths = []
    for k in range(n):
        item, seed = items[k % len(items)], k // len(items)
        req = GenRequest(f"{item.id}#s{seed}", item, seed, out_path=str(folder / f"{item.id}_s{seed}.mp4"))
        res = gen.generate([req])[0]
        if not res.ok:
            raise SystemExit(f"could not make {req.request_id}: {res.error}")
        paths.append(res.path)
    return paths


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="number of clips (default 50)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per clip (default 8)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=352)
    p.add_argument("--dir", type=Path, default=None, help="keep the clips here (default: a temporary folder)")
    p.add_argument("--_make", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._make:
        paths = make_clips(args.dir, args.n, args.duration, args.width, args.height)
        print(json.dumps(paths))
        return 0

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mova-eval-bench-")
        args.dir = Path(tmp.name)
    args.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--_make", "--n", str(args.n), "--duration", str(args.duration),
                            "--width", str(args.width), "--height", str(args.height), "--dir", str(args.dir)],
                           capture_output=True, text=True)
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return child.returncode
    paths = json.loads(child.stdout.strip().splitlines()[-1])
    t_make = time.perf_counter() - t0

    from mova_eval import media
    from mova_eval.metrics.loudness import LoudnessMetric
    from mova_eval.spec import SuiteItem

    metric = LoudnessMetric({})
    metric.load()
    item = SuiteItem(id="bench", category="bench", prompt="benchmark clip")
    rss_before = peak_rss_mib()
    t_decode = t_score = 0.0
    audio_s = 0.0
    values = []
    for path in paths:
        t = time.perf_counter()
        clip = media.decode(path)
        t_decode += time.perf_counter() - t
        t = time.perf_counter()
        values.append(metric.score(clip, item).values["lufs"])
        t_score += time.perf_counter() - t
        audio_s += clip.duration
        del clip
    total = t_decode + t_score
    n = len(paths)
    print(f"clips: {n} × {args.duration:g} s at {args.width}x{args.height}, 24 fps (synthetic; made in {t_make:.1f} s)")
    print(f"decode:   {t_decode:7.2f} s  ({n / t_decode:6.2f} clips/s)")
    print(f"loudness: {t_score:7.2f} s  ({n / t_score:6.2f} clips/s)")
    print(f"decode + loudness: {n / total:.2f} clips/s, {total / n * 1000:.0f} ms/clip, "
          f"{audio_s / total:.0f}× real time")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before decoding: {rss_before:.0f} MiB)")
    print(f"mean LUFS {sum(values) / n:.2f} (sanity)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
