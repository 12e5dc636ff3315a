"""FAD and FAD-∞ against fadtk's own code (``calc_frechet_distance``, ``FrechetAudioDistance.score_inf``), imported
with the test-only torchvision/torchaudio stand-in; same embeddings, same random draws."""
from __future__ import annotations

import numpy as np
import pytest

from mova_eval.metrics import frechet as F


@pytest.fixture(scope="module")
def fadtk_fad():
    pytest.importorskip("torch")
    from tests.stubs import torchvision_stub

    with torchvision_stub.installed(("torchvision", "torchaudio")):
        return pytest.importorskip("fadtk.fad", reason="fadtk/hypy-utils not installed (requirements/test-nodeps.txt)")


def _data(seed=0, d=16):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(3000, d))
    ev = rng.normal(size=(900, d)) @ (np.eye(d) + 0.2 * rng.normal(size=(d, d))) + 0.3
    return base, ev


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fad_equals_fadtk(fadtk_fad):
    base, ev = _data()
    mu1, c1 = fadtk_fad.calc_embd_statistics(base)
    mu2, c2 = fadtk_fad.calc_embd_statistics(ev)
    want = float(np.real(fadtk_fad.calc_frechet_distance(mu1, c1, mu2, c2)))
    got = F.frechet_from_stats(F.GaussianStats.of(base), F.GaussianStats.of(ev))
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fad_inf_equals_fadtk_score_inf(fadtk_fad, tmp_path):
    base, ev = _data(1)
    mu, cov = fadtk_fad.calc_embd_statistics(base)
    np.savez(tmp_path / "base.npz", **{"m.mu": mu, "m.cov": cov})
    files = []
    for i, chunk in enumerate(np.array_split(ev, 9)):  # 9 "clips" of 100 embedding rows, stored as fadtk caches them
        np.save(tmp_path / f"c{i}.npy", chunk)
        files.append(tmp_path / f"c{i}.npy")
    fad = object.__new__(fadtk_fad.FrechetAudioDistance)  # skip __init__ (it probes the sox binary)

    class _ML:
        name = "m"

    fad.ml = _ML()
    np.random.seed(123)
    want = fad.score_inf(str(tmp_path / "base.npz"), files, steps=10, min_n=200)
    got = F.frechet_inf(F.GaussianStats.of(base), ev, steps=10, min_n=200, seed=np.random.RandomState(123))
    assert [n for n, _ in got.points] == [int(n) for n, _ in want.points]
    np.testing.assert_allclose([v for _, v in got.points], [float(np.real(v)) for _, v in want.points], rtol=1e-6)
    assert got.score == pytest.approx(float(want.score), rel=1e-6)
    assert got.r2 == pytest.approx(float(want.r2), rel=1e-6)
