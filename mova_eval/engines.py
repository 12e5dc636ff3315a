"""Run engines: how a run's generate and score stages are scheduled (``runtime.engine``).

``local`` (the default, and today the only one built) overlaps the two stages in one process: the generator runs
in a thread of its own and hands each clip over a bounded queue as soon as it exists, while the driver thread scores
the clips that have arrived (in ``runtime.workers`` threads), so a GPU generator and CPU metrics work at the same
time. The driver thread alone writes the run directory: it appends each scored item to the crash-safe item log and,
before that, records the provenance of every clip that has arrived in run.json, so a run killed mid-way resumes as
one killed after the old generate-then-score sequence did. The rows returned are in request order and the tables are
sorted when written, so the results are those of :func:`mova_eval.runner.generate_stage` followed by
:func:`mova_eval.runner.score`.

``ray`` (issue 16 item 1) is not built: it is refused with a ConfigError, naming the ``[dist]`` extra when Ray is
not installed.

Quirks:
- The queue holds at most ``2 × workers + 2`` clips: a generator that runs ahead of scoring waits instead of piling
  up decoded work.
- When scoring fails (storage error, Ctrl-C), the generator stops after its current batch; its thread is a daemon,
  so a long batch (MOVA: minutes) does not hold the process.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from mova_eval.errors import ConfigError
from mova_eval.results import ScoredRows
from mova_eval.spec import GenResult

if TYPE_CHECKING:
    from mova_eval.runner import RunPlan

ENGINES = ("local", "ray")

_DONE = object()  # the generator thread's last message


def check_engine(rt: dict) -> str:
    """``runtime.engine`` validated: ``local``; ``ray`` is refused (not built) with what to do instead."""
    name = rt.get("engine", "local")
    if name is None:
        name = "local"
    if name not in ENGINES:
        raise ConfigError(f"runtime.engine={name!r} is not an engine; use one of {', '.join(ENGINES)}")
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"runtime.engine=ray needs Ray, which does not import here ({e}); install the "
                              "'dist' extra: pip install 'mova-eval[dist]'") from None
        raise ConfigError("runtime.engine=ray is not built yet (issue 16 item 1); use runtime.engine=local, or "
                          "suite.shard=I/N with `mova-eval merge` to spread a run over machines (docs/scaling.md)")
    return name


def queue_bound(workers: int) -> int:
    """How many generated clips may wait for scoring."""
    return 2 * workers + 2


def generate_and_score(p: RunPlan) -> tuple[dict[str, GenResult], ScoredRows]:
    """Generate and score every planned request with the two stages overlapped (see the module docstring).
    Returns the generation results by request id and this attempt's rows in request order. An exception of the
    generator's (not a per-request failure, which is a GenResult with an error) is raised here once the items
    scored before it are in the item log."""
    from mova_eval.runner import (
        iter_generate,
        record_decode,
        record_decodes,
        record_generation,
        score_request,
        write_run_json,
    )

    ctx = p.score_context()
    workers = p.settings.workers
    handoff: queue.Queue = queue.Queue(maxsize=queue_bound(workers))
    stop = threading.Event()
    failure: list[BaseException] = []
    t_start = time.perf_counter()

    def offer(msg) -> bool:
        while not stop.is_set():
            try:
                handoff.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        t0 = time.perf_counter()
        try:
            p.generator.load()
            try:
                for res in iter_generate(p.generator, p.requests, cache_enabled=p.settings.cache,
                                         progress=p.settings.progress, context=p.context):
                    if not offer(res):
                        return
            finally:
                p.generator.close()
        except BaseException as e:  # handed to the driver thread, which raises it
            failure.append(e)
        finally:
            p.timings["generate"] = time.perf_counter() - t0
            offer(_DONE)

    gen_results: dict[str, GenResult] = {}
    unrecorded: dict[str, GenResult] = {}
    by_request: dict[str, ScoredRows] = {}
    requests = {r.request_id: r for r in p.requests}

    def store(request_id: str, item_rows: ScoredRows) -> None:
        # every item in the log has its clip's provenance and decode in run.json first (one write for both)
        decoded = record_decode(p, ctx, request_id)
        if unrecorded:
            record_generation(p, dict(unrecorded))
            unrecorded.clear()
        elif decoded:
            write_run_json(p.run_dir, p.log)
        p.item_log.append(item_rows)
        by_request[request_id] = item_rows
        bar.update(1)

    producer = threading.Thread(target=produce, name="mova-eval-generate", daemon=True)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    pending: dict[Future, str] = {}

    def collect(block: bool) -> None:
        if not pending:
            return
        done, _ = wait(list(pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for fut in [f for f in pending if f in done]:  # in submission order
            store(pending.pop(fut), fut.result())

    with tqdm(total=len(p.requests), desc="score", unit="clip",
              disable=not p.settings.progress or not p.requests) as bar:
        producer.start()
        try:
            while True:
                try:
                    msg = handoff.get(timeout=0.05 if pending else None)
                except queue.Empty:
                    collect(block=False)
                    continue
                if msg is _DONE:
                    break
                res: GenResult = msg
                gen_results[res.request_id] = res
                unrecorded[res.request_id] = res
                req = requests[res.request_id]
                if pool is None:
                    store(res.request_id, score_request(ctx, req, res))
                    continue
                pending[pool.submit(score_request, ctx, req, res)] = res.request_id
                while len(pending) >= workers:
                    collect(block=True)
                collect(block=False)
            while pending:
                collect(block=True)
        finally:
            stop.set()
            if pool is not None:
                pool.shutdown(wait=not failure, cancel_futures=True)
            if unrecorded:  # also when scoring was interrupted: a resumed run keeps these clips' provenance
                record_generation(p, dict(unrecorded))
                unrecorded.clear()
    producer.join()
    if unrecorded:
        record_generation(p, dict(unrecorded))
    record_decodes(p, ctx)
    if failure:
        raise failure[0]
    p.timings["score"] = time.perf_counter() - t_start
    rows = ScoredRows()
    for r in p.requests:
        if r.request_id in by_request:
            rows.extend(by_request[r.request_id])
    return gen_results, rows
