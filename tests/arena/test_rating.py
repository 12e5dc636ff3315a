"""Rating math: recovery of known strengths, parity with choix and with a direct logistic-regression fit, CIs,
side term, ranks, ties, degenerate data, online Elo."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mova_eval.arena import rating


def simulate(true_points, n, *, side_points=0.0, tie_rate=0.0, seed=0):
    """Votes from a BT model with known ratings (points), random pairs and sides, optional ties."""
    rng = np.random.default_rng(seed)
    k = len(true_points)
    names = [f"m{i}" for i in range(k)]
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    z = (np.asarray(true_points)[a] - np.asarray(true_points)[b] + side_points) / rating.POINTS
    p = 1 / (1 + np.exp(-z))
    tie = rng.random(n) < tie_rate
    win = rng.random(n) < p
    choice = np.where(tie, "tie", np.where(win, "a", "b"))
    return pd.DataFrame({"id": np.arange(n), "kind": "model", "choice": choice, "model_a": [names[i] for i in a],
                         "model_b": [names[i] for i in b], "pair_prob": 1.0, "flags": [[] for _ in range(n)],
                         "voter": "v", "category": "c", "language": "en", "gold_answer": None}), names


def test_simulated_votes_recover_the_order_and_scale():
    true = [1150, 1080, 1000, 940, 830]
    votes, names = simulate(true, 6000, side_points=25.0, seed=1)
    b = rating.board(votes, n_boot=50)
    got = [r["model"] for r in b["models"]]
    assert got == names  # m0 strongest … m4 weakest
    est = {r["model"]: r["rating"] for r in b["models"]}
    centred = np.array(true) - np.mean(true) + 1000
    for name, t in zip(names, centred):
        assert abs(est[name] - t) < 30, (name, est[name], t)
    # The mean rating is the anchor: exactly 1000.
    assert abs(np.mean(list(est.values())) - 1000) < 1e-9
    # The side term is estimated and its interval covers the truth.
    lo, hi = b["side"]["ci_sandwich"]
    assert lo < 25.0 < hi and b["side"]["points"] > 0
    # Sandwich and bootstrap intervals agree in width (within 35 %).
    for r in b["models"]:
        ws = r["ci_sandwich"][1] - r["ci_sandwich"][0]
        wb = r["ci_bootstrap"][1] - r["ci_bootstrap"][0]
        assert 0.65 < wb / ws < 1.35


def test_fit_equals_choix_without_ties_or_side_term():
    choix = pytest.importorskip("choix", reason="choix (requirements/test-nodeps.txt) is the reference BT fit")
    votes, names = simulate([1100, 1050, 1000, 900, 950, 1010], 1200, seed=2)
    idx = {m: i for i, m in enumerate(names)}
    a = votes["model_a"].map(idx).to_numpy()
    b = votes["model_b"].map(idx).to_numpy()
    y = (votes["choice"] == "a").to_numpy(float)
    ours = rating.fit_bt(a, b, y, len(names), side_term=False)
    data = [(i, j) if yy else (j, i) for i, j, yy in zip(a, b, y)]
    ref = choix.opt_pairwise(len(names), data, alpha=0.0, method="Newton-CG", tol=1e-12)
    ref = ref - ref.mean()
    assert ours.identifiable and ours.ridge == 0.0
    np.testing.assert_allclose(ours.strengths, ref, atol=1e-6, rtol=0)


def test_fit_equals_direct_logistic_regression_with_ties_and_side_term():
    """The reference: maximise the plain log-likelihood with scipy (BFGS), model 0 pinned at 0, then centre."""
    from scipy.optimize import minimize

    votes, names = simulate([1100, 1000, 950, 1040], 2500, side_points=40, tie_rate=0.15, seed=3)
    idx = {m: i for i, m in enumerate(names)}
    a = votes["model_a"].map(idx).to_numpy()
    b = votes["model_b"].map(idx).to_numpy()
    y = votes["choice"].map(rating.SCORE).to_numpy(float)
    k = len(names)

    def nll(theta):
        s = np.concatenate([[0.0], theta[: k - 1]])
        z = s[a] - s[b] + theta[-1]
        return np.sum(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))

    res = minimize(nll, np.zeros(k), method="BFGS", options={"gtol": 1e-10})
    s_ref = np.concatenate([[0.0], res.x[: k - 1]])
    s_ref -= s_ref.mean()
    ours = rating.fit_bt(a, b, y, k, side_term=True)
    np.testing.assert_allclose(ours.strengths, s_ref, atol=1e-6, rtol=0)
    assert abs(ours.side - res.x[-1]) < 1e-6
    # Sandwich = model-based covariance when the model is right, roughly (same order of magnitude).
    ratio = np.diag(ours.cov_sandwich)[:k] / np.diag(ours.hessian_inv)[:k]
    assert np.all((ratio > 0.5) & (ratio < 2.0))


def test_ties_are_half_wins_and_the_no_ties_board_drops_them():
    votes, _ = simulate([1000, 1000], 10, seed=0)
    votes["model_a"], votes["model_b"] = "x", "y"
    votes["choice"] = ["a", "a", "a", "b", "tie", "tie", "both_bad", "both_bad", "tie", "b"]
    main = rating.board(votes, side_term=False, n_boot=0)
    # x scored 3 + 3 + 2·0.5 … = 3 wins + 5 half-points = 5.5 of 10 → logit(0.55) natural units apart.
    gap = main["models"][0]["rating"] - main["models"][1]["rating"]
    assert main["models"][0]["model"] == "x"
    assert abs(gap - rating.POINTS * math.log(0.55 / 0.45)) < 1e-6
    no_ties = rating.board(votes, ties="drop", side_term=False, n_boot=0)
    gap2 = no_ties["models"][0]["rating"] - no_ties["models"][1]["rating"]
    assert no_ties["n_votes"] == 5 and abs(gap2 - rating.POINTS * math.log(3 / 2)) < 1e-6
    row = {r["model"]: r for r in main["models"]}["x"]
    assert (row["wins"], row["losses"], row["ties"], row["both_bad"]) == (3, 2, 3, 2)
    assert row["both_bad_rate"] == 0.2


def test_rank_counts_models_significantly_better():
    assert rating.rank_ub([1100, 1050, 900, 880], [1200, 1120, 1000, 960]) == [1, 1, 3, 3]
    assert rating.rank_ub([1100, 1005, 900], [1200, 1120, 1010]) == [1, 1, 2]
    assert rating.rank_ub([10, 10], [20, 20]) == [1, 1]


def test_model_that_never_lost_gets_a_finite_flagged_fit():
    votes, _ = simulate([1000, 1000, 1000], 30, seed=4)
    votes["model_a"] = ["m0"] * 10 + ["m1"] * 10 + ["m2"] * 10
    votes["model_b"] = ["m1"] * 10 + ["m2"] * 10 + ["m0"] * 10
    votes["choice"] = ["a"] * 10 + ["a"] * 5 + ["b"] * 5 + ["b"] * 10   # m0 beat m1 and m2 every time
    b = rating.board(votes, side_term=True, n_boot=20)
    assert b["identifiable"] is False and b["ridge"] > 0
    assert b["models"][0]["model"] == "m0"
    assert all(math.isfinite(r["rating"]) for r in b["models"])
    assert b["bootstrap_degenerate"] > 0


def test_provisional_flag_and_matrices():
    votes, names = simulate([1100, 1000, 900], 150, seed=5)
    b = rating.board(votes, n_boot=0, provisional_votes=101)
    counts = {r["model"]: r["votes"] for r in b["models"]}
    assert sum(counts.values()) == 300
    for r in b["models"]:
        assert r["provisional"] == (r["votes"] < 101)
    m = rating.matrices(votes, names)
    cnt = np.array(m["battle_count"])
    assert (cnt == cnt.T).all() and cnt.sum() == 300
    w = m["win_rate"]
    for i in range(3):
        for j in range(3):
            if i != j and w[i][j] is not None:
                assert abs(w[i][j] + w[j][i] - 1) < 1e-12


def test_online_elo_is_order_dependent_and_zero_sum():
    votes, _ = simulate([1100, 1000, 900], 600, seed=6)
    e1 = rating.online_elo(votes)
    e2 = rating.online_elo(votes.iloc[::-1])
    assert abs(sum(e1.values()) - 3000) < 1e-9
    assert max(abs(e1[m] - e2[m]) for m in e1) > 0.1


def test_leaderboard_groups_and_exclusions():
    votes, _ = simulate([1100, 1000], 200, seed=7)
    votes["category"] = np.where(np.arange(200) % 2, "set1", "set2")
    votes["language"] = np.where(np.arange(200) % 4 == 0, "zh", "en")
    votes.loc[:9, "flags"] = pd.Series([["listen_short"]] * 10)
    lb = rating.leaderboard(votes, n_boot=10)
    assert lb["counts"]["counted"] == 190 and lb["counts"]["excluded_by_reason"] == {"listen_short": 10}
    assert set(lb["categories"]) == {"set1", "set2"} and set(lb["languages"]) == {"en", "zh"}
    md = rating.to_markdown(lb)
    assert "Main board" in md and "Side A advantage" in md and "category: set1" in md


def test_inverse_propensity_weights_undo_oversampling():
    """Pair (m0, m1) sampled 4× as often as the others, and in that pair m0 over-performs its true strength: the
    reweighted fit must weight that pair like every other one (checked against a fit on the unweighted rows with
    explicit weights)."""
    votes, names = simulate([1050, 1000, 950], 900, seed=8)
    pair = votes[["model_a", "model_b"]].apply(lambda r: tuple(sorted(r)), axis=1)
    votes["pair_prob"] = np.where(pair == ("m0", "m1"), 4 / 6, 1 / 6)
    weighted = rating.board(votes, n_boot=0, reweight=True)
    idx = {m: i for i, m in enumerate(names)}
    w = 1.0 / (3 * votes["pair_prob"].to_numpy())
    w = w / w.mean()
    f = rating.fit_bt(votes["model_a"].map(idx), votes["model_b"].map(idx), votes["choice"].map(rating.SCORE),
                      3, weights=w)
    got = {r["model"]: r["rating"] for r in weighted["models"]}
    for m, i in idx.items():
        assert abs(got[m] - (rating.CENTER + rating.POINTS * f.strengths[i])) < 1e-9
