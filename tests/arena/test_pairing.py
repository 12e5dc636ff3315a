"""Pair sampling: coverage first (least-covered pairs only), then ∝ uncertainty with a uniform floor."""
from __future__ import annotations

import random
import threading

import numpy as np

from mova_eval.arena.pairing import Sampler


class _Pool:
    models = ["m0", "m1", "m2"]
    pairs = {("m0", "m1"): [1], ("m0", "m2"): [1], ("m1", "m2"): [1]}
    clips = {"m0": {1: ["c0"]}, "m1": {1: ["c1"]}, "m2": {1: ["c2"]}}
    gold: list = []


def _sampler(issued):
    s = Sampler.__new__(Sampler)
    s.pool, s.coverage_target, s.uniform_floor, s.gold_rate = _Pool(), 10, 0.1, 0.0
    s.rng, s.lock, s.issued, s.pair_var = random.Random(0), threading.Lock(), dict(issued), {}
    return s


def test_coverage_first_then_least_certain():
    s = _sampler({("m0", "m1"): 10, ("m0", "m2"): 4, ("m1", "m2"): 8})
    probs, mode = s.pair_probabilities()
    assert mode == "coverage"
    assert probs[("m0", "m1")] == 0 and abs(probs[("m0", "m2")] - 6 / 8) < 1e-12
    s.issued = {p: 10 for p in s.issued}
    cov = np.diag([0.01, 0.04, 0.01])  # m1 is the least certain
    s.update_uncertainty(["m0", "m1", "m2"], cov)
    probs, mode = s.pair_probabilities()
    assert mode == "uncertainty" and abs(sum(probs.values()) - 1) < 1e-12
    assert probs[("m0", "m1")] > probs[("m0", "m2")] and probs[("m1", "m2")] > probs[("m0", "m2")]
    assert min(probs.values()) >= 0.1 / 3 - 1e-12  # the uniform floor keeps every pair possible


def test_draw_records_its_probability_and_balances_sides():
    s = _sampler({("m0", "m1"): 0, ("m0", "m2"): 0, ("m1", "m2"): 0})
    draws = [s.draw() for _ in range(300)]
    assert all(d.side_prob == 0.5 and d.prompt_prob == 1.0 and 0 < d.pair_prob <= 1 for d in draws)
    first = [d for d in draws[:3]]
    assert abs(first[0].pair_prob - 1 / 3) < 1e-12
    left = sum(d.model_a == min(d.model_a, d.model_b) for d in draws)
    assert 110 < left < 190
    assert all(d.clip_a == "c" + d.model_a[1] for d in draws)
