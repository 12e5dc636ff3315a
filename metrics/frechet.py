"""Fréchet distance, KID and FAD-∞ on feature sets — the shared math of FVD and FAD (no Metric class here).

Why our own: almost every reference repository takes the matrix square root with ``scipy.linalg.sqrtm`` and its
``disp=False`` flag, which SciPy 1.18 removed and which several SciPy releases got wrong (``../shared/reference/metrics.md`` §4.2). Here everything is
float64 and the trace term ``Tr((Σ₁Σ₂)^½)`` comes from eigenvalues:

* ``"symmetric"`` (default): ``A = Σ₁^½`` from ``eigh``, then ``Σ √max(λ, 0)`` over ``eigvalsh(A Σ₂ A)`` — the
  matrix is symmetric PSD, so its eigenvalues are real (TF-GAN's ``trace_sqrt_product`` idea, with eigh for SVD);
* ``"eigvals"``: ``Σ Re √λ`` over ``eigvals(Σ₁ Σ₂)`` — torchmetrics' ``_compute_fid`` formula.

Both equal ``Tr(sqrtm(Σ₁Σ₂))`` for PSD inputs. :class:`GaussianStats` accumulates count, mean and the centred
scatter matrix in float64 (Chan et al.'s pairwise update), so shards merge exactly and the covariance can be read
unbiased (N−1, the default, TF-GAN/pytorch-fid/fadtk) or biased (1/N, StyleGAN-V/cd-fvd) afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

TRACE_METHODS = ("symmetric", "eigvals")


class NonFiniteFeaturesError(ValueError):
    """Features (or statistics) contain NaN or infinity: a Fréchet distance over them would be meaningless."""


def _check_finite(x: np.ndarray, what: str) -> None:
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise NonFiniteFeaturesError(f"{what} contains {bad} NaN/infinite value(s)")


@dataclass
class GaussianStats:
    """Streaming float64 mean and covariance of feature vectors (rows).

    ``update`` takes a batch [N, D]; ``merge`` combines two shard states exactly (it is the same pairwise update
    ``update`` uses, so merging shards equals one pass over all rows up to float64 rounding).
    """

    dim: int
    n: int = 0
    mean: np.ndarray = field(default=None)  # type: ignore[assignment]
    scatter: np.ndarray = field(default=None)  # type: ignore[assignment]  # Σ (x−μ)(x−μ)ᵀ

    def __post_init__(self):
        if self.mean is None:
            self.mean = np.zeros(self.dim, dtype=np.float64)
        if self.scatter is None:
            self.scatter = np.zeros((self.dim, self.dim), dtype=np.float64)

    @classmethod
    def of(cls, features: np.ndarray) -> "GaussianStats":
        f = np.asarray(features)
        if f.ndim != 2:
            raise ValueError(f"features must be a 2-D array [N, D], got shape {f.shape}")
        s = cls(f.shape[1])
        s.update(f)
        return s

    def update(self, features: np.ndarray) -> "GaussianStats":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features [N, {self.dim}], got shape {x.shape}")
        if x.shape[0] == 0:
            return self
        _check_finite(x, "features")
        mu = x.mean(axis=0)
        c = x - mu
        self._combine(x.shape[0], mu, c.T @ c)
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """A new state holding both shards (``self`` and ``other`` are unchanged)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        out = GaussianStats(self.dim, self.n, self.mean.copy(), self.scatter.copy())
        out._combine(other.n, other.mean, other.scatter)
        return out

    def _combine(self, nb: int, mub: np.ndarray, scb: np.ndarray) -> None:
        if nb == 0:
            return
        na, n = self.n, self.n + nb
        delta = mub - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.scatter = self.scatter + scb + np.outer(delta, delta) * (na * nb / n)
        self.n = n

    def cov(self, unbiased: bool = True) -> np.ndarray:
        """Covariance: unbiased (÷(N−1)) by default, biased (÷N) where a protocol says so."""
        need = 2 if unbiased else 1
        if self.n < need:
            raise ValueError(f"a covariance needs at least {need} feature vectors, have {self.n}")
        c = self.scatter / (self.n - 1 if unbiased else self.n)
        return (c + c.T) / 2.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.asarray(self.n, dtype=np.int64), "mean": self.mean, "scatter": self.scatter}

    @classmethod
    def from_arrays(cls, d: Any) -> "GaussianStats":
        mean = np.asarray(d["mean"], dtype=np.float64)
        return cls(mean.shape[0], int(d["n"]), mean.copy(), np.asarray(d["scatter"], dtype=np.float64).copy())


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_with(a: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) given A = Σ₁^½: the eigenvalues of the symmetric PSD matrix A Σ₂ A."""
    m = a @ sigma2 @ a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "symmetric") -> float:
    """Tr((Σ₁Σ₂)^½) for PSD Σ₁, Σ₂ from eigenvalues (negative round-off eigenvalues count as 0)."""
    if method == "symmetric":
        return _trace_sqrt_with(_psd_sqrt(np.asarray(sigma1, dtype=np.float64)), np.asarray(sigma2, dtype=np.float64))
    if method == "eigvals":
        lam = np.linalg.eigvals(np.asarray(sigma1, dtype=np.float64) @ np.asarray(sigma2, dtype=np.float64))
        return float(np.sqrt(lam.astype(np.complex128)).real.sum())
    raise ValueError(f"trace method must be one of {TRACE_METHODS}, got {method!r}")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "symmetric") -> float:
    """d² = ‖μ₁−μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr((Σ₁Σ₂)^½), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shape mismatch: means {mu1.shape} / {mu2.shape}, covariances {s1.shape} / {s2.shape}")
    for a, what in ((mu1, "first mean"), (mu2, "second mean"), (s1, "first covariance"), (s2, "second covariance")):
        _check_finite(a, what)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2, method))


def frechet_from_stats(a: GaussianStats, b: GaussianStats, unbiased: bool = True, method: str = "symmetric") -> float:
    return frechet_distance(a.mean, a.cov(unbiased), b.mean, b.cov(unbiased), method)


# ----------------------------------------------------------------------------------------------- KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (γ xᵀy + c)^d with γ = 1/D by default (the KID kernel of Bińkowski et al.)."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel) -> float:
    """Unbiased MMD² between samples x [m, D] and y [n, D] (diagonals of k(x,x), k(y,y) left out)."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, have {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x, **kernel), polynomial_kernel(y, y, **kernel), polynomial_kernel(x, y, **kernel)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(x: np.ndarray, y: np.ndarray, subset_size: int = 1000, n_subsets: int = 100, seed: int = 0) -> tuple[float, float, int]:
    """Kernel Inception Distance: mean and std of unbiased MMD² over random subsets (without replacement within a
    subset) — the clean-fid / torchmetrics procedure. Returns (mean, std, subset size used); the subset size is
    capped at the smaller set, and with both sets no larger than it a single exact estimate is returned."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    _check_finite(x, "first feature set")
    _check_finite(y, "second feature set")
    size = int(min(subset_size, x.shape[0], y.shape[0]))
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, have {x.shape[0]} and {y.shape[0]}")
    if size == x.shape[0] == y.shape[0]:
        v = mmd2_unbiased(x, y)
        return v, 0.0, size
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(x[rng.choice(x.shape[0], size, replace=False)], y[rng.choice(y.shape[0], size, replace=False)])
            for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals)), size


# ----------------------------------------------------------------------------------------------- FAD-∞


@dataclass(frozen=True)
class InfResult:
    score: float       # the intercept: the extrapolated distance at n → ∞
    slope: float
    r2: float
    points: tuple[tuple[int, float], ...]


def frechet_inf(reference: GaussianStats, features: np.ndarray, *, steps: int = 25, min_n: int = 500,
                seed: Any = 0, unbiased: bool = True, method: str = "symmetric") -> InfResult:
    """FAD-∞ as fadtk's ``score_inf``: for ``steps`` sample sizes n evenly spaced from ``min_n`` to the number of
    feature rows, draw n rows with replacement, compute the distance to the reference, fit d(n) = a/n + b by least
    squares and report b. fadtk draws from NumPy's global RNG; we seed a Generator (recorded by the caller), or use
    the ``seed`` object itself when it has ``choice`` (a ``RandomState`` reproduces fadtk's draws exactly)."""
    f = np.asarray(features, np.float64)
    _check_finite(f, "features")
    rng = seed if hasattr(seed, "choice") else np.random.default_rng(seed)
    ns = [int(n) for n in np.linspace(min_n, f.shape[0], steps)]
    mu_r, cov_r = reference.mean, reference.cov(unbiased)
    a = _psd_sqrt(cov_r) if method == "symmetric" else None
    pts = []
    for n in ns:
        s = GaussianStats.of(f[rng.choice(f.shape[0], size=n, replace=True)])
        c = s.cov(unbiased)
        if a is None:
            pts.append((n, frechet_distance(mu_r, cov_r, s.mean, c, method)))
        else:  # same value, Σ_ref^½ computed once
            d = s.mean - mu_r
            pts.append((n, float(d @ d + np.trace(cov_r) + np.trace(c) - 2 * _trace_sqrt_with(a, c))))
    ys = np.array([p[1] for p in pts])
    xs = 1.0 / np.array(ns, dtype=np.float64)
    slope, intercept = np.polyfit(xs, ys, 1)
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ys - (slope * xs + intercept)) ** 2)) / ss_tot if ss_tot > 0 else math.nan
    return InfResult(float(intercept), float(slope), r2, tuple(pts))


# ----------------------------------------------------------------------------------------------- honesty


def sample_size_warning(n: int, dim: int, what: str = "feature vectors") -> str:
    """A note when n is small against the feature dimension (rank-deficient or high-variance covariance)."""
    if n <= dim:
        return (f"{n} {what} for {dim}-d features: rank-deficient covariance, the value is dominated by estimation "
                f"error and not comparable with large-sample values")
    if n < 5 * dim:
        return (f"{n} {what} for {dim}-d features (< 5×dim): biased upward and high-variance, comparable only at "
                f"equal n")
    return ""


def bootstrap_ci(features: Sequence[np.ndarray], reference: GaussianStats, *, n_boot: int, unbiased: bool,
                 seed: int = 0, level: float = 0.95, clusters: Sequence[str] | None = None) -> tuple[float, float]:
    """Percentile CI of the distance to a fixed reference, resampling clips (each an array of feature rows) with
    replacement — or whole clusters of clips (``clusters[i]`` names clip i's prompt, so several seeds of one prompt
    move together, as the per-item CIs do). ``Σ_ref^½`` is computed once, so a replicate costs one weighted scatter
    product and one ``eigvalsh``."""
    if n_boot <= 0 or len(features) < 2:
        return math.nan, math.nan
    rows = [np.atleast_2d(np.asarray(f, np.float64)) for f in features]
    cluster_of = (np.arange(len(rows)) if clusters is None
                  else np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)[1])
    n_clusters = int(cluster_of.max()) + 1
    owner = np.concatenate([np.full(r.shape[0], cluster_of[i]) for i, r in enumerate(rows)])
    x = np.concatenate(rows)
    _check_finite(x, "features")
    ref_cov = reference.cov(unbiased)
    a = _psd_sqrt(ref_cov)
    tr_ref = float(np.trace(ref_cov))
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)[owner].astype(np.float64)
        n = w.sum()
        if n < (2 if unbiased else 1):
            continue
        mu = (w @ x) / n
        xc = x - mu
        c = (xc * w[:, None]).T @ xc / (n - 1 if unbiased else n)
        d = mu - reference.mean
        vals.append(float(d @ d + tr_ref + np.trace(c) - 2 * _trace_sqrt_with(a, c)))
    if not vals:
        return math.nan, math.nan
    lo, hi = np.percentile(vals, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------------------- set-level report


AUTO_BOOTSTRAP, AUTO_BOOTSTRAP_MAX_DIM = 200, 512
_WARNED: set[str] = set()


class SetValues(dict):
    """``compute()``'s return value: {output: value} plus a ``note`` (n, protocol, warnings) and ``ci`` {output:
    (low, high)} that the runner copies into the summary row."""

    def __init__(self, values=(), note: str = "", ci: dict | None = None, details: dict | None = None):
        super().__init__(values)
        self.note = note
        self.ci = dict(ci or {})
        self.details = dict(details or {})


def distance_report(clips: Sequence[np.ndarray], ref_stats: GaussianStats, ref_features: np.ndarray | None, *,
                    unbiased: bool, n_boot: int | None = None, with_kid: bool = False, with_inf: bool = False,
                    kid_subset: int = 1000, kid_subsets: int = 100, inf_min_n: int = 500, inf_steps: int = 25,
                    seed: int = 0, unit: str = "clips", clusters: Sequence[str] | None = None) -> SetValues:
    """Distance of the generated set (one array of feature rows per clip) to a reference: keys ``distance``,
    ``kid``, ``inf``; the note states n and every caveat. Nothing is repeated to reach a sample size.
    ``n_boot=None`` means 200 bootstrap replicates up to 512-d features and none above (each replicate costs an
    eigendecomposition of a D×D matrix)."""
    rows = [np.atleast_2d(np.asarray(c, np.float64)) for c in clips]
    x = np.concatenate(rows) if rows else np.zeros((0, ref_stats.dim))
    if x.shape[1] != ref_stats.dim:
        raise ValueError(f"features are {x.shape[1]}-d but the reference is {ref_stats.dim}-d")
    gen = GaussianStats.of(x)
    need = 2 if unbiased else 1
    if gen.n < max(need, 2):
        raise ValueError(f"{gen.n} feature vector(s) from {len(rows)} {unit}: a covariance needs at least 2")
    values = {"distance": frechet_from_stats(ref_stats, gen, unbiased=unbiased)}
    notes = [f"n={len(rows)} {unit}" + (f" ({gen.n} feature vectors)" if gen.n != len(rows) else "")
             + f" vs reference n={ref_stats.n}; {'unbiased (N−1)' if unbiased else 'biased (1/N)'} covariance"]
    for w in (sample_size_warning(gen.n, gen.dim, "generated feature vectors"),
              sample_size_warning(ref_stats.n, ref_stats.dim, "reference feature vectors")):
        if w:
            notes.append("WARNING: " + w)
            if w not in _WARNED:  # once per process: the same reference is reused by every group
                _WARNED.add(w)
                import logging

                logging.getLogger("mova_eval.frechet").warning(w)
    ci = {}
    if n_boot is None:
        n_boot = AUTO_BOOTSTRAP if gen.dim <= AUTO_BOOTSTRAP_MAX_DIM else 0
        if not n_boot:
            notes.append(f"no CI: bootstrap is off by default for {gen.dim}-d features (set the bootstrap option)")
    if n_boot > 0 and len(rows) >= 2:
        ci["distance"] = bootstrap_ci(rows, ref_stats, n_boot=n_boot, unbiased=unbiased, seed=seed, clusters=clusters)
        over = f"prompts ({len(set(clusters))})" if clusters is not None else unit
        notes.append(f"95% CI: bootstrap over {over}, {n_boot} replicates, seed {seed}")
    details: dict = {"n_clips": len(rows), "n_vectors": gen.n, "dim": gen.dim, "reference_n": ref_stats.n}
    if with_kid:
        if ref_features is None or len(ref_features) < 2:
            notes.append("KID: the reference stores no feature rows")
        else:
            k, ks, size = kid(x, ref_features, subset_size=kid_subset, n_subsets=kid_subsets, seed=seed)
            values["kid"] = k
            details["kid_std"], details["kid_subset"] = ks, size
            notes.append(f"KID: polynomial kernel, unbiased MMD², subsets of {size}"
                         + (f" × {kid_subsets} (std {ks:.3g})" if ks else " (one exact estimate)"))
    if with_inf:
        res = frechet_inf(ref_stats, x, steps=inf_steps, min_n=inf_min_n, seed=seed, unbiased=unbiased)
        values["inf"] = res.score
        details.update(inf_slope=res.slope, inf_r2=res.r2)
        notes.append(f"∞: fit over n = {inf_min_n}…{gen.n} ({inf_steps} steps, rows drawn with replacement, "
                     f"seed {seed}), r²={res.r2:.3f}" + (f"; WARNING: only {gen.n} rows, fewer than min_n — the fit "
                                                          "uses oversampled sets" if gen.n < inf_min_n else ""))
    return SetValues(values, note="; ".join(notes), ci=ci, details=details)


def pack_features(emb: np.ndarray, **meta: float) -> np.ndarray:
    """Feature rows [n, D] plus per-clip scalars (fps, source sample rate, flags) as one structured array [n], so a
    set-level ``compute`` can report what it pooled (mixed frame rates, silent or padded clips) without guessing."""
    emb = np.atleast_2d(np.asarray(emb, np.float32))
    dt = [("emb", np.float32, (emb.shape[1],))] + [(k, np.float64) for k in meta]
    out = np.zeros(emb.shape[0], dtype=dt)
    out["emb"] = emb
    for k, v in meta.items():
        out[k] = v
    return out


def unpack_features(arr: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(rows [n, D], per-clip scalars) from :func:`pack_features`; a plain 2-D array has no scalars."""
    a = np.asarray(arr)
    if a.dtype.names is None:
        return np.atleast_2d(a.astype(np.float32)), {}
    meta = {k: float(a[k][0]) for k in a.dtype.names if k != "emb"} if a.shape[0] else {}
    return np.asarray(a["emb"]), meta
