"""Bradley–Terry ratings from arena votes, with a side (position) term and two kinds of 95% intervals.

Model: P(left clip wins) = σ(s_left − s_right + h), σ the logistic function, s in natural-log units, h the
advantage of being shown on side A. Displayed rating = 1000 + s · 400 / ln 10 (base 10, scale 400): a 400-point
gap means 10:1 odds. Anchoring: the strengths are constrained to sum to zero, so the **mean displayed rating is
exactly 1000** (no anchor model; MOVA's published board also averages 1000). A tie or "both bad" counts as half a
win for each side on the main board; the no-ties board drops both. The fit is the exact, unregularised maximum
likelihood (Newton's method on the sum-zero subspace) whenever it exists; when the win graph is not strongly
connected (a model that never lost), the MLE is infinite and the fit adds a small ridge, flagged in the output.

Intervals: the sandwich (robust) covariance H⁻¹ G H⁻¹ from per-vote score contributions, and a multinomial
bootstrap over votes (percentile 2.5/97.5). Rank = 1 + number of models whose interval lies entirely above this
model's interval ("Rank (UB)"). Online Elo (K = 4, in vote order) is computed only as a diagnostic.

Which votes count and how much is a ``CountingPolicy`` (probation, per-voter and per-IP weight caps, a voter/IP bias
score with shadow exclusion); the main board also reports, for the top rank and each adjacent pair, how many
counted votes would have to be dropped to reverse the order (``flip_robustness``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

BASE = 10.0
SCALE = 400.0
CENTER = 1000.0
POINTS = SCALE / math.log(BASE)  # natural-log units → rating points
Z95 = 1.959963984540054
FALLBACK_RIDGE = 1e-2
SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
TIES = ("tie", "both_bad")


# ----------------------------------------------------------------------------------------------- fitting


def _contrast(k: int) -> np.ndarray:
    """Orthonormal basis (k × k−1) of the sum-zero subspace: s = C β keeps Σ s = 0 and ‖s‖ = ‖β‖."""
    if k == 1:
        return np.zeros((1, 0))
    centred = np.eye(k) - 1.0 / k
    q, _ = np.linalg.qr(centred[:, : k - 1])
    return q


@dataclass
class BTFit:
    strengths: np.ndarray          # s, natural units, sum zero
    side: float                    # h, natural units (0 when the side term is off)
    cov_sandwich: np.ndarray       # covariance of (s_1..s_k, h) (last row/col absent without side term)
    hessian_inv: np.ndarray        # model-based covariance, same layout
    loglik: float
    iterations: int
    ridge: float
    identifiable: bool


def _aggregate(left, right, y, w):
    """Collapse votes to unique (left, right, y) rows: summed weights (for the likelihood) and summed squared
    weights (for the sandwich's meat)."""
    keys = np.stack([left, right, np.round(y * 2).astype(np.int64)], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    sw = np.bincount(inv, weights=w, minlength=len(uniq))
    sw2 = np.bincount(inv, weights=w * w, minlength=len(uniq))
    return uniq[:, 0], uniq[:, 1], uniq[:, 2] / 2.0, sw, sw2, inv


def identifiable(left, right, y, k: int, side_term: bool = False) -> bool:
    """The MLE is finite iff the 'scored at least half a point against' graph is strongly connected."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if k <= 1:
        return True
    if side_term and len(y) and (np.all(y >= 1) or np.all(y <= 0)):
        return False  # one side won every battle: the side term alone would run to infinity
    src = np.concatenate([left[y > 0], right[y < 1]])
    dst = np.concatenate([right[y > 0], left[y < 1]])
    g = coo_matrix((np.ones(len(src)), (src, dst)), shape=(k, k))
    n, _ = connected_components(g, directed=True, connection="strong")
    return n == 1


def fit_bt(left: np.ndarray, right: np.ndarray, y: np.ndarray, k: int, *, weights: np.ndarray | None = None,
           side_term: bool = True, ridge: float | None = None, init: np.ndarray | None = None,
           tol: float = 1e-12, max_iter: int = 200) -> BTFit:
    """Fit strengths for ``k`` models from votes (left index, right index, score of left ∈ {0, ½, 1}).

    ``ridge=None`` means: exact MLE when it exists, else ``FALLBACK_RIDGE``.
    """
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    L, R, Y, W, W2, _ = _aggregate(left, right, y, w)
    return _fit_rows(L, R, Y, W, W2, k, side_term=side_term, ridge=ridge, init=init, tol=tol, max_iter=max_iter)


def _fit_rows(L, R, Y, W, W2, k, *, side_term, ridge, init, tol, max_iter=200, covariance=True) -> BTFit:
    used = W > 0
    ident = identifiable(L[used], R[used], Y[used], k, side_term)
    lam = (0.0 if ident else FALLBACK_RIDGE) if ridge is None else float(ridge)
    C = _contrast(k)
    X = C[L] - C[R]
    if side_term:
        X = np.hstack([X, np.ones((len(L), 1))])
    p_dim = X.shape[1]
    pen = np.full(p_dim, lam)
    theta = np.zeros(p_dim)
    if init is not None:
        theta[: k - 1] = C.T @ init[:k]
        if side_term and len(init) > k:
            theta[-1] = init[k]

    def loss(t):
        z = X @ t
        # −Σ W [y log σ(z) + (1−y) log σ(−z)], written stably
        return float(np.sum(W * (np.logaddexp(0, -z) * Y + np.logaddexp(0, z) * (1 - Y))) + 0.5 * np.sum(pen * t * t))

    cur = loss(theta)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is read after the loop)
        z = X @ theta
        p = 1.0 / (1.0 + np.exp(-z))
        g = X.T @ (W * (p - Y)) + pen * theta
        H = (X * (W * p * (1 - p))[:, None]).T @ X + np.diag(pen)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        t_new, a = theta - step, 1.0
        new = loss(t_new)
        while new > cur + 1e-12 * max(1.0, abs(cur)) and a > 1e-8:
            a *= 0.5
            t_new = theta - a * step
            new = loss(t_new)
        theta, cur = t_new, new
        if np.max(np.abs(a * step)) < tol:
            break
    s = C @ theta[: k - 1]
    side = float(theta[-1]) if side_term else 0.0
    if not covariance:
        return BTFit(s, side, np.empty((0, 0)), np.empty((0, 0)), -cur, it, lam, ident)
    z = X @ theta
    p = 1.0 / (1.0 + np.exp(-z))
    H = (X * (W * p * (1 - p))[:, None]).T @ X + np.diag(pen)
    Hinv = np.linalg.pinv(H)
    # Meat: Σ over votes of (w (y − p))² x xᵀ, assembled from unique rows with Σ w².
    meat = (X * (W2 * (Y - p) ** 2)[:, None]).T @ X
    V = Hinv @ meat @ Hinv
    # Map back from (β, h) to (s, h).
    T = np.zeros((k + (1 if side_term else 0), p_dim))
    T[:k, : k - 1] = C
    if side_term:
        T[k, -1] = 1.0
    return BTFit(strengths=s, side=side, cov_sandwich=T @ V @ T.T, hessian_inv=T @ Hinv @ T.T, loglik=-cur,
                 iterations=it, ridge=lam, identifiable=ident)


def bootstrap(left, right, y, k: int, *, weights=None, side_term=True, n_boot: int = 200, seed: int = 0,
              init: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Multinomial bootstrap over votes: (n_boot × (k [+1])) parameter draws and the number of degenerate
    resamples (no finite MLE: refitted with the fallback ridge)."""
    left, right, y = (np.asarray(a) for a in (left, right, y))
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    L, R, Y, _, _, inv = _aggregate(left.astype(np.int64), right.astype(np.int64), y.astype(float), w)
    rng = np.random.default_rng(seed)
    draws, degenerate = [], 0
    for _ in range(n_boot):
        counts = rng.multinomial(n, np.full(n, 1.0 / n))
        W = np.bincount(inv, weights=w * counts, minlength=len(L))
        f = _fit_rows(L, R, Y, W, W, k, side_term=side_term, ridge=None, init=init, tol=1e-9, covariance=False)
        degenerate += not f.identifiable
        draws.append(np.append(f.strengths, f.side) if side_term else f.strengths)
    return np.array(draws).reshape(n_boot, -1), degenerate


# ----------------------------------------------------------------------------------------------- votes → rows


@dataclass(frozen=True)
class CountingPolicy:
    """Which votes count and how much: the defences against careless, scripted and Sybil voters.

    - **Unreliable**: a voter with at least ``min_gold`` gold answers and accuracy below ``min_gold_accuracy`` is
      excluded (all their votes are kept in the data).
    - **Probation**: a new voter's votes count only once the voter passed the gold checks (at least
      ``probation_gold`` gold answers with accuracy ≥ ``probation_gold_accuracy``) or cast ``probation_votes``
      unflagged model votes; then all their votes count, earlier ones included. Minting a fresh session per
      handful of votes therefore buys nothing. ``probation_votes=0`` turns probation off.
    - **Weight caps**: one voter's counted votes weigh at most ``cap_voter`` votes in total, one IP's (salted hash)
      at most ``cap_ip``; within the cap each vote weighs the same (``0`` = no cap).
    - **Bias score**: for each voter and each IP, and each model, z = (observed − predicted score of that model in
      their votes) / sd under the board's own fit (side term included); the score is max |z| over models. A voter or
      IP with at least ``bias_min_votes`` counted votes and a score ≥ ``bias_z`` is shadow-excluded (reason
      ``biased_voter`` / ``biased_ip``) and the board is refitted without them (``0`` = off).
    """

    min_gold: int = 3
    min_gold_accuracy: float = 0.5
    probation_gold: int = 2
    probation_gold_accuracy: float = 0.75
    probation_votes: int = 20
    cap_voter: float = 30.0
    cap_ip: float = 60.0
    bias_z: float = 5.0
    bias_min_votes: int = 10

    def describe(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


OPEN = CountingPolicy(probation_votes=0, cap_voter=0.0, cap_ip=0.0, bias_z=0.0)  # every unflagged vote, weight 1


def counting_votes(votes: pd.DataFrame, *, min_gold: int | None = None, min_gold_accuracy: float | None = None,
                   policy: CountingPolicy | None = None) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
    """Split votes into those that count for ratings and the rest, with the reason for each exclusion.

    A model vote counts when it carries no flag, its voter is reliable and off probation (``CountingPolicy``).
    The counted votes get a ``weight`` column (the per-voter and per-IP caps). Returns (counted model votes,
    exclusion counts, per-voter gold reliability). The bias screen needs a fit and is applied by ``leaderboard``.
    """
    policy = policy or CountingPolicy()
    if min_gold is not None or min_gold_accuracy is not None:
        policy = replace(policy, min_gold=policy.min_gold if min_gold is None else min_gold,
                         min_gold_accuracy=policy.min_gold_accuracy if min_gold_accuracy is None else min_gold_accuracy)
    v = votes.copy()
    if v.empty:
        v["weight"] = pd.Series(dtype=float)
        return v, {}, pd.DataFrame(columns=["voter", "gold_n", "gold_correct", "accuracy", "reliable", "trusted"])
    v["flags"] = v["flags"].map(_as_list)
    if "ip_hash" not in v:
        v["ip_hash"] = ""
    gold = v[v["kind"] == "gold"]
    rel = (gold.assign(correct=(gold["choice"] == gold["gold_answer"]).astype(int))
               .groupby("voter").agg(gold_n=("correct", "size"), gold_correct=("correct", "sum")).reset_index())
    rel["accuracy"] = rel["gold_correct"] / rel["gold_n"]
    rel["reliable"] = ~((rel["gold_n"] >= policy.min_gold) & (rel["accuracy"] < policy.min_gold_accuracy))
    unreliable = set(rel.loc[~rel["reliable"], "voter"])
    model = v[v["kind"] == "model"]
    clean = model["flags"].map(len) == 0
    # Trusted: passed the gold checks, or cast enough unflagged model votes.
    passed = set(rel.loc[(rel["gold_n"] >= policy.probation_gold)
                         & (rel["accuracy"] >= policy.probation_gold_accuracy), "voter"])
    n_clean = model[clean].groupby("voter").size()
    trusted = passed | set(n_clean[n_clean >= policy.probation_votes].index)
    rel["trusted"] = rel["voter"].isin(trusted) if policy.probation_votes else True
    reasons: dict[str, int] = {}
    keep = []
    for flags, voter in zip(model["flags"], model["voter"]):
        if flags:
            for f in flags:
                reasons[f] = reasons.get(f, 0) + 1
            keep.append(False)
        elif voter in unreliable:
            reasons["unreliable_voter"] = reasons.get("unreliable_voter", 0) + 1
            keep.append(False)
        elif policy.probation_votes and voter not in trusted:
            reasons["probation"] = reasons.get("probation", 0) + 1
            keep.append(False)
        else:
            keep.append(True)
    counted = model[np.array(keep, dtype=bool)].copy() if len(model) else model.copy()
    counted["weight"] = capped_weights(counted, policy)
    return counted, dict(sorted(reasons.items())), rel


def capped_weights(counted: pd.DataFrame, policy: CountingPolicy) -> np.ndarray:
    """Per-vote weights: each voter's votes scaled to weigh at most ``cap_voter`` in total, then each IP's (already
    voter-capped) votes scaled to weigh at most ``cap_ip``."""
    w = np.ones(len(counted))
    if not len(counted):
        return w
    if policy.cap_voter:
        n = counted.groupby("voter")["voter"].transform("size").to_numpy(float)
        w = np.minimum(1.0, policy.cap_voter / n)
    if policy.cap_ip:
        total = pd.Series(w, index=counted.index).groupby(counted["ip_hash"]).transform("sum").to_numpy(float)
        w = w * np.minimum(1.0, policy.cap_ip / total)
    return w


def bias_scores(counted: pd.DataFrame, main: dict[str, Any], by: str) -> pd.DataFrame:
    """Per group (voter or IP): number of votes and max over models of |z|, z = (O − E)/sd of that model's score
    in the group's votes under the board's fit (``main``: ``board`` output with its fitted side term)."""
    rating_of = {r["model"]: r["rating"] for r in main.get("models", [])}
    h = (main.get("side") or {}).get("points", 0.0) / POINTS
    if counted.empty or not rating_of:
        return pd.DataFrame(columns=[by, "n", "score", "model"])
    sa = counted["model_a"].map(rating_of).to_numpy(float) / POINTS
    sb = counted["model_b"].map(rating_of).to_numpy(float) / POINTS
    p = 1.0 / (1.0 + np.exp(-(sa - sb + h)))
    y = counted["choice"].map(SCORE).to_numpy(float)
    # Each vote gives one observation for each of its two models: (group, model, observed, expected, variance).
    rows = pd.DataFrame({by: np.concatenate([counted[by].to_numpy(), counted[by].to_numpy()]),
                         "model": np.concatenate([counted["model_a"].to_numpy(), counted["model_b"].to_numpy()]),
                         "o": np.concatenate([y, 1 - y]), "e": np.concatenate([p, 1 - p]),
                         "var": np.concatenate([p * (1 - p), p * (1 - p)])})
    g = rows.groupby([by, "model"]).agg(o=("o", "sum"), e=("e", "sum"), var=("var", "sum")).reset_index()
    g["z"] = (g["o"] - g["e"]) / np.sqrt(np.maximum(g["var"], 1e-12))
    g["absz"] = g["z"].abs()
    best = g.sort_values([by, "absz"], ascending=[True, False]).groupby(by).head(1)
    n = counted.groupby(by).size().rename("n")
    out = best.set_index(by)[["absz", "model"]].rename(columns={"absz": "score"}).join(n).reset_index()
    return out[[by, "n", "score", "model"]]


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return list(json.loads(x)) if x.strip() else []
    if isinstance(x, float) and math.isnan(x):
        return []
    return list(x)


# ----------------------------------------------------------------------------------------------- boards


def _ci(center: float, se: float) -> list[float]:
    return [center - Z95 * se, center + Z95 * se]


def rank_ub(lower: Sequence[float], upper: Sequence[float]) -> list[int]:
    """1 + number of models whose lower bound exceeds this model's upper bound."""
    lo = np.asarray(lower)
    return [int(1 + np.sum(lo > u)) for u in upper]


def board(votes: pd.DataFrame, *, ties: str = "half", side_term: bool = True, n_boot: int = 200, seed: int = 0,
          ci: str = "sandwich", provisional_votes: int = 50, reweight: bool = False,
          models: Iterable[str] | None = None, robustness: bool = False) -> dict[str, Any]:
    """One leaderboard from counted model votes (columns model_a, model_b, choice[, pair_prob])."""
    if ties not in ("half", "drop"):
        raise ValueError("ties must be 'half' or 'drop'")
    v = votes if ties == "half" else votes[~votes["choice"].isin(TIES)]
    names = sorted(set(v["model_a"]) | set(v["model_b"]) | set(models or []))
    out: dict[str, Any] = {"ties": ties, "n_votes": int(len(v)), "ci_method": ci, "side_term": side_term,
                           "reweighted": reweight, "models": [], "side": None}
    if len(names) < 2 or len(v) == 0:
        out["note"] = "fewer than two models with votes"
        return out
    idx = {m: i for i, m in enumerate(names)}
    k = len(names)
    left = v["model_a"].map(idx).to_numpy(np.int64)
    right = v["model_b"].map(idx).to_numpy(np.int64)
    y = v["choice"].map(SCORE).to_numpy(float)
    w = None
    if reweight:
        # Inverse-propensity weights: votes count as if every pair had been sampled uniformly.
        n_pairs = k * (k - 1) / 2
        w = 1.0 / (n_pairs * v["pair_prob"].to_numpy(float))
        w = w / w.mean()
    if "weight" in v and not np.all(v["weight"].to_numpy(float) == 1.0):
        w = v["weight"].to_numpy(float) * (1.0 if w is None else w)  # per-voter / per-IP caps
    fit = fit_bt(left, right, y, k, weights=w, side_term=side_term)
    se_s = np.sqrt(np.clip(np.diag(fit.cov_sandwich)[:k], 0, None))
    draws, degenerate = (bootstrap(left, right, y, k, weights=w, side_term=side_term, n_boot=n_boot, seed=seed,
                                   init=np.append(fit.strengths, fit.side)) if n_boot else (None, 0))
    rating = CENTER + POINTS * fit.strengths
    ci_s = [_ci(r, POINTS * se) for r, se in zip(rating, se_s)]
    if draws is not None:
        q = np.quantile(CENTER + POINTS * draws[:, :k], [0.025, 0.975], axis=0)
        ci_b = [[float(q[0, i]), float(q[1, i])] for i in range(k)]
    else:
        ci_b = [None] * k
    chosen = ci_b if (ci == "bootstrap" and draws is not None) else ci_s
    ranks = rank_ub([c[0] for c in chosen], [c[1] for c in chosen])
    all_counts = _counts(votes, names)
    rows = []
    for i, m in enumerate(names):
        c = all_counts[m]
        rows.append({"model": m, "rating": float(rating[i]), "ci_sandwich": [float(x) for x in ci_s[i]],
                     "ci_bootstrap": ci_b[i], "rank": ranks[i], "votes": c["votes"],
                     "wins": c["wins"], "losses": c["losses"], "ties": c["ties"], "both_bad": c["both_bad"],
                     "both_bad_rate": c["both_bad"] / c["votes"] if c["votes"] else None,
                     "provisional": c["votes"] < provisional_votes})
    rows.sort(key=lambda r: (-r["rating"], r["model"]))
    out["models"] = rows
    if side_term:
        se_h = math.sqrt(max(fit.cov_sandwich[k, k], 0.0))
        side = {"points": POINTS * fit.side, "ci_sandwich": [POINTS * x for x in _ci(fit.side, se_h)],
                "p_a_wins_at_parity": 1.0 / (1.0 + math.exp(-fit.side))}
        if draws is not None:
            qh = np.quantile(POINTS * draws[:, k], [0.025, 0.975])
            side["ci_bootstrap"] = [float(qh[0]), float(qh[1])]
        out["side"] = side
    out.update({"identifiable": fit.identifiable, "ridge": fit.ridge, "bootstrap_rounds": n_boot,
                "bootstrap_degenerate": degenerate, "seed": seed, "provisional_votes": provisional_votes})
    if robustness:
        out["robustness"] = flip_robustness(left, right, y, k, names, fit, weights=w, side_term=side_term)
    return out


def flip_robustness(left, right, y, k: int, names: list[str], fit: BTFit, *, weights=None, side_term: bool = True,
                    max_refits: int = 16) -> dict[str, Any]:
    """How many counted votes must be dropped to reverse the order of each adjacent pair (and so the top rank).

    The candidates are ranked by their first-order influence on the pair's gap (removing vote v changes the
    strengths by ≈ H⁻¹ g_v, g_v its score contribution); the smallest number k of the most supportive votes whose
    removal reverses the order on an actual refit is found by doubling and then bisection over k (refits, not the
    linear approximation, decide). Weights (caps, reweighting) are held fixed. ``votes_to_flip`` is None when
    dropping every supportive vote does not reverse the pair.
    """
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    y = np.asarray(y, float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    h = fit.side if side_term else 0.0
    p = 1.0 / (1.0 + np.exp(-(fit.strengths[left] - fit.strengths[right] + h)))
    resid = w * (p - y)                       # d loss / d z per vote
    order = np.argsort(-fit.strengths, kind="stable")
    dim = k + (1 if side_term else 0)
    pairs = []
    for upper, lower in zip(order[:-1], order[1:]):
        c = np.zeros(dim)
        c[upper], c[lower] = 1.0, -1.0
        a = fit.hessian_inv @ c               # Δgap_v = cᵀ H⁻¹ u_v resid_v, u_v = e_left − e_right (+ side)
        delta = (a[left] - a[right] + (a[k] if side_term else 0.0)) * resid
        cand = np.argsort(delta, kind="stable")
        cand = cand[delta[cand] < 0]          # votes whose removal narrows the gap

        def flipped(n_drop: int, cand=cand, lower=lower, upper=upper) -> bool:
            keep = np.ones(len(y), bool)
            keep[cand[:n_drop]] = False
            f = fit_bt(left[keep], right[keep], y[keep], k, weights=w[keep], side_term=side_term, tol=1e-9)
            return bool(f.strengths[lower] >= f.strengths[upper])

        gap = float(POINTS * (fit.strengths[upper] - fit.strengths[lower]))
        need, refits = None, 0
        if len(cand) and gap > 0:
            # First guess from the linear approximation, then double until the refit flips, then bisect.
            est = int(np.searchsorted(-np.cumsum(delta[cand]), fit.strengths[upper] - fit.strengths[lower]) + 1)
            hi = min(max(est, 1), len(cand))
            lo, found = 0, False
            while refits < max_refits:
                refits += 1
                if flipped(hi):
                    found = True
                    break
                lo = hi
                if hi == len(cand):
                    break
                hi = min(2 * hi, len(cand))
            if found:  # lo: verified not enough; hi: verified enough
                while hi - lo > 1 and refits < max_refits:
                    mid = (lo + hi) // 2
                    refits += 1
                    if flipped(mid):
                        hi = mid
                    else:
                        lo = mid
                need = hi
        elif gap <= 0:
            need = 0
        pairs.append({"upper": names[upper], "lower": names[lower], "gap_points": gap, "votes_to_flip": need,
                      "share_of_votes": (need / len(y)) if need is not None and len(y) else None})
    return {"method": "drop the most influential supportive votes (influence-ranked, refit-verified)",
            "n_votes": int(len(y)), "top": pairs[0]["votes_to_flip"] if pairs else None, "pairs": pairs}


def _counts(votes: pd.DataFrame, names: list[str]) -> dict[str, dict[str, int]]:
    c = {m: {"votes": 0, "wins": 0, "losses": 0, "ties": 0, "both_bad": 0} for m in names}
    for a, b, ch in zip(votes["model_a"], votes["model_b"], votes["choice"]):
        for m in (a, b):
            if m in c:
                c[m]["votes"] += 1
        if ch == "tie":
            c[a]["ties"] += 1
            c[b]["ties"] += 1
        elif ch == "both_bad":
            c[a]["both_bad"] += 1
            c[b]["both_bad"] += 1
        else:
            win, lose = (a, b) if ch == "a" else (b, a)
            c[win]["wins"] += 1
            c[lose]["losses"] += 1
    return c


def matrices(votes: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    """Battle counts (all counted votes) and the fraction of decisive battles won by the row model."""
    idx = {m: i for i, m in enumerate(names)}
    k = len(names)
    count = np.zeros((k, k), dtype=int)
    wins = np.zeros((k, k), dtype=int)
    for a, b, ch in zip(votes["model_a"], votes["model_b"], votes["choice"]):
        i, j = idx[a], idx[b]
        count[i, j] += 1
        count[j, i] += 1
        if ch == "a":
            wins[i, j] += 1
        elif ch == "b":
            wins[j, i] += 1
    decisive = wins + wins.T
    rate = [[(wins[i, j] / decisive[i, j]) if decisive[i, j] else None for j in range(k)] for i in range(k)]
    return {"models": names, "battle_count": count.tolist(), "win_rate": rate}


def online_elo(votes: pd.DataFrame, k_factor: float = 4.0) -> dict[str, float]:
    """Sequential Elo in vote order — order-dependent, so only a diagnostic beside the BT board."""
    r: dict[str, float] = {}
    for a, b, ch in zip(votes["model_a"], votes["model_b"], votes["choice"]):
        ra, rb = r.setdefault(a, CENTER), r.setdefault(b, CENTER)
        e = 1.0 / (1.0 + BASE ** ((rb - ra) / SCALE))
        d = k_factor * (SCORE[ch] - e)
        r[a], r[b] = ra + d, rb - d
    return dict(sorted(r.items()))


def screen_bias(counted: pd.DataFrame, excluded: dict[str, int], policy: CountingPolicy, *, reweight: bool = False
                ) -> tuple[pd.DataFrame, dict[str, int], dict[str, list[str]]]:
    """The bias screen: fit the counted votes once, shadow-exclude voters and IPs whose bias score reaches
    ``policy.bias_z`` (with at least ``bias_min_votes`` votes), recompute the caps. Returns (counted, exclusion counts
    with ``biased_voter``/``biased_ip`` added, the excluded pseudonyms by column)."""
    biased: dict[str, list[str]] = {"voter": [], "ip_hash": []}
    excluded = dict(excluded)
    if not policy.bias_z or not len(counted):
        return counted, excluded, biased
    first = board(counted, ties="half", n_boot=0, reweight=reweight)
    drop = np.zeros(len(counted), bool)
    for col, reason in (("voter", "biased_voter"), ("ip_hash", "biased_ip")):
        sc = bias_scores(counted, first, col)
        bad = sc[(sc["n"] >= policy.bias_min_votes) & (sc["score"] >= policy.bias_z)][col]
        biased[col] = sorted(str(x) for x in bad)
        hit = counted[col].isin(set(bad)).to_numpy() & ~drop
        if hit.any():
            excluded[reason] = int(hit.sum())
            drop |= hit
    if drop.any():
        counted = counted[~drop].copy()
        counted["weight"] = capped_weights(counted, policy)
    return counted, dict(sorted(excluded.items())), biased


def leaderboard(votes: pd.DataFrame, *, n_boot: int = 200, seed: int = 0, ci: str = "sandwich",
                provisional_votes: int = 50, min_gold: int | None = None, min_gold_accuracy: float | None = None,
                reweight: bool = False, min_group_votes: int = 1, policy: CountingPolicy | None = None
                ) -> dict[str, Any]:
    """Everything the board shows, computed only from the vote table (so an export reproduces it)."""
    policy = policy or CountingPolicy()
    if min_gold is not None or min_gold_accuracy is not None:
        policy = replace(policy, min_gold=policy.min_gold if min_gold is None else min_gold,
                         min_gold_accuracy=policy.min_gold_accuracy if min_gold_accuracy is None else min_gold_accuracy)
    votes = votes.sort_values("id", kind="stable").reset_index(drop=True) if len(votes) else votes
    counted, excluded, rel = counting_votes(votes, policy=policy)
    opts = dict(n_boot=n_boot, seed=seed, ci=ci, provisional_votes=provisional_votes, reweight=reweight)
    n_model = int((votes["kind"] == "model").sum()) if len(votes) else 0
    counted, excluded, biased = screen_bias(counted, excluded, policy, reweight=reweight)
    out: dict[str, Any] = {
        "method": {"model": "Bradley-Terry MLE", "base": BASE, "scale": SCALE, "center": CENTER,
                   "anchoring": "strengths sum to zero: the mean rating is 1000", "ties": "half a win (main board)",
                   "ci": ci, "bootstrap_rounds": n_boot, "seed": seed, "rank": "1 + models significantly better",
                   "provisional_under_votes": provisional_votes, "reweighted": reweight,
                   "gold_rule": f"voters with >= {policy.min_gold} gold answers and accuracy < "
                                f"{policy.min_gold_accuracy} excluded",
                   "counting_policy": policy.describe()},
        "counts": {"votes": int(len(votes)), "model_votes": n_model, "counted": int(len(counted)),
                   "excluded": int(n_model - len(counted)), "excluded_by_reason": excluded,
                   "effective_votes": float(counted["weight"].sum()) if len(counted) else 0.0,
                   "gold_votes": int((votes["kind"] == "gold").sum()) if len(votes) else 0,
                   "voters": int(votes["voter"].nunique()) if len(votes) else 0,
                   "unreliable_voters": int((~rel["reliable"]).sum()) if len(rel) else 0,
                   "biased_voters": len(biased["voter"]), "biased_ips": len(biased["ip_hash"])},
    }
    if len(counted) == 0:
        out["main"] = {"models": [], "n_votes": 0, "note": "no counted votes yet"}
        return out
    out["main"] = board(counted, ties="half", robustness=True, **opts)
    out["no_ties"] = board(counted, ties="drop", **opts)
    names = [r["model"] for r in out["main"]["models"]]
    out["matrices"] = matrices(counted, names)
    out["elo_online_diagnostic"] = online_elo(counted)
    out["categories"] = {}
    for cat, sub in counted.groupby("category", sort=True):
        if len(sub) >= min_group_votes and len(set(sub["model_a"]) | set(sub["model_b"])) >= 2:
            out["categories"][str(cat)] = board(sub, ties="half", **opts)
    out["languages"] = {}
    for lang, sub in counted.groupby("language", sort=True):
        if len(sub) >= min_group_votes and len(set(sub["model_a"]) | set(sub["model_b"])) >= 2:
            out["languages"][str(lang)] = board(sub, ties="half", **opts)
    return out


def to_markdown(lb: dict[str, Any]) -> str:
    """The board as Markdown: main table, side term, no-ties table, exclusions."""
    lines = ["# Arena leaderboard", ""]
    c = lb["counts"]
    lines.append(f"{c['counted']} counted votes of {c['model_votes']} model votes "
                 f"({c['excluded']} excluded: {json.dumps(c['excluded_by_reason'])}); {c['gold_votes']} gold votes; "
                 f"{c['voters']} voters ({c['unreliable_voters']} unreliable).")
    lines.append("")
    m = lb["method"]
    lines.append(f"Bradley–Terry MLE, base {m['base']:g}, scale {m['scale']:g}, mean rating {m['center']:g}; "
                 f"95% CI: sandwich and bootstrap ({m['bootstrap_rounds']} rounds); rank = {m['rank']}.")
    for title, key in (("Main board (ties = half a win)", "main"), ("Without ties", "no_ties")):
        b = lb.get(key)
        if not b or not b.get("models"):
            continue
        lines += ["", f"## {title}", "", "| Rank | Model | Rating | 95% CI (sandwich) | 95% CI (bootstrap) | Votes | "
                  "W/L/T/BB |", "| ---: | --- | ---: | --- | --- | ---: | --- |"]
        for r in b["models"]:
            prov = " (provisional)" if r["provisional"] else ""
            cs, cb = r["ci_sandwich"], r["ci_bootstrap"] or [math.nan, math.nan]
            lines.append(f"| {r['rank']} | {r['model']}{prov} | {r['rating']:.1f} | [{cs[0]:.1f}, {cs[1]:.1f}] | "
                         f"[{cb[0]:.1f}, {cb[1]:.1f}] | {r['votes']} | {r['wins']}/{r['losses']}/{r['ties']}/"
                         f"{r['both_bad']} |")
        if b.get("side"):
            s = b["side"]
            lines.append("")
            lines.append(f"Side A advantage: {s['points']:+.1f} points, 95% CI [{s['ci_sandwich'][0]:+.1f}, "
                         f"{s['ci_sandwich'][1]:+.1f}] (P(A wins at equal strength) = {s['p_a_wins_at_parity']:.3f}).")
        if not b.get("identifiable", True):
            lines.append(f"Note: no finite MLE (a model never lost); ridge {b['ridge']:g} applied.")
        if b.get("robustness"):
            lines += ["", "Votes that would have to be dropped to swap neighbours: " + "; ".join(
                f"{p['upper']} > {p['lower']}: {p['votes_to_flip'] if p['votes_to_flip'] is not None else 'n/a'}"
                for p in b["robustness"]["pairs"]) + "."]
    for group in ("categories", "languages"):
        for name, b in (lb.get(group) or {}).items():
            lines += ["", f"## {group[:-1] if group != 'categories' else 'category'}: {name}", "",
                      "| Rank | Model | Rating | 95% CI | Votes |", "| ---: | --- | ---: | --- | ---: |"]
            for r in b["models"]:
                cs = r["ci_sandwich"]
                lines.append(f"| {r['rank']} | {r['model']} | {r['rating']:.1f} | [{cs[0]:.1f}, {cs[1]:.1f}] | "
                             f"{r['votes']} |")
    return "\n".join(lines) + "\n"
