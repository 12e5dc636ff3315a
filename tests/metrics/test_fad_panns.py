"""FAD with PANNs Cnn14 (16 kHz) embeddings: runs once ``mova_eval.metrics.features.panns`` (another work branch)
is merged. Cnn14's own parity with PANNs' code is tested beside that module; here: the API contract we call and
our pooling (one 2048-d ``embedding`` per clip, unbiased covariance, the rank-deficiency note)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")
panns = pytest.importorskip("mova_eval.metrics.features.panns")

from mova_eval.metrics import fad, frechet  # noqa: E402
from mova_eval.spec import Clip, SuiteItem  # noqa: E402


def test_load_cnn14_signature():
    params = inspect.signature(panns.load_cnn14).parameters
    assert "sample_rate" in params and "device" in params


class _Stub(torch.nn.Module):
    """Honours load_cnn14's output contract: {'clipwise_output': [B, 527], 'embedding': [B, 2048]}."""

    def forward(self, x):
        e = torch.stack([x.mean(1), x.std(1), x.abs().max(1).values], 1).repeat(1, 683)[:, :2048]
        return {"clipwise_output": torch.sigmoid(e[:, :527]), "embedding": e}


def test_fad_panns_pools_one_embedding_per_clip(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(panns, "load_cnn14", lambda sample_rate, device, context=None: calls.append(sample_rate) or _Stub())
    m = fad.FADPanns({"reference": fad.PER_ITEM, "bootstrap": 0})
    m.load_extractor()
    assert calls == [16_000]
    rng = np.random.default_rng(0)
    feats = []
    for i in range(5):
        a = (0.1 * (i + 1) * rng.normal(size=(1, 32_000))).astype(np.float32)
        clip = Clip(path=f"/tmp/p{i}.wav", content_hash=f"p{i}", video=None, fps=None, audio=a, sample_rate=16_000,
                    duration=2.0)
        feats.append(m.features(clip, SuiteItem(f"i{i}", "c", "p")))
    emb, meta = frechet.unpack_features(feats[0])
    assert emb.shape == (1, 2048) and meta["sr"] == 16_000
    rows = np.concatenate([frechet.unpack_features(f)[0] for f in feats])
    assert rows.shape == (5, 2048) and np.isfinite(rows).all()
    # 2048-d eigendecompositions are too slow for a unit test on 2 cores; the pooling above is what is ours
    assert "rank-deficient" in frechet.sample_size_warning(rows.shape[0], rows.shape[1])
