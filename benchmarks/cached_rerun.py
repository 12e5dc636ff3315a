"""The score stage of a fully cached re-run: with the cache-first path against the decode-first path it replaced.

    python benchmarks/cached_rerun.py [suite.limit=N ...any run overrides]

Plans one run of the smoke suite (synthetic clips, every runnable metric unless overridden) with a tmp cache,
scores it once cold (filling the clip, score and feature caches), then times the score stage on the now fully
cached clips, interleaved round by round:

- A, now: ``runner.score_request`` as a run calls it — every metric's value is read from the caches by the clip's
  sha256 and no clip is decoded;
- B, before: the same with the cache-first path switched off (``_rows_from_cache`` returns None), so each clip is
  decoded by ``media.decode`` before its cached values are read — what a re-run did before issue 14 item 2.

Prints the decode calls and seconds of each and the ratio A/B (median over rounds). Times on a shared machine are
noisy; the ratio is measured in the same process. Model loading, imports and the bootstrap in aggregate/finalise
are outside the score stage and not measured here.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time


def main(argv: list[str]) -> None:
    os.environ["MOVA_EVAL_CACHE"] = tempfile.mkdtemp(prefix="mova-cached-rerun-")
    from mova_eval import media, runner
    from mova_eval.config import compose

    out = tempfile.mkdtemp(prefix="mova-cached-rerun-runs-")
    p = runner.plan(compose([f"output_dir={out}", "run_id=bench", "runtime.progress=false", *argv]))
    results = runner.generate_stage(p)
    ctx = p.score_context()
    calls = []
    real_decode, real_fast = media.decode, runner._rows_from_cache

    def counting(path, **kw):
        calls.append(path)
        return real_decode(path, **kw)

    media.decode = counting

    def stage() -> tuple[float, int]:
        calls.clear()
        t0 = time.perf_counter()
        for req in p.requests:
            runner.score_request(ctx, req, results[req.request_id])
        return time.perf_counter() - t0, len(calls)

    cold, cold_calls = stage()
    print(f"cold score stage: {cold:.2f} s, {cold_calls} decodes, {len(p.requests)} clips, "
          f"metrics {[m.info.name for m in p.metrics.metrics]}")
    a, b = [], []
    for _ in range(3):
        runner._rows_from_cache = real_fast
        ta, na = stage()
        runner._rows_from_cache = lambda *args: None
        tb, nb = stage()
        runner._rows_from_cache = real_fast
        a.append(ta)
        b.append(tb)
        print(f"  cached: now {ta:.3f} s ({na} decodes)   before {tb:.3f} s ({nb} decodes)")
    ratios = [x / y for x, y in zip(a, b)]
    print(f"fully cached score stage, now/before: {statistics.median(ratios):.3f}x "
          f"(median {statistics.median(a):.3f} s vs {statistics.median(b):.3f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
