"""One run: plan → generate (cached) → decode once → score / extract features (cached) → set-level → aggregate
→ run log. Each stage is a plain function; ``run()`` only sequences them and handles resume.

Resume: a run directory keeps every finished item in ``items.partial.jsonl``. Re-running with the same ``run_id``
skips items already scored (with identical results, since scores and features come from the same cache), and
refuses to continue a run whose configuration changed.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from mova_eval import media, references, stats
from mova_eval.cache import Cache, make_key
from mova_eval.errors import ConfigError, MediaError, MovaEvalError
from mova_eval.metrics.base import CORPUS, ItemScore, Metric
from mova_eval.registry import get_generator_class, get_metric_class, metric_classes
from mova_eval.results import (ItemLog, MetricStatus, RunLog, SummaryRow, now, read_run_json, rows_to_frame,
                               write_run_json)
from mova_eval.spec import GenRequest, GenResult, Suite, SuiteItem

FEATURES_SUFFIX = ".features"


# ----------------------------------------------------------------------------------------------- set-up


def resolve_device(spec: str) -> str:
    if spec != "auto":
        if spec.startswith("cuda"):
            try:
                import torch

                if not torch.cuda.is_available():
                    raise ConfigError(f"runtime.device={spec} but torch sees no CUDA device; use runtime.device=cpu")
            except ImportError as e:
                raise ConfigError(f"runtime.device={spec} needs torch with CUDA") from e
        return spec
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def config_hash(cfg: dict) -> str:
    """Hash of what determines results (runtime knobs such as workers or progress bars excluded)."""
    relevant = {k: v for k, v in cfg.items() if k not in ("runtime", "run_id", "output_dir")}
    return make_key(relevant)[:12]


@dataclass
class MetricPlan:
    metrics: list[Metric]                 # loaded, ready to run
    statuses: list[MetricStatus]          # every metric considered, with why it runs or not
    failed_requested: dict[str, str] = field(default_factory=dict)  # explicitly asked for but cannot run → reason


def select_metrics(mcfg: dict, device: str) -> MetricPlan:
    """Instantiate the requested metrics. With ``only`` unset, every metric that can run here; a metric the user
    named explicitly but which cannot run records NaN with its reason on every item it applies to."""
    only = mcfg.get("only")
    exclude = set(mcfg.get("exclude") or [])
    options = mcfg.get("options") or {}
    unknown_opts = [k for k in options if k not in metric_classes()]
    if unknown_opts:
        raise ConfigError(f"metrics.options names unknown metric(s) {unknown_opts}; known: {list(metric_classes())}")
    names = list(only) if only else [n for n in metric_classes() if n not in exclude]
    plan = MetricPlan([], [])
    for name in names:
        cls = get_metric_class(name)
        metric = cls(options.get(name, {}), device=device)
        av = cls.availability()
        status = MetricStatus(name=name, version=cls.info.version, available=av.ok, reason=av.reason,
                              command=av.command, aggregation=cls.info.aggregation, options=dict(metric.options),
                              reference=cls.info.reference)
        if av.ok:
            try:
                metric.load()
                plan.metrics.append(metric)
            except (MovaEvalError, ImportError) as e:
                status.available, status.reason = False, str(e)
                status.command = getattr(e, "command", None)
        if not status.available and only:
            plan.failed_requested[name] = status.reason + (f" — fix: {status.command}" if status.command else "")
        if status.available:
            from mova_eval import weights

            status.weights = {w: weights.fingerprint(w) for w in cls.info.weights}
        plan.statuses.append(status)
    return plan


def plan_requests(suite: Suite, seeds: Iterable[int], gen_cfg: dict) -> list[GenRequest]:
    reqs = []
    for item in suite.items:
        for seed in seeds:
            reqs.append(GenRequest(
                request_id=f"{item.id}#s{seed}", item=item, seed=int(seed),
                duration_s=gen_cfg.get("duration"), fps=gen_cfg.get("fps"), width=gen_cfg.get("width"),
                height=gen_cfg.get("height"), first_frame=item.first_frame,
            ))
    return reqs


# ----------------------------------------------------------------------------------------------- generate


def generate(generator, requests: list[GenRequest], *, cache_enabled: bool, progress: bool) -> dict[str, GenResult]:
    """Run the generator over requests in batches; clips made by a generator are cached by what determines them
    (generator identity, item, seed, size), so an unchanged request is never generated twice."""
    results: dict[str, GenResult] = {}
    clip_cache = Cache("clips", enabled=cache_enabled)
    todo: list[GenRequest] = []
    if generator.capabilities.makes_clips:
        ident = generator.identity()
        for r in requests:
            key = make_key("clip", ident, r.item.fingerprint(), r.seed, r.duration_s, r.fps, r.width, r.height)
            out = clip_cache.path(key, suffix=str(generator.config.get("container", ".mp4")))
            sidecar = out.with_suffix(".json")
            if cache_enabled and out.is_file() and sidecar.is_file():
                results[r.request_id] = GenResult(r.request_id, str(out), None,
                                                  {**json.loads(sidecar.read_text()), "cached": True})
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                todo.append(GenRequest(**{**r.__dict__, "out_path": str(out)}))
    else:
        todo = list(requests)
    batch = int(generator.config.get("batch_size") or (len(todo) if not generator.capabilities.makes_clips else 1))
    batch = max(1, batch)
    with tqdm(total=len(todo), desc="generate", unit="clip", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            t0 = time.perf_counter()
            try:
                out = generator.generate(chunk)
            except MovaEvalError as e:
                out = [GenResult(r.request_id, None, f"{type(e).__name__}: {e}") for r in chunk]
            if len(out) != len(chunk):
                raise RuntimeError(f"generator {generator.name} returned {len(out)} results for {len(chunk)} requests")
            elapsed = (time.perf_counter() - t0) / len(chunk)
            for req, res in zip(chunk, out):
                res.provenance.setdefault("wall_time_s", round(elapsed, 4))
                res.provenance.setdefault("generator", generator.identity())
                res.provenance.setdefault("seed", req.seed)
                if res.ok and req.out_path:
                    Path(req.out_path).with_suffix(".json").write_text(json.dumps(res.provenance, default=str))
                results[res.request_id] = res
            bar.update(len(chunk))
    return results


# ----------------------------------------------------------------------------------------------- score


@dataclass
class ScoreContext:
    run_id: str
    suite: str
    generator: str
    metrics: list[Metric]
    failed_requested: dict[str, str]
    all_classes: dict
    score_cache: Cache
    feature_cache: Cache
    tokens: dict[str, str]


def _row(ctx: ScoreContext, req: GenRequest, family: str, metric: str, value: float, error: str | None,
         details: dict | None, clip_path: str | None, clip_hash: str | None) -> dict:
    it = req.item
    return {"run_id": ctx.run_id, "suite": ctx.suite, "item_id": it.id, "category": it.category,
            "language": it.language, "generator": ctx.generator, "seed": req.seed, "family": family, "metric": metric,
            "value": float(value), "error": error, "details": json.dumps(details, ensure_ascii=False, default=str)
            if details else None, "clip_path": clip_path, "clip_hash": clip_hash}


def _error_rows(ctx, req, metric_cls, error: str, clip_path=None, clip_hash=None) -> list[dict]:
    info = metric_cls.info
    names = [info.name + FEATURES_SUFFIX] if _is_set_level_cls(metric_cls) else [o.name for o in info.outputs]
    return [_row(ctx, req, info.name, n, math.nan, error, None, clip_path, clip_hash) for n in names]


def _is_set_level_cls(cls) -> bool:
    return cls.compute is not Metric.compute


def _format_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def score_request(ctx: ScoreContext, req: GenRequest, res: GenResult) -> list[dict]:
    """All metrics on one clip: decode once, share the Clip, record NaN + reason on every failure."""
    item = req.item
    rows: list[dict] = []
    for name, reason in ctx.failed_requested.items():
        cls = ctx.all_classes[name]
        if cls(None).applies(item):
            rows += _error_rows(ctx, req, cls, f"MetricUnavailable: {reason}")
    active = [m for m in ctx.metrics if m.applies(item)]
    if not active:
        return rows
    if not res.ok:
        for m in active:
            rows += _error_rows(ctx, req, type(m), f"GenerationError: {res.error}")
        return rows
    try:
        clip = media.decode(res.path)
    except MediaError as e:
        for m in active:
            rows += _error_rows(ctx, req, type(m), _format_error(e), res.path)
        return rows
    for m in active:
        info = m.info
        missing = [k for k in ("video", "audio") if k in info.needs and not getattr(clip, f"has_{k}")]
        if missing:
            rows += _error_rows(ctx, req, type(m), f"MissingStreamError: {clip.path}: has no {missing[0]} stream",
                                clip.path, clip.content_hash)
            continue
        token = ctx.tokens[info.name]
        try:
            if m.is_set_level:
                key = make_key("features", clip.content_hash, info.name, token)
                ctx.feature_cache.get_or_compute(key, lambda m=m: np.asarray(m.features(clip, item)))
                rows.append(_row(ctx, req, info.name, info.name + FEATURES_SUFFIX, math.nan, None,
                                 {"feature_key": key}, clip.path, clip.content_hash))
            else:
                key = make_key("score", clip.content_hash, info.name, token, item.fingerprint())
                s: ItemScore = ctx.score_cache.get_or_compute(key, lambda m=m: _checked(m, clip, item))
                for out in info.outputs:
                    v = s.values.get(out.name, math.nan)
                    err = s.errors.get(out.name)
                    if not math.isfinite(v) and err is None:
                        err = "no value (metric gave no reason)"
                    rows.append(_row(ctx, req, info.name, out.name, v, err, s.details, clip.path, clip.content_hash))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one metric failing on one clip must not stop the run
            rows += _error_rows(ctx, req, type(m), _format_error(e), clip.path, clip.content_hash)
    return rows


def _checked(metric: Metric, clip, item) -> ItemScore:
    s = metric.score(clip, item)
    if isinstance(s, dict):
        s = ItemScore(values=s)
    unknown = set(s.values) - {o.name for o in metric.info.outputs}
    if unknown:
        raise RuntimeError(f"metric {metric.info.name} returned undeclared outputs {sorted(unknown)}")
    return s


# ----------------------------------------------------------------------------------------------- set level


def set_level_rows(metric: Metric, frame: pd.DataFrame, feature_cache: Cache, items: dict[str, SuiteItem],
                   generator: str) -> list[SummaryRow]:
    """Compute a set-level metric per category and over all items, from cached features."""
    info = metric.info
    mine = frame[(frame["generator"] == generator) & (frame["metric"] == info.name + FEATURES_SUFFIX)]
    ok = mine[mine["error"].isna()]
    excluded_by_cat = mine[mine["error"].notna()].groupby("category").size().to_dict()
    feats, its, cats = [], [], []
    for _, r in ok.iterrows():
        key = json.loads(r["details"])["feature_key"]
        f = feature_cache.get(key)
        if f is None:
            excluded_by_cat[r["category"]] = excluded_by_cat.get(r["category"], 0) + 1
            continue
        feats.append(f)
        its.append(items[r["item_id"]])
        cats.append(r["category"])
    groups = metric.set_groups(cats)
    out: list[SummaryRow] = []
    for group, idx in groups.items():
        excluded = sum(excluded_by_cat.values()) if group == "all" else excluded_by_cat.get(group, 0)
        try:
            values = metric.compute([feats[i] for i in idx], [its[i] for i in idx]) if idx else {}
            note = str(getattr(values, "note", "") or "")  # a compute() may attach a note and CIs to its values
        except Exception as e:
            values, note = {}, f"{type(e).__name__}: {e}"
        cis = getattr(values, "ci", None) or {}
        if group == "all" and metric.all_is_category_mean:
            per_cat = [r for r in out if r.category != "all"]
            values = {o.name: float(np.nanmean([r.mean for r in per_cat if r.metric == o.name and r.mean is not None]))
                      if per_cat else math.nan for o in info.outputs}
        for o in info.outputs:
            v = values.get(o.name, math.nan)
            lo, hi = cis.get(o.name, (math.nan, math.nan))
            out.append(SummaryRow(metric=o.name, family=info.name, generator=generator, category=group,
                                  mean=v if math.isfinite(v) else None, ci_low=lo if math.isfinite(lo) else None,
                                  ci_high=hi if math.isfinite(hi) else None, n=len(idx),
                                  excluded=excluded, direction=o.direction, unit=o.unit, aggregation=info.aggregation,
                                  note=note if math.isfinite(v) else "; ".join(x for x in (note, "no value") if x)))
    return out


def summary_rows(frame: pd.DataFrame, classes: dict, n_boot: int) -> list[SummaryRow]:
    """Per-item metrics: for every output × generator, one row per category and one for ``all``."""
    out: list[SummaryRow] = []
    per_item = frame[~frame["metric"].astype(str).str.endswith(FEATURES_SUFFIX)]
    for (gen, family, metric), grp in per_item.groupby(["generator", "family", "metric"], sort=True):
        cls = classes.get(family)
        if cls is None:
            continue
        o = cls.info.output(metric)
        rule = cls.info.aggregation
        num = den = None
        if rule == CORPUS:
            grp = grp.copy()
            det = grp["details"].map(lambda d: json.loads(d) if d else {})
            num, den = f"{metric}_num", f"{metric}_den"
            grp[num] = det.map(lambda d: d.get(num, math.nan)).astype(float)
            grp[den] = det.map(lambda d: d.get(den, math.nan)).astype(float)
        for cat, sub in [*grp.groupby("category", sort=False), ("all", grp)]:
            sub_rule = rule if cat == "all" else (CORPUS if rule == CORPUS else "pooled_mean")
            s = stats.summarize(sub, sub_rule, n_boot=n_boot, numerator=num, denominator=den)
            out.append(SummaryRow(metric=metric, family=family, generator=gen, category=str(cat),
                                  mean=s.mean if math.isfinite(s.mean) else None,
                                  ci_low=s.ci_low if math.isfinite(s.ci_low) else None,
                                  ci_high=s.ci_high if math.isfinite(s.ci_high) else None,
                                  n=s.n, excluded=s.excluded, direction=o.direction, unit=o.unit, aggregation=rule))
    return out


# ----------------------------------------------------------------------------------------------- run


@dataclass
class RunOutcome:
    run_dir: Path
    log: RunLog
    items: pd.DataFrame


def _packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["mova-eval", "numpy", "scipy", "av", "torch", "hydra-core", "pandas", "pyarrow", "pyloudnorm", "soxr",
             "faster-whisper", "ctranslate2", "jiwer", "onnxruntime", "speechmos", "librosa", "transformers",
             "opencv-python-headless", "resemblyzer", "silero-vad"]
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


def _git_revision() -> str | None:
    import subprocess

    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def run(cfg: dict) -> RunOutcome:
    """Execute a composed config (a plain dict, see conf/config.yaml)."""
    from mova_eval.suites import load_suite, summarize

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    rt = cfg.get("runtime", {})
    progress = bool(rt.get("progress", True))
    if rt.get("cache_dir"):
        import os

        os.environ["MOVA_EVAL_CACHE"] = str(Path(rt["cache_dir"]).expanduser())
    device = resolve_device(str(rt.get("device", "auto")))
    chash = config_hash(cfg)
    run_id = cfg.get("run_id") or time.strftime("%Y%m%d-%H%M%S") + f"-{chash[:6]}"
    run_dir = Path(cfg.get("output_dir", "runs")).expanduser() / str(run_id)
    resuming = (run_dir / "run.json").is_file()
    if resuming:
        prev = read_run_json(run_dir)
        if prev.config_hash != chash:
            raise ConfigError(f"run {run_id!r} in {run_dir} was made with a different configuration "
                              f"(hash {prev.config_hash} vs {chash}); choose a new run_id to start a new run")

    t0 = time.perf_counter()
    suite = load_suite(cfg["suite"])
    gcfg = dict(cfg["generator"])
    gen_cls = get_generator_class(gcfg["name"])
    generator = gen_cls(gcfg, device=device)
    generator.bind_suite(suite)
    timings["plan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = select_metrics(references.with_suite_references(cfg.get("metrics", {}), suite), device)
    timings["load_metrics"] = time.perf_counter() - t0
    if not plan.metrics and not plan.failed_requested:
        raise ConfigError("no metric can run with this configuration; `mova-eval ls` shows what each one needs")
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the configuration is known to be usable

    gen_name = gcfg["name"]
    log = RunLog(run_id=str(run_id), created=now(), config=cfg, config_hash=chash,
                 suite={"name": suite.name, "version": suite.version, "source": suite.source, **summarize(suite)},
                 generator={"name": gen_name, **{k: v for k, v in gcfg.items() if k != "name"}},
                 metrics=plan.statuses, packages=_packages(), git_revision=_git_revision(),
                 python=sys.version.split()[0], platform=platform.platform(), device=device)
    if resuming:
        log.created = read_run_json(run_dir).created
    write_run_json(run_dir, log)

    item_log = ItemLog(run_dir)
    done_rows = item_log.load()
    retry = bool(rt.get("retry_errors", False))
    if retry:
        failed = {(r["item_id"], r["seed"], r["family"]) for r in done_rows if r.get("error")}
        done_rows = [r for r in done_rows if (r["item_id"], r["seed"], r["family"]) not in failed]
    done = {(r["item_id"], int(r["seed"])) for r in done_rows}
    requests = [r for r in plan_requests(suite, cfg.get("seeds") or [0], gcfg) if (r.item.id, r.seed) not in done]

    t0 = time.perf_counter()
    generator.load()
    gen_results = generate(generator, requests, cache_enabled=bool(rt.get("cache", True)), progress=progress)
    generator.close()
    timings["generate"] = time.perf_counter() - t0
    log.generation = {rid: ({"path": r.path, **r.provenance} if r.ok else {"error": r.error})
                      for rid, r in gen_results.items()}

    ctx = ScoreContext(run_id=str(run_id), suite=suite.name, generator=gen_name, metrics=plan.metrics,
                       failed_requested=plan.failed_requested, all_classes=metric_classes(),
                       score_cache=Cache("scores", enabled=bool(rt.get("cache", True))),
                       feature_cache=Cache("features", enabled=True),
                       tokens={m.info.name: m.cache_token() for m in plan.metrics})
    t0 = time.perf_counter()
    rows = list(done_rows)
    workers = max(1, int(rt.get("workers", 1)))
    with tqdm(total=len(requests), desc="score", unit="clip", disable=not progress or not requests) as bar:
        def work(req):
            return score_request(ctx, req, gen_results[req.request_id])

        if workers == 1:
            results_iter = map(work, requests)
        else:
            pool = ThreadPoolExecutor(workers)
            results_iter = pool.map(work, requests)
        for item_rows in results_iter:
            item_log.append(item_rows)
            rows.extend(item_rows)
            bar.update(1)
        if workers > 1:
            pool.shutdown()
    timings["score"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    frame = rows_to_frame(rows)
    classes = metric_classes()
    summary = summary_rows(frame, classes, int(rt.get("bootstrap", 1000)))
    items_by_id = {it.id: it for it in suite.items}
    for m in plan.metrics:
        if m.is_set_level:
            summary += set_level_rows(m, frame, ctx.feature_cache, items_by_id, gen_name)
    timings["aggregate"] = time.perf_counter() - t0

    frame = item_log.finalize(rows)
    errors = int(frame["error"].notna().sum())
    log.summary = summary
    log.timings = {k: round(v, 3) for k, v in {**timings, "total": time.perf_counter() - t_start}.items()}
    log.counts = {"items": len(suite), "requests": len(suite) * len(cfg.get("seeds") or [0]),
                  "clips_failed": sum(1 for r in gen_results.values() if not r.ok), "rows": len(frame),
                  "errors": errors, "resumed_rows": len(done_rows)}
    log.status = "complete"
    log.finished = now()
    fail_on = rt.get("fail_on_error")
    if fail_on is not None and len(frame) and errors / len(frame) > float(fail_on):
        log.status = "failed"
    write_run_json(run_dir, log)
    return RunOutcome(run_dir, log, frame)

