"""FAD with CLAP embeddings (``fad_clap``): fadtk's windowing fed to the CLAP network of metrics/clap.py, checked
against LAION-CLAP's own ``CLAP_Module`` with the same seeded random weights (the ``models`` fixture of
test_clap.py: LAION checkpoint layout, non-trivial BatchNorm statistics); the distance against the Fréchet formula
written independently; the reference round trip through ``mova-eval reference build``."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")  # before any torchvision stand-in (environment.md §3)

from mova_eval import media, references  # noqa: E402
from mova_eval.errors import MediaError  # noqa: E402
from mova_eval.media import AudioPreset  # noqa: E402
from mova_eval.metrics import clap, fad  # noqa: E402
from mova_eval.spec import Clip, SuiteItem  # noqa: E402
from tests.metrics.test_clap import models  # noqa: E402,F401  (module-scoped: seeded random CLAP, LAION layout)


@pytest.fixture
def env(models, monkeypatch, tmp_path):  # noqa: F811
    """The weights folder holds the random checkpoint under the registry's file name; the encoder built from it
    is the one clap.py's loader would return (shared, so the fixture's model is loaded once)."""
    _, enc, path = models
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(path.parent))
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(clap, "load_encoder", lambda *a, **k: calls.append(k) or enc)
    return tmp_path, enc, calls


def _tone(seconds, sr, f0, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f0 * t) * np.exp(-0.5 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _clip(x, sr, name):
    a = np.asarray(x, np.float32)[None]
    return Clip(path=f"/tmp/{name}.wav", content_hash=name, video=None, fps=None, audio=a, sample_rate=sr,
                duration=a.shape[-1] / sr)


def test_window_embeddings_match_laion_and_clap_py(models, env):  # noqa: F811
    ref, enc, _ = models
    _, _, calls = env
    m = fad.FADClap({"reference": fad.PER_ITEM})
    clip = _clip(_tone(2.5, 44_100, 440, 0), 44_100, "tone")
    emb, meta = fad.frechet.unpack_features(m.features(clip, SuiteItem("a", "c", "p")))
    assert [c["text"] for c in calls] == [False]  # the audio-only encoder: no tokenizer needed
    assert emb.shape == (3, 512) and meta["sr"] == 44_100  # windows start at 0, 1 and 2 s
    assert np.all(emb == emb.astype(np.float16))  # stored as fadtk stores them

    # fadtk's CLAPLaionModel by hand, with LAION's own code: 16-bit wav at 48 kHz read back ÷32768, LAION's int16
    # round-trip, 10 s chunks every 1 s zero-padded to 10 s, get_audio_embedding_from_data(use_tensor=True)
    data = sys.modules["laion_clap.training.data"]
    x48 = clip.audio_for(AudioPreset(48_000, mono=True))
    wav = np.clip(np.round(x48 * 32768.0), -32768, 32767) / 32768.0
    x = data.int16_to_float32(data.float32_to_int16(wav))
    chunk = 10 * 48_000
    want = []
    for start in range(0, x.shape[0], 48_000):
        c = x[start:start + chunk]
        c = np.pad(c, (0, chunk - c.shape[0]))
        with torch.no_grad():
            want.append(ref.get_audio_embedding_from_data(x=torch.from_numpy(c[None]).float(), use_tensor=True)[0])
    want = torch.stack(want).numpy()
    # float16 storage: one float16 step at |v| < 0.5 is < 2.5e-4
    np.testing.assert_allclose(emb, want, atol=2.5e-4)
    # and each row is what metrics/clap.py computes for that window (the CLAP score's own embedding call)
    for row, start in zip(emb, range(0, x.shape[0], 48_000)):
        c = np.pad(x[start:start + chunk], (0, max(0, chunk - (x.shape[0] - start))))
        a, how = enc.audio_embedding(c)
        assert how == "exact 10 s"
        np.testing.assert_allclose(row, a, atol=2.5e-4)
    assert np.abs(emb[0] - emb[2]).max() > 1e-3  # windows differ


def _frechet_by_svd(x: np.ndarray, y: np.ndarray) -> float:
    """d² = |μx−μy|² + Tr Σx + Tr Σy − 2 Tr((ΣxΣy)^½), with unbiased covariances. For Σx = AᵀA and Σy = BᵀB the
    non-zero eigenvalues of ΣxΣy are the squared singular values of ABᵀ, so the trace term is Σ svd(ABᵀ): exact for
    the rank-deficient covariances of a few windows, and independent of the eigen-decompositions in frechet.py."""
    a = (x - x.mean(0)) / math.sqrt(x.shape[0] - 1)
    b = (y - y.mean(0)) / math.sqrt(y.shape[0] - 1)
    d = x.mean(0) - y.mean(0)
    return float(d @ d + (a * a).sum() + (b * b).sum() - 2 * np.linalg.svd(a @ b.T, compute_uv=False).sum())


def test_reference_round_trip_and_distance(env, capsys):
    import soundfile as sf

    from mova_eval.cli import main

    root, _, _ = env
    real = root / "real"
    real.mkdir()
    for i in range(3):
        sf.write(real / f"r{i}.wav", _tone(1.5, 22_050, 200 + 150 * i, i), 22_050)
    assert main(["reference", "build", "real_clap", "--metric", "fad_clap", "--from", str(real), "--quiet"]) == 0
    assert "n=3 clips (6 feature vectors, 512-d)" in capsys.readouterr().out
    stored = references.load("real_clap", metric="fad_clap")
    assert stored.meta["protocol"] == "fad_clap_fusion" and stored.meta["extractor"]["sample_rate"] == 48_000
    assert stored.meta["extractor"]["weights_sha256"] not in ("absent", "registry")
    assert stored.meta["source_sample_rates"] == {"22050": 3}

    m = fad.FADClap({"reference": "real_clap", "bootstrap": 0, "inf_steps": 3})
    m.load()
    # the stored rows are the run's own features of those files
    r0 = fad.frechet.unpack_features(m.features(media.decode(real / "r0.wav", video=False), SuiteItem("r", "c", "")))[0]
    np.testing.assert_array_equal(stored.features[stored.clip_index == 0], r0)

    items = [SuiteItem(f"g{i}", "set1", "p") for i in range(3)]
    feats = [m.features(_clip(_tone(1.0, 48_000, 330 + 220 * i, 10 + i), 48_000, f"g{i}"), it)
             for i, it in enumerate(items)]
    vals = m.compute(feats, items)
    gen = np.concatenate([fad.frechet.unpack_features(f)[0] for f in feats]).astype(np.float64)
    assert gen.shape == (3, 512)
    want = _frechet_by_svd(gen, stored.features.astype(np.float64))
    assert vals.values["fad_clap"] == pytest.approx(want, rel=1e-6) and vals.values["fad_clap"] > 0
    assert math.isfinite(vals.values["fad_clap_kid"]) and "fad_clap_inf" in vals.values
    assert "protocol fad_clap_fusion" in vals.note and "reference 'real_clap'" in vals.note
    assert "chosen by metrics.options.fad_clap.reference" in vals.note
    assert "rank-deficient" in vals.note  # 3 windows for 512-d


def test_bad_input_and_missing_weights(tmp_path, monkeypatch):
    m = fad.FADClap({"reference": fad.PER_ITEM})
    with pytest.raises(MediaError, match="no audio"):
        m.waveform(_clip(np.zeros(0), 48_000, "empty"))
    x, meta = m.waveform(_clip(np.zeros(4_800), 48_000, "silent"))  # 0.1 s of silence: one window, not padded
    assert meta["silent"] == 1.0 and meta["padded"] == 0.0 and len(m.windows(x)) == 1
    assert [w.shape[0] for w in m.windows(np.ones(int(2.01 * 48_000)))] == [480_000] * 3
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = fad.FADClap.availability()
    assert not av.ok and av.command == f"mova-eval weights fetch {clap.CKPT}"
