"""`mova-eval sanity`: does each metric detect what it claims? A defect battery, a paired change per metric ×
defect × strength with a bootstrap CI clustered by prompt, a verdict, and a sensitivity card per metric.

Flow: the suite's clean clips come from the configured generator through the runner's stage functions
(``plan_requests``, ``generate``: cached clips are reused); each clip is decoded once; clean scores are computed or
read from the score cache under the runner's key (``score`` + content hash + metric token + item fingerprint), so
a clip already scored by ``mova-eval run`` costs a cache read; then every defect of :mod:`mova_eval.defects` is
applied in memory and only the defected variants are scored (cached under their own derived content hash).
A defect is scored only by metrics that read the stream it changes (an audio-only metric is not re-scored under
a frozen picture: its value cannot change).

Statistics: per item (and seed), Δ = defected − clean where both are finite; the cell's value is the mean Δ with a
95 % percentile-bootstrap CI over prompts (``mova_eval.stats.summarize``, pooled mean). Items where the clean
score is NaN are excluded; items whose defected score is NaN while the clean one is finite are counted as
``failed`` (the metric gives no value under the defect) and do not enter Δ.

Verdicts, from the expectations declared per output (``mova_eval/data/sanity_expectations.json`` or a metric's
``sanity_expectations``):

- ``rises`` / ``falls``: a strength is *detected* when its CI excludes 0 on the expected side. ``detects`` if some
  strength is detected and none moves significantly the other way, ``wrong direction`` if only the other way,
  ``mixed`` if both, ``blind`` if none, ``undefined`` if the metric gave no value under the defect at all.
  ``smallest`` is the weakest detected strength. ``monotone`` is false when a stronger defect's directed change
  is significantly below a weaker one's (its CI's upper end below the weaker point estimate), per sign of the
  strength for signed defects (offsets), else true; None with fewer than two strengths.
- ``unchanged`` with tolerance T: ``invariant`` when every CI lies inside ±T, ``violated`` when some CI lies
  entirely outside, else ``inconclusive``.
- fewer than two items with values in every cell: ``too few items`` (no interval, so neither detected nor blind).
- no declaration: ``not declared`` (the change is still reported; ``moves`` says whether any CI excludes 0).
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from mova_eval import defects as D
from mova_eval import media, stats
from mova_eval.cache import Cache, atomic_write_text, make_key
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError, MovaEvalError
from mova_eval.metrics.base import ItemScore, Metric, SetLevelMetric
from mova_eval.spec import Clip, GenRequest, SuiteItem

CLEAN = "clean"
DIRECTIONS = ("rises", "falls", "unchanged")


# ----------------------------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Expectation:
    output: str
    defect: str
    expect: str                   # rises | falls | unchanged
    tolerance: float | None = None
    source: str = "packaged"      # packaged | metric


def _parse(output: str, defect: str, spec: str | Mapping[str, Any], source: str) -> Expectation:
    if isinstance(spec, str):
        spec = {"expect": spec}
    expect = spec.get("expect")
    if expect not in DIRECTIONS:
        raise ConfigError(f"sanity expectation {output}/{defect}: expect must be one of {DIRECTIONS}, got {expect!r}")
    if defect not in D.KINDS:
        raise ConfigError(f"sanity expectation {output}/{defect}: unknown defect (known: {sorted(D.KINDS)})")
    tol = spec.get("tolerance")
    if expect == "unchanged" and (tol is None or float(tol) < 0):
        raise ConfigError(f"sanity expectation {output}/{defect}: 'unchanged' needs a tolerance ≥ 0")
    return Expectation(output, defect, expect, None if tol is None else float(tol), source)


def packaged_expectations() -> dict[str, dict[str, Any]]:
    text = resources.files("mova_eval.data").joinpath("sanity_expectations.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def expectations_for(metric: Metric) -> dict[tuple[str, str], Expectation]:
    """(output, defect) → expectation; the metric's own ``sanity_expectations`` win over the packaged file."""
    out: dict[tuple[str, str], Expectation] = {}
    packaged = packaged_expectations()
    own = getattr(type(metric), "sanity_expectations", None) or {}
    for o in metric.info.outputs:
        for source, table in (("packaged", packaged), ("metric", own)):
            for defect, spec in (table.get(o.name) or {}).items():
                out[(o.name, defect)] = _parse(o.name, defect, spec, source)
    return out


# ----------------------------------------------------------------------------------------------- results


@dataclass
class Cell:
    """One metric output × defect × strength: the paired change against the clean clips."""

    output: str
    family: str
    defect: str
    strength: float | None
    label: str
    magnitude: float
    n: int                 # items with both values finite
    excluded: int          # items whose clean value is NaN
    failed: int            # items with a clean value but none under the defect
    fail_reason: str
    clean_mean: float
    defected_mean: float
    delta: float
    ci_low: float
    ci_high: float


@dataclass
class Verdict:
    output: str
    family: str
    defect: str
    expect: str | None
    tolerance: float | None
    verdict: str
    detected: list[str] = field(default_factory=list)
    smallest: str | None = None
    monotone: bool | None = None
    moves: bool = False
    source: str | None = None


@dataclass
class SanityResult:
    out_dir: Path
    cells: list[Cell]
    verdicts: list[Verdict]
    rows: pd.DataFrame
    statuses: list[dict[str, Any]]
    counts: dict[str, int]
    timings: dict[str, float]
    meta: dict[str, Any]


# ----------------------------------------------------------------------------------------------- scoring


def _score(metric: Metric, token: str, clip: Clip, item: SuiteItem, cache: Cache, counter: dict[str, int]
           ) -> ItemScore:
    from mova_eval.runner import SCORE_CACHE_LAYOUT

    # The runner's key, so a clean clip that `mova-eval run` already scored is a cache read here.
    key = make_key("score", SCORE_CACHE_LAYOUT, clip.content_hash, metric.info.name, token, item.fingerprint())
    hit: ItemScore | None = cache.get(key, expect=ItemScore) if cache.enabled else None
    if hit is not None:
        counter["cached"] += 1
        return hit
    s = metric.score(clip, item)
    if not isinstance(s, ItemScore):
        raise TypeError(f"metric {metric.info.name}.score() returned {type(s).__name__}, not an ItemScore")
    unknown = set(s.values) - {o.name for o in metric.info.outputs}
    if unknown:
        raise RuntimeError(f"metric {metric.info.name} returned undeclared outputs {sorted(unknown)}")
    cache.put(key, s)
    counter["scored"] += 1
    return s


def _rows_for(metric: Metric, token: str, clip: Clip, item: SuiteItem, seed: int, defect: str, strength: D.Strength,
             record: Mapping[str, Any] | None, cache: Cache, counter: dict[str, int]) -> list[dict[str, Any]]:
    base = {"item_id": item.id, "category": item.category, "seed": seed, "family": metric.info.name,
            "defect": defect, "strength": strength, "clip_hash": clip.content_hash,
            "record": json.dumps(record, default=str) if record else None}
    try:
        s = _score(metric, token, clip, item, cache, counter)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a failure is NaN with its reason, never a score
        return [{**base, "metric": o.name, "value": math.nan, "error": f"{type(e).__name__}: {e}"}
                for o in metric.info.outputs]
    out = []
    for o in metric.info.outputs:
        if o.name not in s.values and o.name not in s.errors:
            continue  # an output this configuration does not compute (e.g. DNSMOS P.835 unless asked)
        v = float(s.values.get(o.name, math.nan))
        err = s.errors.get(o.name) or (None if math.isfinite(v) else "no value (metric gave no reason)")
        out.append({**base, "metric": o.name, "value": v, "error": err})
    return out


def _reads(metric: Metric, stream: str) -> bool:
    return stream in metric.info.needs


def run_sanity(cfg: Mapping[str, Any], out_dir: str | Path, *, kinds: Sequence[str] | None = None,
               quick: bool = False, strengths: Mapping[str, Sequence[D.Strength]] | None = None, extra_metrics: Sequence[Metric] = (),
               seed: int = 0) -> SanityResult:
    """Score the battery on the configured suite/generator and write the cards to ``out_dir``.

    ``extra_metrics``: loaded metric instances scored besides the configured ones (tests use it to add a
    deliberately blind metric without registering it in the package)."""
    from mova_eval import references, runner
    from mova_eval.registry import get_generator_class
    from mova_eval.suites import load_suite

    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    rt = cfg.get("runtime", {})
    progress = bool(rt.get("progress", True))
    use_cache = bool(rt.get("cache", True))
    context = RunContext.from_config(rt, device=runner.resolve_device(str(rt.get("device", "auto"))))
    device = context.device
    battery = D.battery(kinds, quick=quick, strengths=strengths)
    out_dir = Path(out_dir)

    t0 = time.perf_counter()
    suite = load_suite(cfg["suite"])
    gcfg = dict(cfg["generator"])
    generator = get_generator_class(gcfg["name"])(gcfg, device=device, context=context)
    generator.bind_suite(suite)
    plan = runner.select_metrics(references.with_suite_references(cfg.get("metrics", {}), suite), context)
    metrics = [m for m in plan.metrics if not isinstance(m, SetLevelMetric)] + list(extra_metrics)
    statuses = [{"name": s.name, "available": s.available, "reason": s.reason, "command": s.command,
                 "version": s.version} for s in plan.statuses]
    for m in plan.metrics:
        if isinstance(m, SetLevelMetric):
            for s in statuses:
                if s["name"] == m.info.name:
                    s["reason"] = "set-level metric: the sanity battery scores per-item metrics only"
                    s["available"] = False
    for m in extra_metrics:
        statuses.append({"name": m.info.name, "available": True, "reason": "added by the caller", "command": None,
                         "version": m.info.version})
    if not metrics:
        raise ConfigError("sanity: no per-item metric can run with this configuration (`mova-eval ls` shows why)")
    tokens = {m.info.name: m.cache_token() for m in metrics}
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = runner.resolve_samples(generator, suite, runner.parse_seeds(cfg.get("seeds")))
    requests = runner.plan_requests(suite, samples, gcfg)
    generator.load()
    gen = runner.generate(generator, requests, cache_enabled=use_cache, progress=progress, context=context)
    generator.close()
    timings["generate"] = time.perf_counter() - t0

    # Audio of every clip, for swap_audio donors (audio only: pictures are decoded one clip at a time).
    t0 = time.perf_counter()
    donors: dict[str, Clip] = {}
    clip_errors: dict[str, str] = {}
    for r in requests:
        res = gen[r.request_id]
        if not res.ok or res.path is None:
            clip_errors[r.request_id] = f"GenerationError: {res.error}"
            continue
        if r.seed == requests[0].seed and r.item.id not in donors:
            try:
                donors[r.item.id] = media.decode(res.path, video=False)
            except MediaError:
                pass  # the full decode below records the reason

    cache = Cache("scores", enabled=use_cache, context=context)
    counter = {"scored": 0, "cached": 0, "clean_scored": 0, "defected_scored": 0, "skipped_variants": 0}
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []

    def work(req: GenRequest) -> list[dict[str, Any]]:
        res = gen[req.request_id]
        if not res.ok or res.path is None:
            return []
        item = req.item
        try:
            clip = media.decode(res.path)
        except MediaError as e:
            clip_errors[req.request_id] = f"{type(e).__name__}: {e}"
            return []
        local = {"scored": 0, "cached": 0}
        rows: list[dict[str, Any]] = []
        active = [m for m in metrics if m.applies(item)]
        for m in active:
            rows += _rows_for(m, tokens[m.info.name], clip, item, req.seed, CLEAN, None, None, cache, local)
        clean_scored = local["scored"]
        ctx = D.DefectContext(item=item, others={k: c for k, c in donors.items() if k != item.id})
        for kind, strength in battery:
            k = D.get(kind)
            targets = [m for m in active if _reads(m, k.stream)]
            if not targets:
                continue
            try:
                bad, rec = D.apply(clip, kind, strength, seed=seed, context=ctx)
            except (MovaEvalError, MediaError) as e:
                skipped.append({"item_id": item.id, "seed": req.seed, "defect": kind, "strength": strength,
                                "reason": f"{type(e).__name__}: {e}"})
                counter["skipped_variants"] += 1
                continue
            records.append({"item_id": item.id, "seed": req.seed, **rec.as_dict()})
            if k.stream == "audio":
                D.materialize_audio(bad, scratch)
            for m in targets:
                rows += _rows_for(m, tokens[m.info.name], bad, item, req.seed, kind, strength, rec.as_dict(), cache,
                                  local)
        counter["scored"] += local["scored"]
        counter["cached"] += local["cached"]
        counter["clean_scored"] += clean_scored
        counter["defected_scored"] += local["scored"] - clean_scored
        return rows

    all_rows: list[dict[str, Any]] = []
    workers = max(1, int(rt.get("workers", 1)))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mova-sanity-") as scratch, \
            tqdm(total=len(requests), desc="sanity", unit="clip", disable=not progress) as bar:
        with ThreadPoolExecutor(workers) as pool:
            for rows in pool.map(work, requests):
                all_rows += rows
                bar.update(1)
    timings["score"] = time.perf_counter() - t0
    frame = pd.DataFrame(all_rows, columns=["item_id", "category", "seed", "family", "metric", "defect", "strength",
                                            "value", "error", "clip_hash", "record"])

    t0 = time.perf_counter()
    n_boot = int(rt.get("bootstrap", 1000))
    cells = analyse(frame, metrics, battery, n_boot=n_boot)
    verdicts = judge(cells, metrics)
    timings["analyse"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    counts = {"clips": len(requests), "clips_failed": len(clip_errors), "scored": counter["scored"],
              "clean_scored": counter["clean_scored"], "defected_scored": counter["defected_scored"],
              "cache_hits": counter["cached"], "variants": len(records), "skipped_variants": len(skipped),
              "metrics": len(metrics)}
    meta = {"suite": {"name": suite.name, "version": suite.version, "items": len(suite)},
            "generator": generator.identity(), "seeds": runner.parse_seeds(cfg.get("seeds")), "defect_seed": seed,
            "battery": [{"defect": k, "strength": s} for k, s in battery], "defects_version": D.VERSION,
            "bootstrap": n_boot, "clip_errors": clip_errors, "skipped": skipped, "device": device,
            "ci": "95% percentile bootstrap over prompts of the mean paired change (defected − clean)"}
    result = SanityResult(out_dir, cells, verdicts, frame, statuses, counts,
                          {k: round(v, 3) for k, v in timings.items()}, meta)
    write_outputs(result, records, metrics)
    return result


# ----------------------------------------------------------------------------------------------- statistics


def analyse(frame: pd.DataFrame, metrics: Sequence[Metric], battery: Sequence[tuple[str, D.Strength]], *,
            n_boot: int = 1000) -> list[Cell]:
    cells: list[Cell] = []
    if frame.empty:
        return cells
    fam = {o.name: m.info.name for m in metrics for o in m.info.outputs}
    clean = frame[frame["defect"] == CLEAN].set_index(["metric", "item_id", "seed"])
    for (metric, defect, strength), grp in frame[frame["defect"] != CLEAN].groupby(
            ["metric", "defect", "strength"], dropna=False, sort=False):
        strength = None if (isinstance(strength, float) and math.isnan(strength)) else strength
        kind = D.get(defect)
        keys = list(zip(grp["metric"], grp["item_id"], grp["seed"]))
        cv = clean["value"].reindex(keys).to_numpy(float)
        dv = grp["value"].to_numpy(float)
        ok = np.isfinite(cv) & np.isfinite(dv)
        failed_mask = np.isfinite(cv) & ~np.isfinite(dv)
        reasons = grp["error"][failed_mask].dropna()
        paired = pd.DataFrame({"value": np.where(ok, dv - cv, np.nan), "category": grp["category"].to_numpy(),
                               "item_id": grp["item_id"].to_numpy()})[ok]
        if len(paired):
            s = stats.summarize(paired, "pooled_mean", n_boot=n_boot)
            delta, lo, hi = s.mean, s.ci_low, s.ci_high
        else:
            delta = lo = hi = math.nan
        cells.append(Cell(output=metric, family=fam.get(metric, grp["family"].iloc[0]), defect=defect,
                          strength=None if strength is None else float(strength),
                          label=D.format_strength(defect, strength, kind.unit),
                          magnitude=kind.magnitude(strength), n=int(ok.sum()),
                          excluded=int((~np.isfinite(cv)).sum()), failed=int(failed_mask.sum()),
                          fail_reason=str(reasons.iloc[0]) if len(reasons) else "",
                          clean_mean=float(np.mean(cv[ok])) if ok.any() else math.nan,
                          defected_mean=float(np.mean(dv[ok])) if ok.any() else math.nan,
                          delta=float(delta), ci_low=float(lo), ci_high=float(hi)))
    order = {(k, s): i for i, (k, s) in enumerate(battery)}
    cells.sort(key=lambda c: (c.family, c.output, order.get((c.defect, c.strength), 1 << 30), c.magnitude))
    return cells


def _significant(c: Cell, sign: int) -> bool:
    if not (math.isfinite(c.ci_low) and math.isfinite(c.ci_high)):
        return False
    return c.ci_low > 0 if sign > 0 else c.ci_high < 0


def _monotone(cells: list[Cell], sign: int) -> bool | None:
    sides: dict[int, list[Cell]] = {}
    for c in cells:
        if math.isfinite(c.delta):
            side = int(np.sign(c.strength)) if (c.strength is not None and D.get(c.defect).unit == "ms") else 0
            sides.setdefault(side, []).append(c)
    judged = False
    for side_cells in sides.values():
        side_cells.sort(key=lambda c: c.magnitude)
        for weak, strong in zip(side_cells, side_cells[1:]):
            judged = True
            directed_strong_hi = sign * strong.ci_high if sign > 0 else -strong.ci_low
            if math.isfinite(directed_strong_hi) and directed_strong_hi < sign * weak.delta:
                return False
    return True if judged else None


def judge(cells: Sequence[Cell], metrics: Sequence[Metric]) -> list[Verdict]:
    expectations: dict[tuple[str, str], Expectation] = {}
    for m in metrics:
        expectations.update(expectations_for(m))
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.output, c.defect), []).append(c)
    out = []
    for (output, defect), cs in groups.items():
        e = expectations.get((output, defect))
        moves = any(_significant(c, +1) or _significant(c, -1) for c in cs)
        v = Verdict(output, cs[0].family, defect, e.expect if e else None, e.tolerance if e else None, "",
                    moves=moves, source=e.source if e else None)
        if all(c.n == 0 for c in cs):
            v.verdict = "undefined"
        elif all(c.n < 2 for c in cs):
            v.verdict = "too few items"  # one prompt gives no interval: neither detected nor blind
        elif e is None:
            v.verdict = "not declared"
        elif e.expect == "unchanged":
            t = e.tolerance or 0.0
            finite = [c for c in cs if math.isfinite(c.ci_low) and math.isfinite(c.ci_high)]
            if any(c.ci_low > t or c.ci_high < -t for c in finite):
                v.verdict = "violated"
            elif finite and len(finite) == len([c for c in cs if c.n]) and all(-t <= c.ci_low and c.ci_high <= t
                                                                             for c in finite):
                v.verdict = "invariant"
            else:
                v.verdict = "inconclusive"
        else:
            sign = 1 if e.expect == "rises" else -1
            hit = [c for c in cs if _significant(c, sign)]
            wrong = [c for c in cs if _significant(c, -sign)]
            v.detected = [c.label for c in sorted(hit, key=lambda c: c.magnitude)]
            v.smallest = min(hit, key=lambda c: c.magnitude).label if hit else None
            v.monotone = _monotone(cs, sign)
            v.verdict = ("mixed" if hit and wrong else "detects" if hit else "wrong direction" if wrong else "blind")
        out.append(v)
    out.sort(key=lambda v: (v.family, v.output, v.defect))
    return out


# ----------------------------------------------------------------------------------------------- output


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


SHORT = {"detects": "✓", "blind": "blind", "wrong direction": "✗ wrong", "mixed": "± mixed", "invariant": "= ok",
         "violated": "≠ violated", "inconclusive": "? inconcl.", "undefined": "NaN", "not declared": "·",
         "too few items": "n<2"}


def _cell_text(v: Verdict) -> str:
    s = SHORT.get(v.verdict, v.verdict)
    if v.verdict == "detects" and v.smallest and v.smallest != v.defect:
        s += f" ≥{v.smallest.split(' ', 1)[1] if ' ' in v.smallest else v.smallest}"
        if v.monotone is False:
            s += " (non-mono)"
    if v.verdict == "not declared" and v.moves:
        s = "· moves"
    return s


def summary_markdown(result: SanityResult) -> str:
    kinds = list(dict.fromkeys(c.defect for c in result.cells))
    outputs = list(dict.fromkeys(v.output for v in result.verdicts))
    by = {(v.output, v.defect): v for v in result.verdicts}
    lines = ["# Metric sanity: summary", "",
             f"Suite {result.meta['suite']['name']} ({result.meta['suite']['items']} items), generator "
             f"{result.meta['generator'].get('name')}; {result.counts['variants']} defected variants, "
             f"{result.counts['defected_scored']} defected scorings computed ({result.counts['cache_hits']} cache "
             f"hits); {result.meta['ci']}; {result.meta['bootstrap']} resamples.", "",
             "Cells: ✓ detects (≥ weakest detected strength), blind, ✗ wrong direction, = ok (stays within its "
             "tolerance), ≠ violated, ? inconclusive, NaN (no value under the defect), n<2 (one item: no "
             "interval), · not declared "
             "(· moves: changes although nothing is expected). A blank cell: the metric does not read that "
             "stream, or the defect does not apply to its items.", "",
             "| output | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for o in outputs:
        lines.append(f"| {o} | " + " | ".join(_cell_text(by[(o, k)]) if (o, k) in by else "" for k in kinds) + " |")
    na = [s for s in result.statuses if not s["available"]]
    if na:
        lines += ["", "Not checked here:", ""] + [f"- {s['name']}: {s['reason']}" +
                                                   (f" (`{s['command']}`)" if s.get("command") else "") for s in na]
    return "\n".join(lines) + "\n"


def card_markdown(result: SanityResult, family: str, plots: Mapping[str, str]) -> str:
    cells = [c for c in result.cells if c.family == family]
    verdicts = [v for v in result.verdicts if v.family == family]
    status = next((s for s in result.statuses if s["name"] == family), {})
    lines = [f"# Sensitivity card: {family}", "",
             f"Metric version {status.get('version', '?')}; suite {result.meta['suite']['name']}, generator "
             f"{result.meta['generator'].get('name')}, seeds {result.meta['seeds']}, defect seed "
             f"{result.meta['defect_seed']} (defects v{result.meta['defects_version']}). Δ = defected − clean per "
             f"item; {result.meta['ci']}.", ""]
    for output in dict.fromkeys(c.output for c in cells):
        lines += [f"## {output}", "", "| defect | expected | verdict | weakest detected | monotone |",
                  "|---|---|---|---|---|"]
        for v in (v for v in verdicts if v.output == output):
            exp = v.expect or "—"
            if v.expect == "unchanged":
                exp += f" (±{v.tolerance:g})"
            mono = "—" if v.monotone is None else ("yes" if v.monotone else "no")
            lines.append(f"| {v.defect} | {exp} | {v.verdict}{' (moves)' if v.verdict == 'not declared' and v.moves else ''}"
                         f" | {v.smallest or '—'} | {mono} |")
        lines += ["", "| defect, strength | n | excl | failed | clean mean | Δ | 95% CI |", "|---|---|---|---|---|---|---|"]
        for c in (c for c in cells if c.output == output):
            ci = "" if not math.isfinite(c.ci_low) else f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]"
            failed = f"{c.failed}" + (f" ({c.fail_reason[:60]})" if c.failed else "")
            lines.append(f"| {c.label} | {c.n} | {c.excluded} | {failed} | {_fmt(c.clean_mean)} | {_fmt(c.delta)} | {ci} |")
        if output in plots:
            lines += ["", f"![{output} vs defect strength]({plots[output]})"]
        lines.append("")
    return "\n".join(lines)


def _md_to_html(md: str, title: str) -> str:
    """The card's Markdown as a standalone HTML page (headings, tables, images, paragraphs; nothing else)."""
    import html

    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}"
            f"</style></head><body>\n" + markdown_fragment_html(md) + "\n</body></html>\n")


def markdown_fragment_html(md: str) -> str:
    """The HTML body for the small Markdown subset the cards and the agreement tables use (also used by
    ``mova-eval report`` to embed them)."""
    import html

    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r.strip().strip("|").split("|") for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            out = ["<table>"]
            for i, r in enumerate(rows):
                tag = "th" if i == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{html.escape(x.strip())}</{tag}>" for x in r) + "</tr>")
            out.append("</table>")
            body.append("\n".join(out))
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            body.append(f'<img alt="{html.escape(alt)}" src="{html.escape(src.rstrip(")"))}">')
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(body)


def plot_output(cells: Sequence[Cell], verdicts: Sequence[Verdict], path: Path) -> bool:
    """Δ vs strength with 95% CIs, one panel per defect; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    kinds = list(dict.fromkeys(c.defect for c in cells))
    by_v = {v.defect: v for v in verdicts}
    cols = min(4, len(kinds))
    rows = math.ceil(len(kinds) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes.flat, kinds):
        cs = [c for c in cells if c.defect == kind]
        unit = D.get(kind).unit
        xs = [c.strength if c.strength is not None else 0.0 for c in cs]
        ys = [c.delta for c in cs]
        lo = [c.delta - c.ci_low if math.isfinite(c.ci_low) else 0 for c in cs]
        hi = [c.ci_high - c.delta if math.isfinite(c.ci_high) else 0 for c in cs]
        ax.axhline(0, color="0.6", lw=0.8)
        v = by_v.get(kind)
        if v and v.expect == "unchanged" and v.tolerance is not None:
            ax.axhspan(-v.tolerance, v.tolerance, color="tab:green", alpha=0.12)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-" if len(cs) > 1 else "o", capsize=3, ms=4)
        title = kind + (f" ({v.expect}: {v.verdict})" if v and v.expect else (f" ({v.verdict})" if v else ""))
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(unit or "(no strength)", fontsize=7)
        ax.tick_params(labelsize=7)
        if kind == "noise":
            ax.invert_xaxis()
    fig.suptitle(f"{cells[0].output}: change vs strength (95% CI)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def to_jsonable(result: SanityResult) -> dict[str, Any]:
    from mova_eval.results import nan_to_null

    out: dict[str, Any] = nan_to_null({"meta": result.meta, "counts": result.counts, "timings": result.timings,
                                       "metrics": result.statuses, "cells": [asdict(c) for c in result.cells],
                                       "verdicts": [asdict(v) for v in result.verdicts]})
    return out


def write_outputs(result: SanityResult, records: Iterable[dict[str, Any]], metrics: Sequence[Metric]) -> None:
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sanity.json", json.dumps(to_jsonable(result), indent=2, default=str) + "\n")
    result.rows.to_parquet(out / "scores.parquet", index=False)
    atomic_write_text(out / "defects.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in records))
    md = summary_markdown(result)
    atomic_write_text(out / "summary.md", md)
    atomic_write_text(out / "summary.html", _md_to_html(md, "Metric sanity: summary"))
    (out / "cards").mkdir(exist_ok=True)
    for family in dict.fromkeys(c.family for c in result.cells):
        plots = {}
        for output in dict.fromkeys(c.output for c in result.cells if c.family == family):
            rel = f"plots/{output}.png"
            if plot_output([c for c in result.cells if c.output == output],
                           [v for v in result.verdicts if v.output == output], out / "cards" / rel):
                plots[output] = rel
        card = card_markdown(result, family, plots)
        atomic_write_text(out / "cards" / f"{family}.md", card)
        atomic_write_text(out / "cards" / f"{family}.html", _md_to_html(card, f"Sensitivity card: {family}"))


def load_result(out_dir: str | Path) -> dict[str, Any]:
    """A finished sanity directory's ``sanity.json`` (for reports)."""
    path = Path(out_dir) / "sanity.json"
    if not path.is_file():
        raise MovaEvalError(f"{out_dir}: no sanity.json (not a `mova-eval sanity` output folder)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
