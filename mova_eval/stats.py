"""Aggregation of per-item values: pooled mean, mean of category means (MOVA), corpus ratios, and bootstrap 95%
CIs clustered by prompt (resampling prompts, not clips, so several seeds of one prompt move together)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Summary:
    mean: float
    ci_low: float
    ci_high: float
    n: int          # items that entered the mean
    excluded: int   # items with NaN (error or no usable content)


def aggregate_values(values: np.ndarray, categories: np.ndarray, rule: str) -> float:
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    if not ok.any():
        return float("nan")
    if rule == "category_mean":
        cats = np.asarray(categories)[ok]
        v = values[ok]
        return float(np.mean([v[cats == c].mean() for c in dict.fromkeys(cats)]))
    return float(values[ok].mean())


def _corpus(num: np.ndarray, den: np.ndarray) -> float:
    ok = np.isfinite(num) & np.isfinite(den)
    d = den[ok].sum()
    return float(num[ok].sum() / d) if d > 0 else float("nan")


def summarize(frame: pd.DataFrame, rule: str, *, n_boot: int = 1000, seed: int = 0,
              numerator: str | None = None, denominator: str | None = None) -> Summary:
    """Summary of one metric output over ``frame`` (columns value, category, item_id; for the corpus rule the
    numerator/denominator columns). The CI resamples item ids with replacement, keeping all rows of an item."""
    values = frame["value"].to_numpy(dtype=float)
    cats = frame["category"].to_numpy()
    ok = np.isfinite(values)
    n, excluded = int(ok.sum()), int((~ok).sum())
    stat: Callable[[np.ndarray], float]
    if rule == "corpus":
        num, den = frame[numerator].to_numpy(float), frame[denominator].to_numpy(float)
        stat = lambda idx: _corpus(num[idx], den[idx])  # noqa: E731
    else:
        stat = lambda idx: aggregate_values(values[idx], cats[idx], rule)  # noqa: E731
    everything = np.arange(len(frame))
    mean = stat(everything)
    if n < 2 or n_boot <= 0:
        return Summary(mean, float("nan"), float("nan"), n, excluded)
    groups = pd.factorize(frame["item_id"])[0]
    members = [np.flatnonzero(groups == g) for g in range(groups.max() + 1)]
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        boots[b] = stat(np.concatenate([members[i] for i in pick]))
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Summary(mean, float("nan"), float("nan"), n, excluded)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Summary(mean, float(lo), float(hi), n, excluded)
