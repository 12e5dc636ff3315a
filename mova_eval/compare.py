"""``mova-eval compare CANDIDATE --baseline BASELINE [--gate FILE]``: did a change make the numbers worse?

Paired on shared items: for every metric output, the items (item id × seed) that have a value in both runs; the
delta is the candidate's statistic minus the baseline's over those items, in the metric's own aggregation rule
(mean of category means, pooled mean, or corpus ratio), and its 95 % CI comes from a paired bootstrap that
resamples prompts (both runs' rows of a prompt move together, so several seeds of one prompt stay one cluster). A
change is *beyond noise* when that CI excludes 0.

When one side has no item values (a committed ``summary.parquet`` or JSON export, or a set-level metric such as IS
or FVD) the comparison is unpaired: the delta of the two summary values, with a CI from both CIs in quadrature
(normal approximation), and it says so.

A gate file (YAML) turns deltas into a verdict per metric::

    defaults: {min_n: 5, fail_if_unavailable: true}
    metrics:
      av_align: {max_regression: 0.01}            # absolute, in the metric's unit
      lufs: {max_regression: 5%}                  # relative to the baseline's value
      dnsmos_p808: {max_regression: 0.05, category: set3, require_significant: true}

A gate may name any output a compared run wrote or configured, by the runner's rule (the configured instance's
outputs: ``ib_score_x100`` where a run set ``scale: 100``, ``av_align_corrected`` for ``decode: corrected``), and
the default outputs of every metric; a variant name neither run configured, or a typo, is a configuration error.

A *regression* is a change in the metric's worse direction (lower for ↑ metrics, higher for ↓ ones, either way for
metrics with no better direction) larger than the allowance. ``require_significant`` also asks for the change to
be beyond noise. Exit status: 0 pass, 1 regression (or a failed ``min_n`` / unavailable rule), 2 usage or
configuration error.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mova_eval.errors import ConfigError
from mova_eval.summary import ALL, SummaryRecord, read_records, resolve_sources

Z95 = 1.959963984540054


@dataclass
class Side:
    """One side of a comparison: summary records, and item rows when it is a run directory."""

    path: Path
    label: str
    records: list[SummaryRecord]
    items: pd.DataFrame | None

    def record(self, metric: str, category: str = ALL, language: str = ALL) -> SummaryRecord | None:
        for r in self.records:
            if r.metric == metric and r.category == category and r.language == language:
                return r
        return None


def load_side(path: str | Path, what: str) -> Side:
    sources = resolve_sources([path])
    if len(sources) != 1:
        raise ConfigError(f"{what} {path} names {len(sources)} runs; compare takes one run directory or summary file")
    src = sources[0]
    records = read_records(src)
    if not records:
        raise ConfigError(f"{what} {src} has no summary rows")
    labels = sorted({r.model for r in records})
    items = None
    if src.is_dir():
        from mova_eval.results import load_runs

        items = load_runs(src)
    return Side(src, "+".join(labels), records, items)


# ----------------------------------------------------------------------------------------------- statistics


def _stat(values: np.ndarray, cats: np.ndarray, rule: str, num: np.ndarray | None, den: np.ndarray | None) -> float:
    from mova_eval.metrics.base import CATEGORY_MEAN, CORPUS

    if rule == CORPUS:
        if num is None or den is None:
            raise ValueError("the corpus rule needs the items' numerators and denominators")
        d = float(np.sum(den))
        return float(np.sum(num) / d) if d > 0 else math.nan
    if rule == CATEGORY_MEAN:
        return float(np.mean([values[cats == c].mean() for c in dict.fromkeys(cats)]))
    return float(values.mean())


@dataclass
class Paired:
    delta: float
    ci_low: float
    ci_high: float
    n: int
    baseline: float
    candidate: float


def paired_delta(base: pd.DataFrame, cand: pd.DataFrame, rule: str, *, n_boot: int = 2000, seed: int = 0) -> Paired:
    """Candidate − baseline over the items (item_id, seed) both have a value for, with a prompt-clustered paired
    bootstrap CI. ``base``/``cand`` hold one metric output's rows (value, category, item_id, seed and, for the
    corpus rule, numerator/denominator)."""
    from mova_eval.metrics.base import CORPUS

    cols = ["item_id", "seed", "category", "value"] + (["numerator", "denominator"] if rule == CORPUS else [])
    b = base[cols].copy()
    c = cand[cols].copy()
    def ok(f: pd.DataFrame) -> np.ndarray:
        finite: np.ndarray = (np.isfinite(f["value"].to_numpy(float)) if rule != CORPUS else
                              np.isfinite(f["numerator"].to_numpy(float)) & np.isfinite(f["denominator"].to_numpy(float)))
        return finite

    b, c = b[ok(b)], c[ok(c)]
    b = b.drop_duplicates(["item_id", "seed"], keep="last")  # one row per item and seed (a rerun's row wins)
    c = c.drop_duplicates(["item_id", "seed"], keep="last")
    m = b.merge(c, on=["item_id", "seed"], suffixes=("_b", "_c"))
    n = len(m)
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, 0, math.nan, math.nan)
    vb, vc = m["value_b"].to_numpy(float), m["value_c"].to_numpy(float)
    cats = m["category_b"].to_numpy()  # an item's category is the same on both sides (same suite)
    nb = db = nc = dc = None
    if rule == CORPUS:
        nb, db = m["numerator_b"].to_numpy(float), m["denominator_b"].to_numpy(float)
        nc, dc = m["numerator_c"].to_numpy(float), m["denominator_c"].to_numpy(float)

    def stat(idx: np.ndarray) -> tuple[float, float, float]:
        sb = _stat(vb[idx], cats[idx], rule, None if nb is None else nb[idx], None if db is None else db[idx])
        sc = _stat(vc[idx], cats[idx], rule, None if nc is None else nc[idx], None if dc is None else dc[idx])
        return sc - sb, sb, sc

    everything = np.arange(n)
    delta, sb, sc = stat(everything)
    groups = pd.factorize(m["item_id"])[0]
    members = [np.flatnonzero(groups == g) for g in range(groups.max() + 1)]
    if len(members) < 2 or n_boot <= 0:
        return Paired(delta, math.nan, math.nan, n, sb, sc)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        boots[i] = stat(np.concatenate([members[k] for k in pick]))[0]
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Paired(delta, math.nan, math.nan, n, sb, sc)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Paired(delta, float(lo), float(hi), n, sb, sc)


# ----------------------------------------------------------------------------------------------- comparison


@dataclass
class MetricComparison:
    metric: str
    family: str
    category: str
    language: str
    direction: str
    unit: str
    aggregation: str
    baseline: float                 # over the shared items when paired, else the baseline's summary value
    candidate: float
    delta: float                    # candidate − baseline
    ci_low: float
    ci_high: float
    paired: bool
    n_shared: int                   # items in the paired delta (0 when unpaired)
    n_baseline: int
    n_candidate: int
    note: str = ""

    @property
    def available(self) -> bool:
        return math.isfinite(self.delta)

    @property
    def beyond_noise(self) -> bool | None:
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return None
        return self.ci_low > 0 or self.ci_high < 0

    def worsening(self) -> float:
        """How much worse the candidate is (positive = worse) in the metric's direction."""
        if self.direction == "higher":
            return -self.delta
        if self.direction == "lower":
            return self.delta
        return abs(self.delta)


def _rows(items: pd.DataFrame, metric: str, category: str, language: str) -> pd.DataFrame:
    f = items[items["metric"] == metric]
    if category != ALL:
        f = f[f["category"] == category]
    if language != ALL:
        f = f[f["language"] == language]
    return f


def compare_metric(base: Side, cand: Side, metric: str, category: str = ALL, language: str = ALL, *,
                   n_boot: int = 2000) -> MetricComparison | None:
    """The comparison of one metric output (None when neither side has it)."""
    from mova_eval.metrics.base import CORPUS, POOLED_MEAN, SET_LEVEL

    rb, rc = base.record(metric, category, language), cand.record(metric, category, language)
    ref = rc or rb
    if ref is None:
        return None
    comparison = partial(MetricComparison, metric=metric, family=ref.family, category=category, language=language,
                         direction=ref.direction, unit=ref.unit, aggregation=ref.aggregation,
                         n_baseline=rb.n if rb else 0, n_candidate=rc.n if rc else 0)
    if rb is None or rc is None:
        missing = "baseline" if rb is None else "candidate"
        return comparison(baseline=rb.mean if rb else math.nan, candidate=rc.mean if rc else math.nan,
                          delta=math.nan, ci_low=math.nan, ci_high=math.nan, paired=False, n_shared=0,
                          note=f"not in the {missing}")
    can_pair = (base.items is not None and cand.items is not None and ref.aggregation != SET_LEVEL
                and (base.items["metric"] == metric).any() and (cand.items["metric"] == metric).any())
    if can_pair:
        rule = ref.aggregation
        if category != ALL and rule != CORPUS:
            rule = POOLED_MEAN
        p = paired_delta(_rows(base.items, metric, category, language),
                         _rows(cand.items, metric, category, language), rule, n_boot=n_boot)
        note = "" if p.n else "no item has a value in both runs"
        if p.n and (p.n < rb.n or p.n < rc.n):
            note = f"paired on {p.n} shared items (baseline has {rb.n}, candidate {rc.n})"
        return comparison(baseline=p.baseline, candidate=p.candidate, delta=p.delta, ci_low=p.ci_low,
                          ci_high=p.ci_high, paired=True, n_shared=p.n, note=note)
    delta = rc.mean - rb.mean
    hw = [(r.ci_high - r.ci_low) / 2 for r in (rb, rc)]
    lo = hi = math.nan
    if all(math.isfinite(h) for h in hw) and math.isfinite(delta):
        spread = math.hypot(*hw)
        lo, hi = delta - spread, delta + spread
    why = ("set-level metric" if ref.aggregation == SET_LEVEL else "no item values on one side")
    return comparison(baseline=rb.mean, candidate=rc.mean, delta=delta, ci_low=lo, ci_high=hi, paired=False,
                      n_shared=0, note=f"unpaired ({why}): CI from both CIs in quadrature")


def compare(base: Side, cand: Side, *, targets: list[tuple[str, str, str]] | None = None,
            n_boot: int = 2000) -> list[MetricComparison]:
    """Comparisons for ``targets`` (metric, category, language), default every metric's ``all`` row."""
    if targets is None:
        names = dict.fromkeys(r.metric for side in (base, cand) for r in side.records
                              if r.category == ALL and r.language == ALL)
        targets = [(m, ALL, ALL) for m in names]
    out = []
    for metric, cat, lang in targets:
        c = compare_metric(base, cand, metric, cat, lang, n_boot=n_boot)
        if c is not None:
            out.append(c)
    return out


# ----------------------------------------------------------------------------------------------- gate


class Verdict(str, Enum):
    PASS = "pass"
    REGRESSION = "regression"
    TOO_FEW = "too_few_items"
    UNAVAILABLE = "unavailable"
    SKIPPED = "skipped"          # unavailable, and the rule says that does not fail

    @property
    def failed(self) -> bool:
        return self in (Verdict.REGRESSION, Verdict.TOO_FEW, Verdict.UNAVAILABLE)


@dataclass(frozen=True)
class GateRule:
    metric: str
    max_regression: float | None = None      # absolute allowance, in the metric's unit
    max_regression_rel: float | None = None  # allowance as a fraction of |baseline|
    min_n: int = 1
    fail_if_unavailable: bool = True
    require_significant: bool = False
    category: str = ALL
    language: str = ALL

    def allowance(self, baseline: float) -> float:
        if self.max_regression_rel is not None:
            return self.max_regression_rel * abs(baseline)
        return self.max_regression if self.max_regression is not None else 0.0

    def describe(self) -> str:
        amount = (f"{self.max_regression_rel * 100:g}%" if self.max_regression_rel is not None
                  else f"{self.max_regression if self.max_regression is not None else 0:g}")
        where = "" if self.category == ALL and self.language == ALL else f" on {self.category}/{self.language}"
        return f"worse by ≤ {amount}{where}, n ≥ {self.min_n}" + (", if significant" if self.require_significant
                                                                   else "")


@dataclass
class Gate:
    path: str
    rules: list[GateRule]


_RULE_KEYS = {"max_regression", "min_n", "fail_if_unavailable", "require_significant", "category", "language"}


def _amount(value: Any, where: str) -> tuple[float | None, float | None]:
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: max_regression must be a number or a percentage like '5%', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{where}: max_regression must be ≥ 0, got {value}")
        return float(value), None
    s = str(value).strip()
    try:
        if s.endswith("%"):
            rel = float(s[:-1]) / 100
            if rel < 0:
                raise ValueError
            return None, rel
        return _amount(float(s), where)
    except ValueError:
        raise ConfigError(f"{where}: max_regression must be a number ≥ 0 or a percentage like '5%', "
                          f"got {value!r}") from None


def known_outputs(sides: Sequence[Side] = ()) -> set[str]:
    """The output names a gate may name, by the runner's rule (an instance's ``requested_outputs()``: an option can
    rename them, ``scale: 100`` → ``ib_score_x100``, ``decode: corrected`` → ``*_corrected``): every registered
    metric with its default options, every metric as each run directory's run.json configured it, and every name
    the sides' summary records carry (a committed summary, or a run of an older mova-eval)."""
    from mova_eval.context import RunContext
    from mova_eval.registry import metric_classes

    context = RunContext.from_env()
    out: set[str] = set()
    for cls in metric_classes().values():
        try:
            out.update(o.name for o in cls(None, context=context).requested_outputs())
        except Exception:  # a metric that cannot be built here names its declared outputs
            out.update(o.name for o in cls.info.outputs)
    for side in sides:
        out.update(r.metric for r in side.records)
        if not (side.path / "run.json").is_file():
            continue
        from mova_eval.results import read_run_json

        for status in read_run_json(side.path).metrics:
            status_cls = metric_classes().get(status.name)
            if status_cls is None:
                continue
            try:
                out.update(o.name for o in status_cls(status.options, context=context).requested_outputs())
            except Exception:  # options of another mova-eval version: the names its records carry stand
                pass
    return out


def _variant_of(name: str) -> str | None:
    """The metric whose option-selected outputs include ``name`` (for the error message), or None."""
    from mova_eval.registry import metric_classes

    for metric, cls in metric_classes().items():
        if any(o.name == name for o in cls.info.variant_outputs):
            return metric
    return None


def load_gate(path: str | Path, outputs: set[str] | None = None) -> Gate:
    """Parse and validate a gate file; every problem is a ConfigError naming the file and the key. ``outputs``:
    the output names it may name (:func:`known_outputs` of the compared runs; default: of no run)."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"gate file {path} cannot be read: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"gate file {path} is not valid YAML: {e}") from e
    if not isinstance(spec, dict) or not isinstance(spec.get("metrics"), dict) or not spec["metrics"]:
        raise ConfigError(f"gate file {path} needs a `metrics:` mapping of metric output → rule")
    unknown_top = set(spec) - {"metrics", "defaults"}
    if unknown_top:
        raise ConfigError(f"gate file {path}: unknown top-level key(s) {sorted(unknown_top)} "
                          f"(known: metrics, defaults)")
    defaults = spec.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - _RULE_KEYS:
        raise ConfigError(f"gate file {path}: `defaults` must be a mapping with keys from {sorted(_RULE_KEYS)}")
    if outputs is None:
        outputs = known_outputs()
    rules = []
    for metric, raw in spec["metrics"].items():
        where = f"gate file {path}, metric {metric}"
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: the rule must be a mapping (e.g. {{max_regression: 0.01}})")
        bad = set(raw) - _RULE_KEYS
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (known: {sorted(_RULE_KEYS)})")
        if metric not in outputs:
            import difflib

            family = _variant_of(str(metric))
            if family is not None:
                raise ConfigError(f"{where}: {metric!r} is what {family} writes with other options "
                                  f"(see mova-eval ls --metric {family}); neither compared run configured them")
            close = difflib.get_close_matches(str(metric), sorted(outputs), n=3)
            raise ConfigError(f"{where}: no metric of this mova-eval has an output named {metric!r}"
                              + (f" (did you mean {', '.join(close)}?)" if close else ""))
        merged = {**defaults, **raw}
        absolute, rel = _amount(merged.get("max_regression", 0), where)
        try:
            min_n = int(merged.get("min_n", 1))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: min_n must be an integer, got {merged.get('min_n')!r}") from None
        for flag in ("fail_if_unavailable", "require_significant"):
            if flag in merged and not isinstance(merged[flag], bool):
                raise ConfigError(f"{where}: {flag} must be true or false, got {merged[flag]!r}")
        rules.append(GateRule(metric=str(metric), max_regression=absolute, max_regression_rel=rel, min_n=min_n,
                              fail_if_unavailable=bool(merged.get("fail_if_unavailable", True)),
                              require_significant=bool(merged.get("require_significant", False)),
                              category=str(merged.get("category", ALL)), language=str(merged.get("language", ALL))))
    return Gate(str(path), rules)


@dataclass
class GateResult:
    rule: GateRule
    comparison: MetricComparison | None
    verdict: Verdict
    message: str


def evaluate(rule: GateRule, c: MetricComparison | None) -> GateResult:
    if c is None or not c.available:
        why = "not in either run" if c is None else (c.note or "no value")
        v = Verdict.UNAVAILABLE if rule.fail_if_unavailable else Verdict.SKIPPED
        return GateResult(rule, c, v, f"{rule.metric}: unavailable ({why})")
    n = c.n_shared if c.paired else min(c.n_baseline, c.n_candidate)
    if n < rule.min_n:
        return GateResult(rule, c, Verdict.TOO_FEW, f"{rule.metric}: n={n} items < min_n={rule.min_n}")
    worse, allowed = c.worsening(), rule.allowance(c.baseline)
    if worse > allowed and (not rule.require_significant or c.beyond_noise):
        return GateResult(rule, c, Verdict.REGRESSION,
                          f"{rule.metric}: worse by {worse:.4g} (allowed {allowed:.4g}); baseline {c.baseline:.4g}, "
                          f"candidate {c.candidate:.4g}, Δ {c.delta:+.4g} [{c.ci_low:.4g}, {c.ci_high:.4g}]")
    extra = " (worse, but not beyond noise)" if worse > allowed else ""
    return GateResult(rule, c, Verdict.PASS,
                      f"{rule.metric}: Δ {c.delta:+.4g}, allowed worsening {allowed:.4g}{extra}")


def apply_gate(gate: Gate, base: Side, cand: Side, *, n_boot: int = 2000) -> list[GateResult]:
    return [evaluate(rule, compare_metric(base, cand, rule.metric, rule.category, rule.language, n_boot=n_boot))
            for rule in gate.rules]


# ----------------------------------------------------------------------------------------------- outputs


def _f(x: float, fmt: str = ".4g") -> str:
    return format(x, fmt) if isinstance(x, float) and math.isfinite(x) else "–"


def markdown(base: Side, cand: Side, comps: list[MetricComparison], results: list[GateResult] | None,
             gate: Gate | None) -> str:
    lines = [f"## mova-eval compare: `{cand.label}` ({cand.path.name}) vs baseline `{base.label}` ({base.path.name})",
             ""]
    if results is not None and gate is not None:
        failed = [r for r in results if r.verdict.failed]
        status = "**FAIL**" if failed else "**PASS**"
        lines += [f"Gate `{gate.path}`: {status} — {len(failed)} of {len(results)} gated metric(s) failed.", ""]
    gated = {(r.rule.metric, r.rule.category, r.rule.language): r for r in results or []}
    lines.append("| metric | set / lang | baseline | candidate | Δ (95% CI) | n | beyond noise | gate | verdict |")
    lines.append("|---|---|---:|---:|---|---:|---|---|---|")
    rows = list(comps)
    for r in results or []:  # gated targets that are not `all` rows, or are missing
        if r.comparison is not None and r.comparison not in rows:
            rows.append(r.comparison)
    seen = set()
    for c in rows:
        key = (c.metric, c.category, c.language)
        if key in seen:
            continue
        seen.add(key)
        g = gated.get(key)
        arrow = {"higher": " ↑", "lower": " ↓"}.get(c.direction, "")
        ci = f"{_f(c.delta, '+.4g')} [{_f(c.ci_low)}, {_f(c.ci_high)}]" if c.available else "–"
        noise = {True: "yes", False: "no", None: "?"}[c.beyond_noise]
        n = str(c.n_shared) if c.paired else f"{c.n_baseline}/{c.n_candidate} (unpaired)"
        verdict = f"**{g.verdict.value}**" if g and g.verdict.failed else (g.verdict.value if g else "")
        lines.append(f"| {c.metric}{arrow} | {c.category}/{c.language} | {_f(c.baseline)} | {_f(c.candidate)} | "
                     f"{ci} | {n} | {noise} | {g.rule.describe() if g else ''} | {verdict} |")
    for r in results or []:
        if r.comparison is None:
            verdict = f"**{r.verdict.value}**" if r.verdict.failed else r.verdict.value
            lines.append(f"| {r.rule.metric} | {r.rule.category}/{r.rule.language} | – | – | – | 0 | ? | "
                         f"{r.rule.describe()} | {verdict} |")
    notes = [f"- {c.metric}: {c.note}" for c in rows if c.note]
    if notes:
        lines += ["", *notes]
    lines += ["", "Δ = candidate − baseline over items both runs scored, 95 % CI from a paired bootstrap resampling "
                  "prompts; beyond noise = the CI excludes 0."]
    return "\n".join(lines) + "\n"


def junit_xml(results: list[GateResult], *, name: str) -> str:
    """JUnit XML: one test case per gated metric (failure = regression / too few items / unavailable)."""
    failures = sum(r.verdict.failed for r in results)
    skipped = sum(r.verdict is Verdict.SKIPPED for r in results)
    suites = ET.Element("testsuites", name="mova-eval compare", tests=str(len(results)), failures=str(failures),
                        errors="0", skipped=str(skipped))
    suite = ET.SubElement(suites, "testsuite", name=name, tests=str(len(results)), failures=str(failures),
                          errors="0", skipped=str(skipped), time="0")
    for r in results:
        label = r.rule.metric if r.rule.category == ALL and r.rule.language == ALL else \
            f"{r.rule.metric}[{r.rule.category}/{r.rule.language}]"
        case = ET.SubElement(suite, "testcase", classname="mova_eval.gate", name=label, time="0")
        if r.verdict.failed:
            f = ET.SubElement(case, "failure", message=r.message, type=r.verdict.value)
            f.text = r.message + (f"\n{r.comparison.note}" if r.comparison and r.comparison.note else "")
        elif r.verdict is Verdict.SKIPPED:
            ET.SubElement(case, "skipped", message=r.message)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = r.message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


@dataclass
class CompareOutcome:
    comparisons: list[MetricComparison]
    results: list[GateResult] | None
    markdown: str
    junit: str | None = None
    exit_code: int = 0
    files: list[Path] = field(default_factory=list)


def run_compare(candidate: str | Path, baseline: str | Path, *, gate: str | Path | None = None,
                junit: str | Path | None = None, markdown_out: str | Path | None = None,
                n_boot: int = 2000) -> CompareOutcome:
    """What the CLI does: compare, apply the gate, write the outputs, and decide the exit status."""
    if junit and not gate:
        raise ConfigError("--junit needs --gate FILE (one test case per gated metric)")
    base, cand = load_side(baseline, "baseline"), load_side(candidate, "candidate")
    suites_b, suites_c = {r.suite for r in base.records}, {r.suite for r in cand.records}
    if not suites_b & suites_c:
        raise ConfigError(f"the candidate ({', '.join(sorted(suites_c))}) and the baseline "
                          f"({', '.join(sorted(suites_b))}) are runs of different suites")
    g = load_gate(gate, known_outputs([base, cand])) if gate else None
    comps = compare(base, cand, n_boot=n_boot)
    results = apply_gate(g, base, cand, n_boot=n_boot) if g else None
    md = markdown(base, cand, comps, results, g)
    out = CompareOutcome(comps, results, md, exit_code=1 if results and any(r.verdict.failed for r in results) else 0)
    if markdown_out:
        Path(markdown_out).write_text(md, encoding="utf-8")
        out.files.append(Path(markdown_out))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    if junit and results is not None:
        out.junit = junit_xml(results, name=f"mova-eval gate: {cand.label} vs {base.label}")
        Path(junit).write_text(out.junit, encoding="utf-8")
        out.files.append(Path(junit))
    return out
