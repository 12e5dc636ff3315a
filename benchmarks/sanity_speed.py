"""How long `mova-eval sanity` takes on the smoke suite with the metrics that run on CPU, and how many clips it scored.

Target (issue 17): the full default battery within 10 minutes on 2 cores. The script uses a fresh cache root, so it
measures: generate + score the clean clips (`mova-eval run`, what a user has already done), then `sanity` (which
reads the clean scores from the cache and scores only the defected variants). For comparison it times what a user
would otherwise run — one `mova-eval run` per defect with the synthetic generator's `generator.defects` — for one
variant (+200 ms offset, clips regenerated, every metric re-scored on every clip) and extrapolates that to the
battery's audio variants (the only kind those defects offer), labelled as an extrapolation.

    .venv/bin/python benchmarks/sanity_speed.py [--quick] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the short battery (one or two strengths per defect)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sanity-bench-"))
    env = {**os.environ, "MOVA_EVAL_CACHE": str(tmp / "cache")}
    exe = [sys.executable, "-m", "mova_eval"]
    common = ["runtime.progress=false", f"runtime.workers={args.workers}", f"output_dir={tmp / 'runs'}"]

    t0 = time.perf_counter()
    subprocess.run(exe + ["run", "run_id=clean", *common], env=env, check=True, capture_output=True)
    t_clean = time.perf_counter() - t0

    t0 = time.perf_counter()
    subprocess.run(exe + ["run", "run_id=naive-offset", "+generator.defects.audio_offset_ms=200", *common], env=env,
                   check=True, capture_output=True)
    t_naive_one = time.perf_counter() - t0

    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(exe + ["sanity", *common, "--out", str(tmp / "sanity"), *(["--quick"] if args.quick else [])],
                       env=env, check=True, capture_output=True, text=True)
    t_sanity = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_sanity = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    import json

    data = json.loads((tmp / "sanity" / "sanity.json").read_text())
    c = data["counts"]
    audio_variants = sum(1 for b in data["meta"]["battery"] if b["defect"] in
                         ("audio_offset", "swap_audio", "mute", "noise", "time_stretch", "wrong_language"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"clean run (generate + score {c['clips']} clips, every CPU metric): {t_clean:.1f} s")
    print(f"sanity ({'quick' if args.quick else 'full'} battery, {len(data['meta']['battery'])} defect × strength): "
          f"{t_sanity:.1f} s wall; {c['variants']} defected clips, {c['defected_scored']} metric scorings computed, "
          f"{c['cache_hits']} clean scores read from the cache, {c['clean_scored']} clean scorings recomputed")
    print(f"sanity CPU time: {cpu_sanity:.1f} s (user+sys, all threads and child processes); on 2 otherwise idle "
          f"cores the wall time is at least {cpu_sanity / 2:.0f} s")
    print(f"one naive run per defect (generator.defects, every metric on every clip): {t_naive_one:.1f} s measured "
          f"for one variant; × {audio_variants} audio variants ≈ {t_naive_one * audio_variants:.0f} s (extrapolated; "
          f"video defects are not offered that way)")
    print(f"ratio (extrapolated naive audio variants / sanity full battery): "
          f"{t_naive_one * audio_variants / t_sanity:.2f}x")
    print(f"target: sanity ≤ 600 s on 2 cores → {'met' if t_sanity <= 600 else 'NOT met'}")
    print(r.stdout.splitlines()[-1] if r.stdout else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
