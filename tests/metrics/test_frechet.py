"""Fréchet core: parity with torchmetrics' formula, TF-GAN's SVD form and scipy's sqrtm; streaming merges; KID;
FAD-∞. Tolerance: 1e-6 relative on the distance (the brief's target)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from mova_eval.metrics import frechet as F

RTOL = 1e-6


def _torchmetrics_fid(mu1, s1, mu2, s2) -> float:
    torch = pytest.importorskip("torch")
    fid = pytest.importorskip("torchmetrics.image.fid")
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return float(fid._compute_fid(t(mu1), t(s1), t(mu2), t(s2)))


def _tfgan_fid(mu1, s1, mu2, s2) -> float:
    """TF-GAN's ``frechet_classifier_distance_from_activations`` math (SVD square root, singular values below 1e-10
    left unrooted), written here in NumPy as an independent reference."""
    def sym_sqrt(m, eps=1e-10):
        u, s, vt = np.linalg.svd(m)
        si = np.where(s < eps, s, np.sqrt(s))
        return u @ np.diag(si) @ vt

    a = sym_sqrt(s1)
    tr = np.trace(sym_sqrt(a @ s2 @ a))
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr)


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _sets(kind: str, rng):
    d = 32
    if kind == "well":
        x = rng.normal(size=(4000, d))
        y = rng.normal(size=(4000, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
    elif kind == "ill":
        # eigenvalues spread over 10 decades
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        scales = np.logspace(-5, 5, d)
        x = rng.normal(size=(3000, d)) * np.sqrt(scales) @ q.T
        y = rng.normal(size=(3000, d)) * np.sqrt(scales[::-1]) @ q.T + 1.0
    else:  # singular: fewer samples than dimensions (rank ≤ n−1)
        x = rng.normal(size=(20, d))
        y = rng.normal(size=(25, d)) * 2.0 + 0.1
    return x, y


@pytest.mark.parametrize("kind", ["well", "ill", "singular"])
@pytest.mark.parametrize("method", F.TRACE_METHODS)
def test_frechet_matches_torchmetrics_and_tfgan(kind, method):
    rng = np.random.default_rng(7)
    x, y = _sets(kind, rng)
    sx, sy = F.GaussianStats.of(x), F.GaussianStats.of(y)
    mu1, s1, mu2, s2 = sx.mean, sx.cov(), sy.mean, sy.cov()
    ours = F.frechet_distance(mu1, s1, mu2, s2, method=method)
    tm = _torchmetrics_fid(mu1, s1, mu2, s2)
    tf = _tfgan_fid(mu1, s1, mu2, s2)
    assert ours == pytest.approx(tm, rel=RTOL)
    assert ours == pytest.approx(tf, rel=RTOL)
    if kind == "well":
        assert ours == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), rel=RTOL)


def test_closed_form_diagonal():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    want = 9.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # diagonal case: Σ (√a − √b)²
    for m in F.TRACE_METHODS:
        assert F.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=m) == pytest.approx(want, rel=1e-12)


def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(500, 16))
    s = F.GaussianStats.of(x)
    assert abs(F.frechet_from_stats(s, s)) < 1e-9


def test_streaming_merge_equals_one_pass_and_numpy_cov():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 24)) * 3 + 1e3  # large offset: a raw Σxxᵀ − nμμᵀ accumulator would lose digits
    one = F.GaussianStats.of(x)
    shards = [F.GaussianStats.of(x[i : i + 137]) for i in range(0, 1000, 137)]
    merged = shards[0]
    for s in shards[1:]:
        merged = merged.merge(s)
    inc = F.GaussianStats(24)
    for i in range(0, 1000, 64):
        inc.update(x[i : i + 64])
    for s in (merged, inc):
        assert s.n == 1000
        np.testing.assert_allclose(s.mean, one.mean, rtol=1e-13)
        np.testing.assert_allclose(s.cov(), one.cov(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(one.cov(), np.cov(x, rowvar=False), rtol=1e-9)
    np.testing.assert_allclose(one.cov(unbiased=False), np.cov(x, rowvar=False, bias=True), rtol=1e-9)
    # round trip through the stored form
    back = F.GaussianStats.from_arrays(one.to_arrays())
    np.testing.assert_array_equal(back.scatter, one.scatter)


def test_non_finite_input_is_refused():
    x = np.ones((10, 4))
    x[3, 2] = np.nan
    with pytest.raises(F.NonFiniteFeaturesError, match="1 NaN"):
        F.GaussianStats.of(x)
    s = np.eye(3)
    with pytest.raises(F.NonFiniteFeaturesError):
        F.frechet_distance(np.zeros(3), np.full((3, 3), np.inf), np.zeros(3), s)
    with pytest.raises(ValueError, match="shape mismatch"):
        F.frechet_distance(np.zeros(3), s, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        F.GaussianStats.of(np.ones((1, 3))).cov()


def test_mmd_matches_torchmetrics_kid_kernel():
    torch = pytest.importorskip("torch")
    kid = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) + 0.3
    ref = float(kid.poly_mmd(torch.as_tensor(x), torch.as_tensor(y)))
    assert F.mmd2_unbiased(x, y) == pytest.approx(ref, rel=1e-9)
    mean, std, size = F.kid(x, y, subset_size=100, n_subsets=20)
    assert size == 100 and std > 0 and mean > 0
    same = F.kid(x, rng.normal(size=(200, 16)))[0]  # two samples of one distribution: unbiased estimate ≈ 0
    assert abs(same) < mean / 5


def test_frechet_inf_removes_small_sample_bias():
    rng = np.random.default_rng(5)
    d = 8
    ref = F.GaussianStats.of(rng.normal(size=(200_000, d)))
    feats = rng.normal(size=(3000, d))  # same distribution: true distance 0
    plain = F.frechet_from_stats(ref, F.GaussianStats.of(feats[:500]))
    res = F.frechet_inf(ref, feats, steps=10, min_n=300, seed=0)
    assert plain > 0.01  # small-n bias ≈ d(d+1)/2n-ish
    assert abs(res.score) < plain / 3
    assert res.slope > 0 and len(res.points) == 10


def test_bootstrap_ci_brackets_the_value():
    rng = np.random.default_rng(2)
    ref = F.GaussianStats.of(rng.normal(size=(5000, 6)))
    clips = [rng.normal(size=(8, 6)) + 0.5 for _ in range(100)]
    value = F.frechet_from_stats(ref, F.GaussianStats.of(np.concatenate(clips)))
    lo, hi = F.bootstrap_ci(clips, ref, n_boot=200, unbiased=True)
    assert lo < value < hi


def test_sample_size_warning():
    assert "rank-deficient" in F.sample_size_warning(300, 400)
    assert "biased upward" in F.sample_size_warning(600, 400)
    assert F.sample_size_warning(4800, 128) == ""


def test_bootstrap_clusters_move_seeds_of_a_prompt_together():
    rng = np.random.default_rng(3)
    ref = F.GaussianStats.of(rng.normal(size=(4000, 4)))
    clips = [rng.normal(size=(4, 4)) + 0.3 for _ in range(40)]
    twice = clips + [c + 1e-9 for c in clips]  # every prompt twice (two "seeds" with the same content)
    lo_c, hi_c = F.bootstrap_ci(twice, ref, n_boot=300, unbiased=True, clusters=[f"p{i % 40}" for i in range(80)])
    lo_i, hi_i = F.bootstrap_ci(twice, ref, n_boot=300, unbiased=True)
    # treating the duplicates as independent understates the uncertainty
    assert hi_c - lo_c > 1.1 * (hi_i - lo_i)
