"""Which two clips a voter sees next: coverage first, then the least certain pairs; every probability recorded.

Pair rule: while some model pair has fewer than ``coverage_target`` battles issued, only those pairs are drawn,
with weight ``coverage_target − issued`` (the least covered first). Once every pair is covered, a pair is drawn with
probability ∝ Var(s_i − s_j) from the latest rating fit (the pair whose order is least certain), mixed with
``uniform_floor`` of the uniform distribution so that every pair keeps a positive probability (needed for
inverse-propensity weighting). Then a prompt that both models have clips for is drawn uniformly, and the sides are
swapped with probability ½. The battle row stores pair, prompt and side probabilities.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from sqlalchemy import func, select

from mova_eval.arena.storage import Battle, Clip, Model, Store


@dataclass(frozen=True)
class Draw:
    kind: str                 # "model" | "gold"
    prompt_id: int
    clip_a: str
    clip_b: str
    model_a: str | None
    model_b: str | None
    gold_answer: str | None
    pair_prob: float
    prompt_prob: float
    side_prob: float
    sampler: str


class Pool:
    """The clips in memory: (pair of models) → prompts both have, with the clips of each; and gold twins."""

    def __init__(self, store: Store):
        with store.read() as s:
            rows = s.execute(select(Clip.id, Clip.prompt_id, Model.name).join(Model, Clip.model_id == Model.id)
                             .order_by(Clip.id)).all()
            gold = s.execute(select(Clip.id, Clip.prompt_id, Clip.gold_group, Clip.gold_role)
                             .where(Clip.gold_group.is_not(None)).order_by(Clip.id)).all()
        by_model: dict[str, dict[int, list[str]]] = {}
        for cid, pid, name in rows:
            by_model.setdefault(name, {}).setdefault(pid, []).append(cid)
        self.models = sorted(by_model)
        self.pairs: dict[tuple[str, str], list[int]] = {}
        for a, b in combinations(self.models, 2):
            shared = sorted(set(by_model[a]) & set(by_model[b]))
            if shared:
                self.pairs[(a, b)] = shared
        self.clips = by_model
        groups: dict[str, dict] = {}
        for cid, pid, grp, role in gold:
            groups.setdefault(grp, {"prompt_id": pid})[role] = cid
        self.gold = [g for _, g in sorted(groups.items()) if "good" in g and "bad" in g]


class Sampler:
    def __init__(self, store: Store, *, coverage_target: int = 20, uniform_floor: float = 0.1,
                 gold_rate: float = 0.1, seed: int | None = None):
        self.pool = Pool(store)
        self.coverage_target = coverage_target
        self.uniform_floor = uniform_floor
        self.gold_rate = gold_rate if self.pool.gold else 0.0
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.issued: dict[tuple[str, str], int] = {p: 0 for p in self.pool.pairs}
        with store.read() as s:
            for a, b, n in s.execute(select(Battle.model_a, Battle.model_b, func.count()).where(Battle.kind == "model")
                                     .group_by(Battle.model_a, Battle.model_b)):
                key = tuple(sorted((a, b)))
                if key in self.issued:
                    self.issued[key] += n
        self.pair_var: dict[tuple[str, str], float] = {}

    @property
    def ready(self) -> bool:
        return bool(self.pool.pairs)

    def update_uncertainty(self, names: list[str], cov: np.ndarray) -> None:
        """Give the sampler the latest fit's covariance of strengths (order of ``names``)."""
        idx = {m: i for i, m in enumerate(names)}
        var = {}
        for (a, b) in self.pool.pairs:
            if a in idx and b in idx:
                i, j = idx[a], idx[b]
                var[(a, b)] = float(max(cov[i, i] + cov[j, j] - 2 * cov[i, j], 0.0))
        with self.lock:
            self.pair_var = var

    def pair_probabilities(self) -> tuple[dict[tuple[str, str], float], str]:
        pairs = list(self.pool.pairs)
        under = {p: self.coverage_target - self.issued[p] for p in pairs if self.issued[p] < self.coverage_target}
        if under:
            tot = sum(under.values())
            return {p: under.get(p, 0) / tot for p in pairs}, "coverage"
        uni = 1.0 / len(pairs)
        # Pairs never fitted (no votes yet) are maximally uncertain.
        known = [v for v in self.pair_var.values() if v > 0]
        fallback = max(known) if known else 1.0
        var = {p: self.pair_var.get(p, fallback) or fallback for p in pairs}
        tot = sum(var.values())
        return {p: (1 - self.uniform_floor) * var[p] / tot + self.uniform_floor * uni for p in pairs}, "uncertainty"

    def draw(self) -> Draw:
        with self.lock:
            if self.gold_rate and self.rng.random() < self.gold_rate:
                g = self.rng.choice(self.pool.gold)
                good_left = self.rng.random() < 0.5
                a, b = (g["good"], g["bad"]) if good_left else (g["bad"], g["good"])
                return Draw("gold", g["prompt_id"], a, b, None, None, "a" if good_left else "b", self.gold_rate,
                            1.0 / len(self.pool.gold), 0.5, "gold")
            probs, mode = self.pair_probabilities()
            pairs = list(probs)
            pair = self.rng.choices(pairs, weights=[probs[p] for p in pairs])[0]
            self.issued[pair] += 1
            prompts = self.pool.pairs[pair]
            pid = self.rng.choice(prompts)
            x, y = pair
            cx = self.rng.choice(self.pool.clips[x][pid])
            cy = self.rng.choice(self.pool.clips[y][pid])
            n_clips = len(self.pool.clips[x][pid]) * len(self.pool.clips[y][pid])
            if self.rng.random() < 0.5:
                x, y, cx, cy = y, x, cy, cx
            return Draw("model", pid, cx, cy, x, y, None, probs[pair], 1.0 / (len(prompts) * n_clips), 0.5, mode)
