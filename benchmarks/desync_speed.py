"""DeSync throughput (clips/s) and peak memory on 8 s 640×352 clips, against av-benchmark's Synchformer.

    python benchmarks/desync_speed.py [--clips 2] [--metric desync|desync_avgen] [--device cpu|cuda] [--no-ref]
                                      [--rss-only]

Both sides load the same seeded random state_dict in the official 513-key layout (or the real
``synchformer_state_dict.pth`` when ``MOVA_EVAL_WEIGHTS`` holds it). Ours is timed from the file (one decode) to the
clip's value through the metric. The reference (hkchengrex/av-benchmark, imported from ``MOVA_EVAL_AVBENCH`` as in
tests/metrics/synchformer_ref.py; skipped when absent) is timed on the same prepared frames and audio through
``extract_vfeats`` / ``extract_afeats`` / ``compare_v_a`` with av-benchmark's segmentation (no decode, so the ratio
flatters the reference). Peak RSS (VmHWM) is measured in a fresh subprocess scoring one clip.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.metrics.synchformer_helpers / synchformer_ref


def _weights_dir(tmp: Path) -> Path:
    for d in os.environ.get("MOVA_EVAL_WEIGHTS", "").split(os.pathsep):
        if d and (Path(d) / "synchformer_state_dict.pth").is_file():
            return Path(d)
    from tests.metrics.synchformer_helpers import save_random

    save_random(tmp / "synchformer_state_dict.pth", seed=0)
    return tmp


def make_clips(folder: Path, n: int, seconds: float = 8.0, size=(352, 640)) -> list[Path]:
    from mova_eval import media
    from tests.metrics.synchformer_helpers import synthetic_av

    out = []
    for i in range(n):
        frames, audio = synthetic_av(seconds, size=size, seed=i, audio_delay_s=0.2 * (i % 3))
        out.append(media.encode(folder / f"clip{i}.mkv", frames, 25.0, audio, 16000, lossless=True))
    return out


def run_ours(paths, metric: str, device: str):
    from mova_eval import media
    from mova_eval.registry import get_metric_class
    from mova_eval.spec import SuiteItem

    m = get_metric_class(metric)(device=device)
    m.load()
    item = SuiteItem(id="b", category="set1", prompt="")
    t0 = time.perf_counter()
    values = [m.score(media.decode(p), item).values[metric] for p in paths]
    return time.perf_counter() - t0, values


def run_reference(paths, metric: str, weights_dir: Path):
    import numpy as np
    import torch

    from mova_eval import media
    from mova_eval.metrics import desync
    from mova_eval.metrics.features import synchformer as sf
    from tests.metrics.synchformer_ref import reference_synchformer_module

    ref = reference_synchformer_module().Synchformer().eval()
    ref.load_state_dict(torch.load(weights_dir / "synchformer_state_dict.pth", weights_only=True))
    proto = desync.MOVA if metric == "desync" else desync.AVGEN
    prepared = [desync.prepare(media.decode(p), proto)[:2] for p in paths]  # decode not timed for the reference
    grid = np.linspace(-2, 2, 21)
    t0 = time.perf_counter()
    values = []
    with torch.inference_mode():
        for frames, audio in prepared:
            if proto is desync.AVGEN:
                frames, audio = frames[2:122], audio[1280 : 1280 + 76800]
            x = (torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
            nv = (x.shape[0] - 16) // 8 + 1
            vis = torch.stack([x[i * 8 : i * 8 + 16] for i in range(nv)])[None]
            a = torch.from_numpy(np.array(audio))
            na = (a.shape[0] - 10240) // 5120 + 1
            mel = sf.log_mel(torch.stack([a[i * 5120 : i * 5120 + 10240] for i in range(na)]))
            vf = torch.cat([ref.extract_vfeats(vis[:, i : i + 4]) for i in range(0, nv, 4)], dim=1)
            af = ref.extract_afeats(mel[None, :, None])
            n = min(nv, na)
            starts = [0, n - 14] if proto is desync.MOVA else [0]
            logits = [ref.compare_v_a(vf[:, s : s + 14], af[:, s : s + 14])[0] for s in starts]
            if proto is desync.MOVA:
                values.append(float(np.mean([abs(grid[int(lg.argmax())]) for lg in logits])))
            else:
                p = torch.softmax(logits[0].double(), -1).numpy()
                values.append(abs(float((p * grid).sum())))
    return time.perf_counter() - t0, values


def _vmhwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(clip: Path, metric: str, device: str) -> None:
    run_ours([clip], metric, device)
    print(f"{_vmhwm_mib():.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--metric", default="desync", choices=("desync", "desync_avgen"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-ref", action="store_true", help="skip the av-benchmark reference")
    ap.add_argument("--rss-only", action="store_true")
    ap.add_argument("--_rss-child", dest="rss_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(Path(args.rss_child), args.metric, args.device)
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{args.clips} clip(s) of 8 s at 640x352, metric {args.metric}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wdir = _weights_dir(tmp)
        os.environ["MOVA_EVAL_WEIGHTS"] = str(wdir)
        paths = make_clips(tmp, max(1, args.clips))
        if not args.rss_only:
            t, vals = run_ours(paths, args.metric, args.device)
            print(f"mova-eval     {len(paths) / t:8.4f} clips/s  ({t / len(paths):.1f} s/clip)  values {vals}")
            if not args.no_ref:
                try:
                    tr, rvals = run_reference(paths, args.metric, wdir)
                except ImportError as e:
                    print(f"reference     skipped: {e}")
                else:
                    print(f"av-benchmark  {len(paths) / tr:8.4f} clips/s  ({tr / len(paths):.1f} s/clip, decode not "
                          f"counted)  values {rvals}")
                    print(f"speed ratio (ours / reference): {tr / t:.2f}x")
        r = subprocess.run([sys.executable, __file__, "--metric", args.metric, "--device", args.device,
                            "--_rss-child", str(paths[0])], capture_output=True, text=True, env=dict(os.environ))
        if r.returncode != 0:
            print("peak RSS: child failed:", r.stderr[-2000:])
        else:
            print(f"peak RSS scoring one clip in a fresh process: {r.stdout.strip().splitlines()[-1]} MiB")


if __name__ == "__main__":
    main()
