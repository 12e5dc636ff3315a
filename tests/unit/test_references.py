"""The reference-statistics store: names, round trip, no silent overwrite, refusal of mismatched references."""
from __future__ import annotations

import numpy as np
import pytest

from mova_eval import references
from mova_eval.errors import MetricUnavailable
from mova_eval.metrics.frechet import GaussianStats


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path))


def _save(name, force=False, protocol="p1", sha="abc"):
    x = np.random.default_rng(0).normal(size=(12, 4))
    meta = {"metric": "fad", "protocol": protocol, "extractor": {"weights_sha256": sha}, "n_clips": 3}
    return references.save(name, meta, GaussianStats.of(x), x, np.repeat(np.arange(3), 4), force=force), x


def test_round_trip_and_no_silent_overwrite():
    d, x = _save("ref_a")
    ref = references.load("ref_a", metric="fad")
    assert ref.stats.n == 12 and ref.features.shape == (12, 4) and ref.meta["created_by"].startswith("mova-eval")
    np.testing.assert_allclose(ref.stats.cov(), np.cov(x, rowvar=False), rtol=1e-12)
    with pytest.raises(references.ReferenceError, match="already exists.*--force"):
        _save("ref_a")
    _save("ref_a", force=True)
    assert [r["name"] for r in references.list_references()] == ["ref_a"]


def test_missing_and_invalid_names():
    with pytest.raises(references.ReferenceError, match="mova-eval reference build nope --metric fvd"):
        references.load("nope", metric="fvd", protocol="fvd_tf")
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(references.ReferenceError, match="invalid reference name"):
            references.check_name(bad)


def test_check_refuses_other_protocol_or_weights():
    _save("ref_b")
    ref = references.load("ref_b", metric="fad")
    assert references.check(ref, "fad", "p1", {"weights_sha256": "abc"}) is ref
    with pytest.raises(MetricUnavailable, match="protocol 'p1'"):
        references.check(ref, "fad", "p2", {"weights_sha256": "abc"})
    with pytest.raises(MetricUnavailable, match="weights sha256 abc"):
        references.check(ref, "fad", "p1", {"weights_sha256": "zzz"})
    with pytest.raises(MetricUnavailable, match="built for 'fad', not 'fvd'"):
        references.check(ref, "fvd", "p1", {"weights_sha256": "abc"})
