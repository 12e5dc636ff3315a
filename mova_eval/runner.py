"""One run, as five stages that each take and return typed values (a test can call any of them alone):

``plan(cfg) -> RunPlan`` (suite, generator, metrics, requests still to do, run directory, what a previous attempt
left) → ``generate_stage(plan) -> dict[request id, GenResult]`` (cached clips) → ``score(plan, results) ->
ScoredRows`` (decode once, and not at all when every metric's score/features for the clip's bytes are cached; per-item :class:`ItemRow` values and set-level :class:`FeatureRow` records, appended to
the item log as each item finishes) → ``aggregate(plan, rows) -> list[SummaryRow]`` (bootstrap CIs; set-level
metrics computed from the cached features) → ``finalise(...) -> RunOutcome`` (items.parquet, features.parquet,
run.json). ``run()`` only sequences them.

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
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from mova_eval import engines, media, references, stats
from mova_eval.cache import Cache, atomic_write_text, make_key
from mova_eval.context import RunContext
from mova_eval.errors import (
    ConfigError,
    MediaError,
    MetricUnavailable,
    MissingDependencyError,
    MovaEvalError,
    RegistryKeyError,
    StorageError,
    WeightsMissingError,
    storage_error,
)
from mova_eval.metrics.base import CORPUS, ItemScore, Metric, SetLevelMetric, SetResult
from mova_eval.registry import get_generator_class, get_metric_class, metric_classes, use_plugins
from mova_eval.results import (
    FeatureRow,
    ItemLog,
    ItemRow,
    MetricStatus,
    RuleFailure,
    RunLock,
    RunLog,
    ScoredRows,
    SummaryRow,
    features_frame,
    items_frame,
    nan_to_null,
    now,
    read_run_json,
    write_run_json,
)
from mova_eval.run_checks import check_run
from mova_eval.spec import Clip, DecodeInfo, GenRequest, GenResult, Suite, SuiteItem
from mova_eval.summary import records_for_run, write_summary

if TYPE_CHECKING:
    from mova_eval.generators.base import Generator

#: bump when the pickled per-item score layout changes (ItemScore gained ``counts`` in schema 2)
SCORE_CACHE_LAYOUT = 2


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


def config_hash(cfg: dict[str, Any]) -> str:
    """Hash of what determines results (runtime knobs such as workers or progress bars excluded)."""
    relevant = {k: v for k, v in cfg.items() if k not in ("runtime", "run_id", "output_dir")}
    if relevant.get("media") == {"audio_track": None}:
        del relevant["media"]  # the default decode: runs made before the media group existed keep their hash
    if not relevant.get("plugins", True):
        del relevant["plugins"]  # no plug-ins: runs made before the plugins key existed keep their hash
    return make_key(relevant)[:12]


@dataclass
class MetricPlan:
    metrics: list[Metric]                 # loaded, ready to run
    statuses: list[MetricStatus]          # every metric considered, with why it runs or not
    failed_requested: dict[str, str] = field(default_factory=dict)  # explicitly asked for but cannot run → reason
    #: the instances (with their options) of the metrics in ``failed_requested``: their error rows are named after
    #: the outputs these options ask for (``ib_score_x100`` with ``scale: 100``), not the class's defaults
    failed_metrics: dict[str, Metric] = field(default_factory=dict)


_WITH_COMMAND = (MissingDependencyError, MetricUnavailable, WeightsMissingError)  # errors that carry the fix


def select_metrics(mcfg: dict[str, Any], context: RunContext) -> MetricPlan:
    """Instantiate the requested metrics on ``context.device``, finding their weights through ``context``. With ``only`` unset, every metric that can run here; a metric the user
    named explicitly but which cannot run records NaN with its reason on every item it applies to."""
    only = _names(mcfg.get("only"), "metrics.only")
    exclude = set(_names(mcfg.get("exclude"), "metrics.exclude") or [])
    options = mcfg.get("options") or {}
    unknown = [n for n in [*(only or []), *exclude] if n not in metric_classes()]
    if unknown:
        raise RegistryKeyError("metric", unknown[0], list(metric_classes()))
    unknown_opts = [k for k in options if k not in metric_classes()]
    if unknown_opts:
        raise ConfigError(f"metrics.options names unknown metric(s) {unknown_opts}; known: {list(metric_classes())}")
    names = list(only) if only else [n for n in metric_classes() if n not in exclude]
    plan = MetricPlan([], [])
    for name in names:
        cls = get_metric_class(name)
        metric = cls(options.get(name, {}), device=context.device, context=context)
        av = metric.available()  # the configured instance: its options can change what it needs
        status = MetricStatus(name=name, version=cls.info.version, available=av.ok, reason=av.reason,
                              command=av.command, aggregation=cls.info.aggregation, options=dict(metric.options),
                              reference=cls.info.reference)
        bad_weights = _unverified_weights(cls.info.weights, context) if av.ok else None
        if bad_weights:
            status.available, status.reason = False, bad_weights
            status.command = "mova-eval weights verify"
        elif av.ok:
            try:
                metric.load()
                plan.metrics.append(metric)
            except (MovaEvalError, ImportError) as e:
                status.available, status.reason = False, str(e)
                status.command = e.command if isinstance(e, _WITH_COMMAND) else None
            except Exception as e:  # a corrupt or wrong-shape checkpoint: this metric cannot run, the others go on
                status.available = False
                status.reason = f"loading failed ({type(e).__name__}: {e}); is a weights file damaged or of " \
                                f"another model?"
                status.command = "mova-eval weights verify"
        if not status.available and only:
            plan.failed_requested[name] = status.reason + (f" — fix: {status.command}" if status.command else "")
            plan.failed_metrics[name] = metric
        if status.available:
            from mova_eval import weights

            status.weights = {w: weights.fingerprint(w, context) for w in cls.info.weights}
            status.non_commercial_weights = {w: weights.get(w).license for w in cls.info.weights
                                             if weights.get(w).non_commercial}
        plan.statuses.append(status)
    return plan


def _unverified_weights(names: Iterable[str], context: RunContext) -> str | None:
    """Why a metric's checkpoints cannot be trusted (a file whose sha256 differs from the pinned or first-fetch
    hash, or whose md5 differs from the publisher's), or None. Checked before loading, so a swapped or damaged file never produces numbers."""
    from mova_eval import weights

    for w in names:
        problem = weights.trust_problem(w, context)
        if problem is not None:
            return problem
    return None


def _names(value: Any, key: str) -> list[str] | None:
    """A list of metric names from ``metrics.only``/``exclude``: a list, or one name or ``a,b`` as a string
    (``metrics.only=loudness`` without brackets; iterating the string would ask for metrics 'l', 'o'…)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
        return list(value)
    raise ConfigError(f"{key} must be a metric name or a list of names (e.g. {key}=[loudness,wer]), got {value!r}")


def plan_requests(suite: Suite, seeds: Iterable[int] | Mapping[str, Sequence[int]],
                  gen_cfg: dict[str, Any]) -> list[GenRequest]:
    """One request per item and seed: ``seeds`` is one list for every item, or (``seeds=all``, see
    :func:`resolve_samples`) each item's own list, keyed by item id."""
    per_item: Mapping[str, Sequence[int]] | None = seeds if isinstance(seeds, Mapping) else None
    fixed: list[int] = [] if isinstance(seeds, Mapping) else list(seeds)
    reqs = []
    for item in suite.items:
        for seed in (per_item[item.id] if per_item is not None else fixed):
            reqs.append(GenRequest(
                request_id=f"{item.id}#s{seed}", item=item, seed=int(seed),
                duration_s=gen_cfg.get("duration"), fps=gen_cfg.get("fps"), width=gen_cfg.get("width"),
                height=gen_cfg.get("height"), first_frame=item.first_frame,
            ))
    return reqs


# ----------------------------------------------------------------------------------------------- generate


def generate(generator: Generator, requests: list[GenRequest], *, cache_enabled: bool, progress: bool,
             context: RunContext) -> dict[str, GenResult]:
    """Run the generator over requests in batches; clips made by a generator are cached under ``context``'s cache
    root by what determines them (generator identity, item, seed, size), so an unchanged request is never
    generated twice."""
    return {res.request_id: res
            for res in iter_generate(generator, requests, cache_enabled=cache_enabled, progress=progress,
                                       context=context)}


def iter_generate(generator: Generator, requests: list[GenRequest], *, cache_enabled: bool,
                  progress: bool, context: RunContext) -> Iterator[GenResult]:
    """:func:`generate` as a stream: each result is yielded as soon as it exists (clips found in the clip cache
    first, then each generated batch as it ends), so a consumer can score a clip while the next is being made."""
    clip_cache = Cache("clips", enabled=cache_enabled, context=context)
    todo: list[GenRequest] = []
    if generator.capabilities.makes_clips:
        ident = generator.identity()
        for r in requests:
            key = make_key("clip", ident, r.item.fingerprint(), r.seed, r.duration_s, r.fps, r.width, r.height)
            clip_file = clip_cache.path(key, suffix=str(generator.config.get("container", ".mp4")))
            cached = _trusted_cached_clip(clip_file) if cache_enabled else None
            if cached is not None:
                yield GenResult(r.request_id, str(clip_file), None, {**cached, "cached": True})
            else:
                try:
                    clip_file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise storage_error(clip_file, e) from e
                todo.append(GenRequest(**{**r.__dict__, "out_path": str(clip_file)}))
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
                if res.ok and req.out_path and Path(req.out_path).is_file():
                    _write_clip_sidecar(Path(req.out_path), res.provenance)
            bar.update(len(chunk))
            yield from out


def _write_clip_sidecar(clip: Path, provenance: dict[str, Any]) -> None:
    """The cached clip's provenance plus the sha256 of its bytes, written atomically beside it."""
    from mova_eval.weights import sha256_of

    record = {**provenance, "clip_sha256": sha256_of(clip)}
    atomic_write_text(clip.with_suffix(".json"), json.dumps(record, default=str))


def _trusted_cached_clip(clip: Path) -> dict[str, Any] | None:
    """The provenance of a cached clip whose bytes still match the sha256 its sidecar recorded, else None.

    A truncated or overwritten clip, a torn or unreadable sidecar, and a sidecar from before clips carried their
    hash are all misses: the entry is removed and the clip made again, so one bad entry cannot poison later runs.
    """
    from mova_eval.weights import sha256_of

    sidecar = clip.with_suffix(".json")
    if not clip.is_file() or not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        ok = isinstance(record, dict) and record.get("clip_sha256") == sha256_of(clip)
    except (OSError, ValueError):
        ok = False
    if not ok:
        clip.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None
    return {k: v for k, v in record.items() if k != "clip_sha256"}


# ----------------------------------------------------------------------------------------------- score


@dataclass
class ScoreContext:
    """What scoring one request needs besides the request and its clip."""

    run_id: str
    suite: str
    generator: str
    model: str
    metrics: list[Metric]
    failed_requested: dict[str, str]
    failed_metrics: dict[str, Metric]
    score_cache: Cache
    feature_cache: Cache
    tokens: dict[str, str]
    context: RunContext               # the run's cache root (the decode cache lives there too) and weights folders
    audio_track: int | None = None    # media.audio_track: None = media.decode's rule
    #: how each scored clip was decoded (request id -> DecodeInfo), for run.json ``decode`` and ``warnings``
    decodes: dict[str, DecodeInfo] = field(default_factory=dict)


def _item_row(ctx: ScoreContext, req: GenRequest, family: str, metric: str, value: float, error: str | None, *,
              details: dict[str, Any] | None = None, numerator: float | None = None, denominator: float | None = None,
              clip_path: str | None = None, clip_hash: str | None = None) -> ItemRow:
    it = req.item
    return ItemRow(run_id=ctx.run_id, suite=ctx.suite, item_id=it.id, category=it.category, language=it.language,
                   generator=ctx.generator, model=ctx.model, seed=req.seed, family=family, metric=metric,
                   value=float(value), error=error, details=details or None, numerator=numerator,
                   denominator=denominator, clip_path=clip_path, clip_hash=clip_hash)


def _feature_row(ctx: ScoreContext, req: GenRequest, extractor: str, cache_key: str | None, error: str | None,
                 clip_path: str | None = None, clip_hash: str | None = None) -> FeatureRow:
    it = req.item
    return FeatureRow(run_id=ctx.run_id, suite=ctx.suite, item_id=it.id, category=it.category, language=it.language,
                      generator=ctx.generator, model=ctx.model, seed=req.seed, extractor=extractor,
                      cache_key=cache_key, error=error, clip_path=clip_path, clip_hash=clip_hash)


def _error_rows(ctx: ScoreContext, req: GenRequest, metric: Metric | type[Metric], error: str,
                clip_path: str | None = None, clip_hash: str | None = None) -> ScoredRows:
    """The record of a metric that could not run on this request: a feature record for a set-level metric (the
    item is excluded from its sets), NaN + reason for every output of a per-item metric. Given the instance, the
    rows carry the outputs it reports (an option can rename them: ``clap_mova`` ``decode: corrected`` →
    ``clap_mova_corrected``, ``ib_score`` ``scale: 100`` → ``ib_score_x100``); a class (a metric that could not be
    built) gives its declared outputs."""
    info = metric.info
    if isinstance(metric, SetLevelMetric) or (isinstance(metric, type) and issubclass(metric, SetLevelMetric)):
        return ScoredRows(features=[_feature_row(ctx, req, info.name, None, error, clip_path, clip_hash)])
    outputs = metric.requested_outputs() if isinstance(metric, Metric) else info.outputs
    return ScoredRows(items=[_item_row(ctx, req, info.name, o.name, math.nan, error, clip_path=clip_path,
                                       clip_hash=clip_hash) for o in outputs])


def _format_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def score_request(ctx: ScoreContext, req: GenRequest, res: GenResult) -> ScoredRows:
    """All metrics on one clip: decode once (never when all are cached), share the Clip, record NaN + reason on
    every failure."""
    item = req.item
    rows = ScoredRows()
    for name, reason in ctx.failed_requested.items():
        failed = ctx.failed_metrics[name]
        if failed.applies(item):
            rows.extend(_error_rows(ctx, req, failed, f"MetricUnavailable: {reason}"))
    active = [m for m in ctx.metrics if m.applies(item)]
    if not active:
        return rows
    if not res.ok or res.path is None:
        for m in active:
            rows.extend(_error_rows(ctx, req, m, f"GenerationError: {res.error}"))
        return rows
    # Decode only the streams the active metrics need: an audio-only metric set (DNSMOS, WER, IS…) never pays for
    # decoding every frame to RGB.
    want_video = any("video" in m.info.needs for m in active)
    want_audio = any("audio" in m.info.needs for m in active)
    if not (want_video or want_audio):
        want_video = want_audio = True
    cached = _rows_from_cache(ctx, req, res, active, want_video, want_audio)
    if cached is not None:  # every active metric already has its score/features for these bytes: no decode
        rows.extend(cached)
        return rows
    try:
        clip = media.decode(res.path, video=want_video, audio=want_audio, audio_track=ctx.audio_track)
    except MediaError as e:
        for m in active:
            rows.extend(_error_rows(ctx, req, m, _format_error(e), res.path))
        return rows
    ctx.decodes[req.request_id] = clip.decode
    try:  # what a later cache-first re-run needs to rebuild the keys without decoding (best effort)
        Cache("decode", context=ctx.context).put(_decode_key(clip.content_hash, want_video, want_audio,
                                                             ctx.audio_track), clip.decode)
    except StorageError:
        pass
    # the track and orientation decode chose decide the content as much as the bytes do (empty for plain files)
    decode_token = [clip.decode.cache_token()] if clip.decode.cache_token() else []
    for m in active:
        info = m.info
        missing = [k for k in ("video", "audio") if k in info.needs and not getattr(clip, f"has_{k}")]
        if missing:
            rows.extend(_error_rows(ctx, req, m, f"MissingStreamError: {clip.path}: has no {missing[0]} stream",
                                    clip.path, clip.content_hash))
            continue
        try:
            key = _cache_key(ctx, m, clip.content_hash, decode_token, item)
            if isinstance(m, SetLevelMetric):
                ctx.feature_cache.get_or_compute(key, partial(_features_of, m, clip, item), expect=np.ndarray)
                rows.features.append(_feature_row(ctx, req, info.name, key, None, clip.path, clip.content_hash))
            else:
                s: ItemScore = ctx.score_cache.get_or_compute(key, partial(_checked, m, clip, item), expect=ItemScore)
                rows.items.extend(_score_rows(ctx, req, m, s, clip.path, clip.content_hash))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one metric failing on one clip must not stop the run
            rows.extend(_error_rows(ctx, req, m, _format_error(e), clip.path, clip.content_hash))
    return rows


def _cache_key(ctx: ScoreContext, m: Metric, content_hash: str, decode_token: list[str], item: SuiteItem) -> str:
    """The feature-cache key (set-level metric) or score-cache key (per-item metric) of ``m`` on these bytes, as
    decoded (``decode_token``: the track/orientation token, empty for plain files)."""
    token = ctx.tokens[m.info.name]
    if isinstance(m, SetLevelMetric):
        return make_key("features", content_hash, *decode_token, m.info.name, token)
    return make_key("score", SCORE_CACHE_LAYOUT, content_hash, *decode_token, m.info.name, token, item.fingerprint())


def _decode_key(content_hash: str, video: bool, audio: bool, audio_track: int | None) -> str:
    """Key of the :class:`DecodeInfo` that ``media.decode`` gave for these bytes and arguments."""
    return make_key("decode-info", 1, content_hash, video, audio, audio_track)


def _score_rows(ctx: ScoreContext, req: GenRequest, m: Metric, s: ItemScore, clip_path: str,
                clip_hash: str) -> list[ItemRow]:
    """One row per requested output of a per-item metric's cached or fresh :class:`ItemScore`."""
    out_rows = []
    for out in m.requested_outputs():
        v = s.values.get(out.name, math.nan)
        err = s.errors.get(out.name)
        if not math.isfinite(v) and err is None:
            err = "no value (metric gave no reason)"
        ratio = s.counts.get(out.name)
        out_rows.append(_item_row(
            ctx, req, m.info.name, out.name, v, err, details=s.details,
            numerator=None if ratio is None else float(ratio.numerator),
            denominator=None if ratio is None else float(ratio.denominator),
            clip_path=clip_path, clip_hash=clip_hash))
    return out_rows


def _rows_from_cache(ctx: ScoreContext, req: GenRequest, res: GenResult, active: list[Metric], want_video: bool,
                     want_audio: bool) -> ScoredRows | None:
    """The rows of every active metric read from the caches alone, or None as soon as one is missing (then the
    clip is decoded and scored as usual). Keys depend only on the file's bytes (sha256), so a fully cached re-run
    hashes each clip but decodes none; the decode's choices (track, orientation: part of the keys, and recorded
    in run.json) come from the DecodeInfo cached when the clip was last decoded with the same arguments. Nothing that failed is ever cached, so a hit implies the clip decoded and
    had the streams the metric needs; an unreadable file is left to the decode path to report."""
    if not ctx.score_cache.enabled and any(not isinstance(m, SetLevelMetric) for m in active):
        return None
    if res.path is None:
        return None
    try:
        content_hash = media.file_sha256(res.path)
    except OSError:
        return None
    decode = Cache("decode", context=ctx.context).get(
        _decode_key(content_hash, want_video, want_audio, ctx.audio_track), expect=DecodeInfo)
    if decode is None:
        return None
    decode_token = [decode.cache_token()] if decode.cache_token() else []
    path = str(Path(res.path))  # as media.decode records it
    rows = ScoredRows()
    for m in active:
        key = _cache_key(ctx, m, content_hash, decode_token, req.item)
        if isinstance(m, SetLevelMetric):
            if ctx.feature_cache.get(key, expect=np.ndarray) is None:  # also drops a torn entry, to be recomputed
                return None
            rows.features.append(_feature_row(ctx, req, m.info.name, key, None, path, content_hash))
        else:
            s = ctx.score_cache.get(key, expect=ItemScore)
            if s is None:
                return None
            rows.items.extend(_score_rows(ctx, req, m, s, path, content_hash))
    ctx.decodes[req.request_id] = decode  # the run log records the same decode as a decoding run would
    return rows


def _features_of(metric: SetLevelMetric, clip: Clip, item: SuiteItem) -> np.ndarray:
    return np.asarray(metric.features(clip, item))


def _checked(metric: Metric, clip: Clip, item: SuiteItem) -> ItemScore:
    s = metric.score(clip, item)
    if not isinstance(s, ItemScore):
        raise TypeError(f"metric {metric.info.name}.score() returned {type(s).__name__}, not an ItemScore")
    unknown = set(s.values) - {o.name for o in metric.info.outputs}
    if unknown:
        raise RuntimeError(f"metric {metric.info.name} returned undeclared outputs {sorted(unknown)}")
    if metric.info.aggregation == CORPUS:
        lacking = [o for o, v in s.values.items() if math.isfinite(v) and o not in s.counts]
        if lacking:
            raise RuntimeError(f"corpus metric {metric.info.name} gave values without counts for {lacking}")
    return s


# ----------------------------------------------------------------------------------------------- set level


def set_level_rows(metric: SetLevelMetric, features: list[FeatureRow], feature_cache: Cache,
                   items: dict[str, SuiteItem], generator: str) -> list[SummaryRow]:
    """Compute a set-level metric per category and over all items, from the cached features its records name."""
    info = metric.info
    # sorted, so that the sets (and any bootstrap over them) do not depend on worker order or on resume
    mine = sorted((r for r in features if r.generator == generator and r.extractor == info.name),
                  key=lambda r: (r.item_id, r.seed))
    excluded_by_cat: dict[str, int] = {}
    feats, its, cats = [], [], []
    for r in mine:
        f = feature_cache.get(r.cache_key, expect=np.ndarray) if r.error is None and r.cache_key else None
        if f is None:
            excluded_by_cat[r.category] = excluded_by_cat.get(r.category, 0) + 1
            continue
        feats.append(f)
        its.append(items[r.item_id])
        cats.append(r.category)
    groups = metric.set_groups(cats)
    out: list[SummaryRow] = []
    for group, idx in groups.items():
        excluded = sum(excluded_by_cat.values()) if group == "all" else excluded_by_cat.get(group, 0)
        result = SetResult({})
        if idx:
            try:
                result = metric.compute([feats[i] for i in idx], [its[i] for i in idx])
                if not isinstance(result, SetResult):
                    raise TypeError(f"{info.name}.compute() returned {type(result).__name__}, not a SetResult")
            except Exception as e:
                result = SetResult({}, note=_format_error(e))
        values, note = dict(result.values), result.note
        if group == "all" and metric.all_is_category_mean:
            per_cat = [r for r in out if r.category != "all"]
            values = {o.name: float(np.nanmean([r.mean for r in per_cat if r.metric == o.name and r.mean is not None]))
                      if per_cat else math.nan for o in info.outputs}
        for o in info.outputs:
            v = values.get(o.name, math.nan)
            lo, hi = result.ci.get(o.name, (math.nan, math.nan))
            out.append(SummaryRow(metric=o.name, family=info.name, generator=generator, category=group,
                                  mean=v if math.isfinite(v) else None, ci_low=lo if math.isfinite(lo) else None,
                                  ci_high=hi if math.isfinite(hi) else None, n=len(idx),
                                  excluded=excluded, direction=o.direction, unit=o.unit, aggregation=info.aggregation,
                                  note=note if math.isfinite(v) else "; ".join(x for x in (note, "no value") if x)))
    return out


def summary_rows(items: list[ItemRow], classes: dict[str, Any], n_boot: int) -> list[SummaryRow]:
    """Per-item metrics: for every output × generator, one row per category and one for ``all``."""
    out: list[SummaryRow] = []
    frame = items_frame(items)
    for (gen, family, metric), grp in frame.groupby(["generator", "family", "metric"], sort=True):
        cls = classes.get(family)
        if cls is None:
            continue
        o = cls.info.output(metric)
        rule = cls.info.aggregation
        num, den = ("numerator", "denominator") if rule == CORPUS else (None, None)
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
    features: pd.DataFrame = field(default_factory=lambda: features_frame([]))


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


def model_label(gen_cfg: dict[str, Any]) -> str:
    """The label results carry for the model: ``generator.label`` when set, else the generator's own default
    (directory: the clip folder's name), else its registry name."""
    if gen_cfg.get("label"):
        return str(gen_cfg["label"])
    default = get_generator_class(gen_cfg["name"]).default_label(gen_cfg)
    return str(default[0] if default else gen_cfg["name"])


@dataclass
class RunSettings:
    """The runtime knobs of one run (``runtime.*``), typed."""

    cache: bool = True
    workers: int = 1
    progress: bool = True
    retry_errors: bool = False
    bootstrap: int = 1000
    fail_on_error: float | None = None
    allow_unavailable: bool = False
    engine: str = "local"

    @classmethod
    def from_config(cls, rt: dict[str, Any]) -> "RunSettings":
        """The typed settings, or a ConfigError naming ``runtime.<key>`` and what it accepts (before anything runs,
        so a bad value never fails a run only at its end)."""
        fail_on = rt.get("fail_on_error")
        return cls(cache=_setting_bool(rt, "cache", True), workers=_setting_int(rt, "workers", 1, minimum=1),
                   progress=_setting_bool(rt, "progress", True),
                   retry_errors=_setting_bool(rt, "retry_errors", False),
                   bootstrap=_setting_int(rt, "bootstrap", 1000, minimum=0),
                   fail_on_error=None if fail_on is None else _setting_fraction(rt, "fail_on_error"),
                   allow_unavailable=_setting_bool(rt, "allow_unavailable", False),
                   engine=engines.check_engine(rt))


def _setting_bool(rt: dict[str, Any], key: str, default: bool) -> bool:
    v = rt.get(key, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
        return v.lower() in ("true", "yes", "1")
    raise ConfigError(f"runtime.{key}={v!r} is not a boolean; use runtime.{key}=true or runtime.{key}=false")


def _setting_int(rt: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    v = rt.get(key, default)
    try:
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"runtime.{key}={v!r} is not a whole number (e.g. runtime.{key}={default})") from None
    if n < minimum:
        raise ConfigError(f"runtime.{key}={n} must be at least {minimum}")
    return n


def _setting_fraction(rt: dict[str, Any], key: str) -> float:
    v = rt.get(key)
    try:
        if isinstance(v, bool) or v is None:
            raise ValueError
        x = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"runtime.{key}={v!r} is not a number; give a fraction of rows between 0 and 1 "
                          f"(e.g. runtime.{key}=0.1), or null for no limit") from None
    if not 0.0 <= x <= 1.0:
        raise ConfigError(f"runtime.{key}={x} is outside [0, 1]; it is a fraction of the item rows")
    return x


def media_audio_track(mcfg: Mapping[str, Any] | None) -> int | None:
    """``media.audio_track``: None (media.decode's rule) or a track index ≥ 0; anything else is a ConfigError."""
    v = (mcfg or {}).get("audio_track")
    if v is None:
        return None
    try:
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"media.audio_track={v!r} is not a track index; give media.audio_track=1 (0 is the "
                          f"first audio track) or null for the default rule") from None
    if n < 0:
        raise ConfigError(f"media.audio_track={n} must be 0 or more (0 is the first audio track)")
    return n


#: ``seeds=all``: every sample the generator can list for an item (:meth:`Generator.list_samples`)
SEEDS_ALL: Literal["all"] = "all"


def parse_seeds(value: Any) -> list[int] | Literal["all"]:
    """``seeds`` as a list of ints (a list, or one int), or :data:`SEEDS_ALL` for ``seeds=all`` (any case). Anything
    else is a ConfigError naming ``seeds``."""
    if value is None:
        return [0]
    if isinstance(value, str) and value.strip().lower() == SEEDS_ALL:
        return SEEDS_ALL
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[int] = []
    for v in items:
        try:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(int(v))
        except (TypeError, ValueError):
            raise ConfigError(f"seeds={value!r}: {v!r} is not a whole number; give seeds=[0,1,2], seeds=42 or "
                              f"seeds=all (every sample a clip folder holds)") from None
    if not out:
        raise ConfigError("seeds=[] asks for no sample per item; give at least one seed, e.g. seeds=[0]")
    if len(set(out)) != len(out):
        raise ConfigError(f"seeds={value!r} repeats a seed; each seed makes one sample per item")
    return out


def resolve_samples(generator: Generator, suite: Suite, seeds: list[int] | Literal["all"]) -> dict[str, list[int]]:
    """The seeds to request for each item (item id → seeds, in suite order). An explicit list applies to every
    item. ``seeds=all`` asks the generator which samples exist (:meth:`Generator.list_samples`; a generator that
    makes clips has no such list and refuses with a ConfigError); an item with no sample still gets one request
    (seed 0), which fails with the generator's reason, so a missing clip is counted, never silently dropped."""
    if seeds != SEEDS_ALL:
        return {it.id: list(seeds) for it in suite.items}
    listed = generator.list_samples(suite)
    return {it.id: list(listed.get(it.id) or [0]) for it in suite.items}


@dataclass
class RunPlan:
    """Everything decided before any clip is made: the plan stage's output."""

    cfg: dict[str, Any]
    settings: RunSettings
    run_id: str
    run_dir: Path
    config_hash: str
    context: RunContext           # cache root, weights folders, device, offline: passed to every stage
    suite: Suite
    generator: Generator
    gen_cfg: dict[str, Any]
    model: str
    metrics: MetricPlan
    requests: list[GenRequest]    # still to do (those a previous attempt finished are left out)
    previous: ScoredRows          # rows a previous attempt of this run finished
    log: RunLog
    item_log: ItemLog
    lock: RunLock | None = None   # held from plan() until run() ends (released by ``close()``)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    samples: dict[str, list[int]] = field(default_factory=dict)  # item id → the seeds planned (resolve_samples)

    @property
    def device(self) -> str:
        return self.context.device

    def close(self) -> None:
        """Release the run directory for other processes."""
        if self.lock is not None:
            self.lock.release()

    def score_context(self) -> ScoreContext:
        return ScoreContext(run_id=self.run_id, suite=self.suite.name, generator=self.gen_cfg["name"],
                            model=self.model, metrics=self.metrics.metrics,
                            failed_requested=self.metrics.failed_requested,
                            failed_metrics=self.metrics.failed_metrics,
                            score_cache=Cache("scores", enabled=self.settings.cache, context=self.context),
                            feature_cache=Cache("features", enabled=True, context=self.context),
                            tokens={m.info.name: m.cache_token() for m in self.metrics.metrics},
                            context=self.context, audio_track=media_audio_track(self.cfg.get("media")))


def plan(cfg: dict[str, Any]) -> RunPlan:
    """Resolve the configuration into a :class:`RunPlan`: load the suite, instantiate the generator and the
    metrics, read what a previous attempt of this run id left, and write the initial run.json. Refuses (ConfigError)
    a configuration that cannot run, or that differs from the previous attempt's, before creating the run folder."""
    from mova_eval.suites import load_suite

    started = time.perf_counter()
    timings: dict[str, float] = {}
    settings = RunSettings.from_config(cfg.get("runtime", {}))
    parse_seeds(cfg.get("seeds"))  # refuse bad seeds before anything is made
    use_plugins(cfg.get("plugins"))  # the configuration's package.module:ClassName metrics and generators
    media_audio_track(cfg.get("media"))
    rt = cfg.get("runtime", {})
    context = RunContext.from_config(rt, device=resolve_device(str(rt.get("device", "auto"))))
    chash = config_hash(cfg)
    run_id = str(cfg.get("run_id") or time.strftime("%Y%m%d-%H%M%S") + f"-{chash[:6]}")
    run_dir = Path(cfg.get("output_dir", "runs")).expanduser() / run_id
    prev_log = read_run_json(run_dir) if (run_dir / "run.json").is_file() else None
    if prev_log is not None and prev_log.config_hash != chash:
        raise ConfigError(f"run {run_id!r} in {run_dir} was made with a different configuration "
                          f"(hash {prev_log.config_hash} vs {chash}); choose a new run_id to start a new run")

    t0 = time.perf_counter()
    suite = load_suite(cfg["suite"])
    gcfg = dict(cfg["generator"])
    gen_cls = get_generator_class(gcfg["name"])
    generator = gen_cls(gcfg, device=context.device, context=context)
    generator.bind_suite(suite)
    samples = resolve_samples(generator, suite, parse_seeds(cfg.get("seeds")))  # seeds=all: the generator lists them
    timings["plan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mplan = select_metrics(references.with_suite_references(cfg.get("metrics", {}), suite), context)
    timings["load_metrics"] = time.perf_counter() - t0
    if not mplan.metrics and not mplan.failed_requested:
        raise ConfigError("no metric can run with this configuration; `mova-eval ls` shows what each one needs")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)  # only once the configuration is known to be usable
    except OSError as e:
        raise storage_error(run_dir / "run.json", e) from e
    lock = RunLock(run_dir).acquire()  # refuses, naming the holder, while another process writes this run
    try:
        return _plan_locked(cfg, settings, run_id, run_dir, chash, context, suite, generator, mplan, lock,
                            timings, started, samples)
    except BaseException:
        lock.release()
        raise


def _plan_locked(cfg: dict[str, Any], settings: RunSettings, run_id: str, run_dir: Path, chash: str,
                 context: RunContext,
                 suite: Suite, generator: Generator, mplan: MetricPlan, lock: RunLock, timings: dict[str, float],
                 started: float, samples: dict[str, list[int]]) -> RunPlan:
    """The part of :func:`plan` that reads and writes the run directory, done while holding its lock (so what a
    previous attempt left is read only once no other process can still be adding to it)."""
    from mova_eval.suites import summarize

    gcfg = dict(cfg["generator"])
    prev_log = read_run_json(run_dir) if (run_dir / "run.json").is_file() else None
    if prev_log is not None and prev_log.config_hash != chash:
        raise ConfigError(f"run {run_id!r} in {run_dir} was made with a different configuration "
                          f"(hash {prev_log.config_hash} vs {chash}); choose a new run_id to start a new run")
    log = RunLog(run_id=run_id, created=prev_log.created if prev_log else now(), config=cfg, config_hash=chash,
                 suite={"name": suite.name, "version": suite.version, "source": suite.source, **summarize(suite)},
                 generator={"name": gcfg["name"], **{k: v for k, v in gcfg.items() if k != "name"}},
                 model=model_label(gcfg), metrics=mplan.statuses, packages=_packages(), git_revision=_git_revision(),
                 python=sys.version.split()[0], platform=platform.platform(), device=context.device,
                 generation=dict(prev_log.generation) if prev_log else {},
                 decode=dict(prev_log.decode) if prev_log else {},
                 warnings=list(prev_log.warnings) if prev_log else [],
                 samples=samples if parse_seeds(cfg.get("seeds")) == SEEDS_ALL else {})
    write_run_json(run_dir, log)

    item_log = ItemLog(run_dir)
    previous = item_log.load()
    if settings.retry_errors:
        failed = {(r.item_id, r.seed, r.family) for r in previous.items if r.error}
        failed |= {(r.item_id, r.seed, r.extractor) for r in previous.features if r.error}
        previous = ScoredRows([r for r in previous.items if (r.item_id, r.seed, r.family) not in failed],
                              [r for r in previous.features if (r.item_id, r.seed, r.extractor) not in failed])
    done = previous.done_requests()
    requests = [r for r in plan_requests(suite, samples, gcfg) if (r.item.id, r.seed) not in done]
    return RunPlan(cfg=cfg, settings=settings, run_id=run_id, run_dir=run_dir, config_hash=chash, context=context,
                   suite=suite, generator=generator, gen_cfg=gcfg, model=model_label(gcfg), metrics=mplan,
                   requests=requests, previous=previous, log=log, item_log=item_log, timings=timings, started=started,
                   lock=lock, samples=samples)


def generate_stage(p: RunPlan) -> dict[str, GenResult]:
    """Load the generator, make (or fetch from the clip cache) every planned clip, close the generator."""
    t0 = time.perf_counter()
    p.generator.load()
    try:
        results = generate(p.generator, p.requests, cache_enabled=p.settings.cache, progress=p.settings.progress,
                           context=p.context)
    finally:
        p.generator.close()
    p.timings["generate"] = time.perf_counter() - t0
    return results


def score(p: RunPlan, gen_results: dict[str, GenResult]) -> ScoredRows:
    """Score every planned request (in ``runtime.workers`` threads), appending each finished item to the item log;
    returns the rows of this attempt (the previous attempt's are in ``p.previous``)."""
    ctx = p.score_context()
    t0 = time.perf_counter()
    rows = ScoredRows()

    def work(req: GenRequest) -> ScoredRows:
        return score_request(ctx, req, gen_results[req.request_id])

    with tqdm(total=len(p.requests), desc="score", unit="clip", disable=not p.settings.progress or not p.requests) as bar:
        if p.settings.workers == 1:
            for req in p.requests:
                item_rows = work(req)
                if record_decode(p, ctx, req.request_id):  # in run.json before the item enters the item log
                    write_run_json(p.run_dir, p.log)
                p.item_log.append(item_rows)
                rows.extend(item_rows)
                bar.update(1)
        else:
            with ThreadPoolExecutor(p.settings.workers) as pool:
                for req, item_rows in zip(p.requests, pool.map(work, p.requests)):
                    if record_decode(p, ctx, req.request_id):
                        write_run_json(p.run_dir, p.log)
                    p.item_log.append(item_rows)
                    rows.extend(item_rows)
                    bar.update(1)
    p.timings["score"] = time.perf_counter() - t0
    record_decodes(p, ctx)
    return rows


def record_decodes(p: RunPlan, ctx: ScoreContext) -> None:
    """Put how each scored clip was decoded, and the decode warnings, into the run log (written with run.json)."""
    p.log.decode.update({rid: nan_to_null(asdict(d)) for rid, d in sorted(ctx.decodes.items())})
    p.log.warnings = [w for d in p.log.decode.values() for w in d.get("warnings") or ()]


def record_decode(p: RunPlan, ctx: ScoreContext, request_id: str) -> bool:
    """Put one scored clip's decode (and the run's decode warnings) into the run log; True when there was one to
    record. The scoring loops write run.json with it *before* the item enters the item log, so a run killed
    later resumes (the resumed log starts from run.json's ``decode``) naming the decode of every clip it scored
    before the kill; without this the records were written only once scoring had ended."""
    d = ctx.decodes.get(request_id)
    if d is None:
        return False
    p.log.decode[request_id] = nan_to_null(asdict(d))
    p.log.warnings = [w for rec in p.log.decode.values() for w in rec.get("warnings") or ()]
    return True


def aggregate(p: RunPlan, rows: ScoredRows) -> list[SummaryRow]:
    """Summary rows with CIs for every per-item output, and every set-level metric from its cached features."""
    t0 = time.perf_counter()
    summary = aggregate_rows(rows, p.suite, p.metrics.metrics, p.gen_cfg["name"], p.settings.bootstrap, p.context)
    p.timings["aggregate"] = time.perf_counter() - t0
    return summary


def aggregate_rows(rows: ScoredRows, suite: Suite, metrics: list[Metric], generator: str,
                   n_boot: int, context: RunContext) -> list[SummaryRow]:
    """The summary of ``rows`` (per-item outputs bootstrapped; each set-level metric in ``metrics`` computed from
    the cached features its records name). Shared by :func:`aggregate` and ``mova-eval merge``, so a merged run's
    summary is computed exactly as a single run's."""
    summary = summary_rows(rows.items, metric_classes(), n_boot)
    items_by_id = {it.id: it for it in suite.items}
    feature_cache = Cache("features", enabled=True, context=context)
    for m in metrics:
        if isinstance(m, SetLevelMetric):
            summary += set_level_rows(m, rows.features, feature_cache, items_by_id, generator)
    return summary


def finalise(p: RunPlan, gen_results: dict[str, GenResult], rows: ScoredRows,
             summary: list[SummaryRow]) -> RunOutcome:
    """Write items.parquet and features.parquet (atomically, dropping the partial log) and the final run.json."""
    log = p.log
    log.generation.update({rid: ({"path": r.path, **r.provenance} if r.ok else {"error": r.error})
                           for rid, r in gen_results.items()})
    log.timings = {k: round(v, 3) for k, v in {**p.timings, "total": time.perf_counter() - p.started}.items()}
    items, feats = write_results(p.item_log, log, rows, summary, p.settings, p.metrics.failed_requested,
                                 n_items=len(p.suite), resumed_rows=len(p.previous.items) + len(p.previous.features))
    return RunOutcome(p.run_dir, log, items, feats)


def write_results(item_log: ItemLog, log: RunLog, rows: ScoredRows, summary: list[SummaryRow],
                  settings: RunSettings, failed_requested: dict[str, str], *, n_items: int,
                  resumed_rows: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables, summary.parquet and the final run.json of a finished run (``log.generation`` and ``timings``
    already filled): counts, the run's rules (:mod:`mova_eval.run_checks`) and its status. Shared by
    :func:`finalise` and ``mova-eval merge``."""
    items, feats = item_log.finalize(rows)
    errors = int(items["error"].notna().sum())
    log.summary = summary
    log.counts = {"items": n_items, "requests": planned_requests(log, n_items),
                  "clips_failed": sum(1 for g in log.generation.values() if "error" in g), "rows": len(items),
                  "feature_rows": len(feats), "errors": errors,
                  "feature_errors": int(feats["error"].notna().sum()), "resumed_rows": resumed_rows}
    records = records_for_run(log, items, feats, n_boot=settings.bootstrap)
    write_summary(item_log.run_dir, records)
    log.failures = [RuleFailure(rule=rule, detail=detail) for rule, detail in check_run(
        records=records, failed_requested=failed_requested, allow_unavailable=settings.allow_unavailable,
        fail_on_error=settings.fail_on_error, error_rows=errors, total_rows=len(items),
        requested=(log.config.get("metrics") or {}).get("only") or ())]
    log.status = "failed" if log.failures else "complete"
    log.finished = now()
    write_run_json(item_log.run_dir, log)
    return items, feats


def planned_requests(log: RunLog, n_items: int) -> int:
    """How many requests (item × seed) the run planned: each item's own samples under ``seeds=all`` (recorded in
    run.json ``samples``), else items × seeds."""
    seeds = parse_seeds(log.config.get("seeds"))
    if seeds == SEEDS_ALL:
        return sum(len(v) for v in log.samples.values())
    return n_items * len(seeds)


def run(cfg: dict[str, Any]) -> RunOutcome:
    """Execute a composed config (a plain dict, see conf/config.yaml): plan → generate + score (overlapped by the
    engine, :mod:`mova_eval.engines`) → aggregate → finalise."""
    p = plan(cfg)
    try:
        gen_results, new_rows = engines.generate_and_score(p)  # the two stages overlapped (runtime.engine)
        rows = ScoredRows(list(p.previous.items), list(p.previous.features))
        rows.extend(new_rows)
        summary = aggregate(p, rows)
        return finalise(p, gen_results, rows, summary)
    finally:
        p.close()


def record_generation(p: RunPlan, gen_results: dict[str, GenResult]) -> None:
    """Put each clip's provenance (or its generation error) into run.json as soon as generation ends, so a run
    killed while scoring still knows, when resumed, how the clips it scored earlier were made."""
    p.log.generation.update({rid: ({"path": r.path, **r.provenance} if r.ok else {"error": r.error})
                             for rid, r in gen_results.items()})
    write_run_json(p.run_dir, p.log)
