import math

import numpy as np
import pandas as pd

from mova_eval.stats import aggregate_values, summarize


def _frame(values, cats, items=None):
    items = items or [f"i{k}" for k in range(len(values))]
    return pd.DataFrame({"value": values, "category": cats, "item_id": items})


def test_category_mean_differs_from_pooled_mean_as_mova_reports():
    values = np.array([1.0, 1.0, 1.0, 4.0])
    cats = np.array(["a", "a", "a", "b"])
    assert aggregate_values(values, cats, "pooled_mean") == 1.75
    assert aggregate_values(values, cats, "category_mean") == 2.5


def test_nan_is_excluded_and_counted():
    s = summarize(_frame([1.0, math.nan, 3.0], ["a", "a", "a"]), "pooled_mean", n_boot=200)
    assert s.mean == 2.0 and s.n == 2 and s.excluded == 1
    assert s.ci_low <= s.mean <= s.ci_high


def test_all_nan_gives_nan_not_zero():
    s = summarize(_frame([math.nan, math.nan], ["a", "a"]), "category_mean", n_boot=100)
    assert math.isnan(s.mean) and s.n == 0 and s.excluded == 2


def test_bootstrap_is_clustered_by_prompt():
    rng = np.random.default_rng(1)
    base = rng.normal(size=30)
    # every prompt scored three times identically: clustering must give the same CI as one row per prompt
    single = summarize(_frame(list(base), ["a"] * 30), "pooled_mean", n_boot=400, seed=3)
    items = [f"p{k}" for k in range(30) for _ in range(3)]
    triple = summarize(_frame(list(np.repeat(base, 3)), ["a"] * 90, items), "pooled_mean", n_boot=400, seed=3)
    assert np.isclose(single.mean, triple.mean)
    assert np.isclose(single.ci_low, triple.ci_low) and np.isclose(single.ci_high, triple.ci_high)
    # treating the 90 rows as independent would shrink the interval by about sqrt(3)
    naive = summarize(_frame(list(np.repeat(base, 3)), ["a"] * 90), "pooled_mean", n_boot=400, seed=3)
    assert (naive.ci_high - naive.ci_low) < 0.75 * (triple.ci_high - triple.ci_low)


def test_corpus_rule_is_ratio_of_sums():
    f = _frame([0.5, 0.0], ["a", "a"])
    f["num"], f["den"] = [1.0, 0.0], [2.0, 8.0]
    s = summarize(f, "corpus", n_boot=100, numerator="num", denominator="den")
    assert s.mean == 0.1  # (1 + 0) / (2 + 8), not the mean of per-item rates (0.25)
