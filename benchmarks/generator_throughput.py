"""Time a generator preset on the first N items of a suite and print seconds per clip and peak GPU memory.

    python benchmarks/generator_throughput.py generator=mova_360p generator.checkpoint=PATH suite.limit=3
    python benchmarks/generator_throughput.py generator=ltx2 generator.num_inference_steps=30 suite.limit=2

Clips go to a fresh cache directory (nothing cached is reused), so the figure is the real generation time. The
MOVA README's reference: 9.0 s/step for 360p on an H100 with offload=cpu (≈ 7.5 min per 50-step clip).
"""
from __future__ import annotations

import statistics
import sys
import tempfile


def main(overrides: list[str]) -> int:
    import os

    from mova_eval.config import compose
    from mova_eval.context import RunContext
    from mova_eval.registry import get_generator_class
    from mova_eval.runner import generate, plan_requests, resolve_device
    from mova_eval.suites import load_suite

    cfg = compose(overrides)
    os.environ["MOVA_EVAL_CACHE"] = tempfile.mkdtemp(prefix="mova-eval-bench-")
    suite = load_suite(cfg["suite"])
    gcfg = cfg["generator"]
    gen = get_generator_class(gcfg["name"])(gcfg, device=resolve_device(str(cfg["runtime"].get("device", "auto"))))
    gen.load()
    requests = plan_requests(suite, cfg.get("seeds") or [0], gcfg)
    results = generate(gen, requests, cache_enabled=True, progress=True, context=RunContext.from_env())
    gen.close()
    ok = [r for r in results.values() if r.ok]
    for r in results.values():
        if not r.ok:
            print(f"{r.request_id}: {r.error}", file=sys.stderr)
    if not ok:
        print("no clip was generated")
        return 1
    times = [r.provenance["wall_time_s"] for r in ok]
    peaks = [r.provenance.get("peak_gpu_memory_mb") for r in ok if r.provenance.get("peak_gpu_memory_mb")]
    steps = gcfg.get("num_inference_steps") or gcfg.get("sample_steps")
    print(f"{gcfg['name']}: {len(ok)}/{len(results)} clips, {statistics.mean(times):.1f} s/clip "
          f"(min {min(times):.1f}, max {max(times):.1f})"
          + (f", {statistics.mean(times) / int(steps):.2f} s/step" if steps else "")
          + (f", peak GPU memory {max(peaks) / 1024:.1f} GiB" if peaks else ", peak GPU memory not measured"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
