"""DNSMOS wall time: ours against the MOVA toolkit's ``eval_dnsmos.py`` on the same clips, whole processes.

    python benchmarks/dnsmos_speed.py --toolkit PATH/TO/MOVA/evaluation [--clips 8] [--runs 3]

Makes ``--clips`` 8.04 s 640×352 clips (H.264 + 48 kHz stereo AAC, as MOVA writes them), then times, with
``farm-bench`` (A and B interleaved, ratio pair by pair, median quoted), two processes on that folder:

- A, ours: ``python benchmarks/dnsmos_speed.py --ours DIR`` — what a run does per clip: ``media.decode`` of the
  streams DNSMOS needs (audio only), the MOVA decode preset (FFmpeg's resampler to 16 kHz s16 mono) and
  ``DnsmosMetric`` with its default outputs (P.808 only, MOVA's number);
- B, the toolkit: ``python eval_dnsmos.py --input_dir_direct DIR`` (ffmpeg to a temp wav per clip, P.808 only).

Both include interpreter start-up and imports (librosa, onnxruntime). Target: A/B ≤ 1.0.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_clips(folder: Path, n: int, seconds: float = 8.04, size=(352, 640)) -> list[Path]:
    import numpy as np

    from mova_eval import media

    out = []
    for i in range(n):
        g = np.random.default_rng(i)
        frames_n = int(round(seconds * 24))
        base = g.integers(0, 255, (1, size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
        frames = np.repeat(np.repeat(np.repeat(base, frames_n, 0), 16, 1), 16, 2)
        sr = 48000
        t = np.arange(int(seconds * sr)) / sr
        f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t + i)
        voiced = sum((0.6 / k) * np.sin(k * 2 * np.pi * np.cumsum(f0) / sr) for k in range(1, 12))
        x = 0.25 * voiced * np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 2 + 0.01 * g.standard_normal(t.size)
        audio = np.stack([x, 0.8 * x]).astype(np.float32)
        out.append(media.encode(folder / f"{i:08d}_video_bench_seed{i}.mp4", frames, 24.0, audio, sr))
    return out


def ours(folder: Path) -> None:
    from mova_eval import media
    from mova_eval.metrics.dnsmos import DnsmosMetric
    from mova_eval.spec import SuiteItem

    m = DnsmosMetric()
    m.load()
    item = SuiteItem(id="b", category="set3", prompt="p", speech_text="words")
    vals = [m.score(media.decode(p, video=False), item).values["dnsmos_p808"] for p in sorted(folder.glob("*.mp4"))]
    print(f"ours: {len(vals)} clips, mean P.808 {sum(vals) / len(vals):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toolkit", help="the evaluation/ folder of an OpenMOSS/MOVA checkout")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ours", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ours:
        return ours(args.ours)
    if not args.toolkit:
        ap.error("--toolkit PATH is required (the toolkit's evaluation/ folder)")
    script = Path(args.toolkit) / "metrics" / "dnsmos" / "eval_dnsmos.py"
    if not script.is_file():
        ap.error(f"{script} does not exist")
    bench = shutil.which("farm-bench")
    if bench is None:
        ap.error("farm-bench is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        make_clips(folder, args.clips)
        a = [sys.executable, str(HERE / "dnsmos_speed.py"), "--ours", str(folder)]
        b = f"{sys.executable} {script} --input_dir_direct {folder}"
        print(f"{args.clips} clips of 8.04 s 640x352, H.264 + 48 kHz stereo AAC; A = ours, B = eval_dnsmos.py")
        subprocess.run([bench, "-n", str(args.runs), "--warmup", "1", "--timeout", "1200", "--vs", b, "--", *a],
                       check=True)


if __name__ == "__main__":
    main()
