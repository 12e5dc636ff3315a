"""Named reference statistics for the distribution metrics (FVD, FAD): what generated clips are compared with.

A reference lives under ``<cache root>/references/<NAME>/``: ``meta.json`` (metric, protocol, extractor and the
sha256 of its weights, n, creator version, source, excluded files) and ``stats.npz`` (float64 count/mean/scatter,
so either covariance estimator can be read, plus the feature rows for KID). ``mova-eval reference build`` writes
them; a metric refuses a reference built under another protocol or with other weights, and an existing reference
is never overwritten without ``--force``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mova_eval.cache import atomic_write_bytes, atomic_write_text, cache_root
from mova_eval.context import RunContext
from mova_eval.errors import MetricUnavailable, MovaEvalError

if TYPE_CHECKING:
    from mova_eval.metrics.frechet import GaussianStats
    from mova_eval.spec import Suite

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ReferenceError(MovaEvalError):
    """A reference statistic is missing, exists already, or does not fit the metric that wants it."""

    def __init__(self, message: str, command: str | None = None):
        self.command = command
        super().__init__(message + (f" — fix: {command}" if command else ""))


@dataclass
class Reference:
    name: str
    meta: dict[str, Any]
    stats: GaussianStats
    features: np.ndarray  # float32 [rows, D]
    clip_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # row → clip number

    @property
    def n_clips(self) -> int:
        return int(self.meta.get("n_clips", 0))


def references_dir(context: RunContext | None = None) -> Path:
    """The folder of stored reference statistics under the context's cache root."""
    return cache_root(context) / "references"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ReferenceError(f"invalid reference name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def reference_source(metric: str, options: dict[str, Any]) -> str:
    """Where a metric's ``reference`` option came from, for the summary note."""
    return str(options.get("reference_from") or f"metrics.options.{metric}.reference")


def with_suite_references(metrics_cfg: dict[str, Any], suite: Suite) -> dict[str, Any]:
    """The metrics config with each ``metrics.options.<metric>.reference`` the user left unset (missing or null)
    taken from the suite's declared ``references`` ({metric: NAME}); an explicit option wins. Filled entries get
    ``reference_from: suite <name>`` so the note and the run log say which source was used. A suite naming a
    metric that takes no reference statistics is a configuration error."""
    declared = dict(suite.references or {})
    if not declared:
        return metrics_cfg
    from mova_eval.errors import ConfigError
    from mova_eval.metrics.base import ReferenceMetric
    from mova_eval.registry import metric_classes

    classes = metric_classes()
    wrong = [m for m in declared if m not in classes or not issubclass(classes[m], ReferenceMetric)]
    if wrong:
        users = sorted(m for m, c in classes.items() if issubclass(c, ReferenceMetric))
        raise ConfigError(f"suite {suite.name!r} declares references for {wrong}, which take no reference "
                          f"statistics (metrics that do: {users})")
    out = dict(metrics_cfg)
    options = {k: dict(v or {}) for k, v in (metrics_cfg.get("options") or {}).items()}
    for metric, name in declared.items():
        opts = options.setdefault(metric, {})
        if opts.get("reference") in (None, ""):
            opts["reference"] = name
            opts["reference_from"] = f"suite {suite.name} (references.{metric})"
    out["options"] = options
    return out


def build_command(name: str, metric: str, protocol: str | None) -> str:
    cmd = f"mova-eval reference build {name} --metric {metric} --from DIR"
    return cmd + (f" --protocol {protocol}" if protocol else "")


def exists(name: str, context: RunContext | None = None) -> bool:
    return (references_dir(context) / check_name(name) / "meta.json").is_file()


def list_references(context: RunContext | None = None) -> list[dict[str, Any]]:
    root = references_dir(context)
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            m = d / "meta.json"
            if m.is_file():
                out.append(json.loads(m.read_text()))
    return out


def save(name: str, meta: dict[str, Any], stats: GaussianStats, features: np.ndarray, clip_index: np.ndarray, *, force: bool = False,
         context: RunContext | None = None) -> Path:
    """Write a reference atomically (stats first, meta last: a reference without meta.json does not exist)."""
    import io

    import mova_eval

    d = references_dir(context) / check_name(name)
    if (d / "meta.json").is_file() and not force:
        raise ReferenceError(f"reference {name!r} already exists in {d}; pass --force to replace it")
    buf = io.BytesIO()
    # numpy's stub matches ** arrays against savez's allow_pickle: bool too; these keys are array names only
    np.savez(buf, **stats.to_arrays(), features=np.asarray(features, np.float32),  # type: ignore[arg-type]
             clip_index=np.asarray(clip_index))
    atomic_write_bytes(d / "stats.npz", buf.getvalue())
    full = {"name": name, **meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "created_by": f"mova-eval {mova_eval.__version__}", "format": 1}
    atomic_write_text(d / "meta.json", json.dumps(full, indent=2, sort_keys=True, default=str))
    return d


def load(name: str, *, metric: str, protocol: str | None = None, context: RunContext | None = None) -> Reference:
    """The stored reference, or ReferenceError carrying the command that builds it."""
    from mova_eval.metrics.frechet import GaussianStats

    d = references_dir(context) / check_name(name)
    if not (d / "meta.json").is_file() or not (d / "stats.npz").is_file():
        raise ReferenceError(f"reference statistics {name!r} are not built (looked in {d})",
                             build_command(name, metric, protocol))
    meta = json.loads((d / "meta.json").read_text())
    with np.load(d / "stats.npz") as z:
        stats = GaussianStats.from_arrays(z)
        feats = z["features"] if "features" in z.files else np.zeros((0, stats.dim), np.float32)
        idx = z["clip_index"] if "clip_index" in z.files else np.zeros(0, np.int64)
    return Reference(name, meta, stats, feats, idx)


def check(ref: Reference, metric: str, protocol: str, extractor: dict[str, Any]) -> Reference:
    """Refuse a reference built for another metric, protocol or set of weights (numbers would not be comparable)."""
    meta = ref.meta
    cmd = build_command(ref.name, metric, protocol) + " --force"
    if meta.get("metric") != metric:
        raise MetricUnavailable(metric, f"reference {ref.name!r} was built for {meta.get('metric')!r}, not {metric!r}", cmd)
    if meta.get("protocol") != protocol:
        raise MetricUnavailable(metric, f"reference {ref.name!r} was built with protocol {meta.get('protocol')!r}; this "
                                f"run uses {protocol!r}", cmd)
    theirs = (meta.get("extractor") or {}).get("weights_sha256")
    if theirs != extractor.get("weights_sha256"):
        raise MetricUnavailable(metric, f"reference {ref.name!r} was built with weights sha256 {theirs}, the weights "
                                f"here have {extractor.get('weights_sha256')}", cmd)
    for k in ("fps", "stride", "frames", "embedding", "sample_rate"):
        if k in extractor and (meta.get("extractor") or {}).get(k) != extractor.get(k):
            raise MetricUnavailable(metric, f"reference {ref.name!r} was built with {k}="
                                    f"{(meta.get('extractor') or {}).get(k)!r}, this run uses {extractor.get(k)!r}", cmd)
    return ref
