"""IS (MOVA and av-benchmark modes) and KL against the reference formulas, and the metrics on random-weight Cnn14."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mova_eval.errors import MediaError  # noqa: E402
from mova_eval.metrics import inception_score, kl  # noqa: E402
from mova_eval.metrics.features import panns  # noqa: E402
from mova_eval.spec import Clip, SuiteItem  # noqa: E402


# ------------------------------------------------------------------ reference formulas, written as their sources do
def _mova_is_reference(probs: torch.Tensor) -> float:
    """MOVA IS.py as described in mova-toolkit.md §1.5.5: logits from clamped sigmoid, softmax (T=1), renormalise,
    one split, eps 1e-10 (done in float64 here so the comparison can be tight)."""
    p = probs.double().clamp(1e-8, 1 - 1e-8)
    logits = torch.log(p) - torch.log(1 - p)
    q = torch.softmax(logits / 1.0, dim=1)
    q = q / q.sum(dim=1, keepdim=True)
    py = q.mean(dim=0, keepdim=True)
    kl_rows = (q * (torch.log(q + 1e-10) - torch.log(py + 1e-10))).sum(dim=1)
    return float(torch.exp(kl_rows.mean()))


def _isc_reference(feature: torch.Tensor, splits=10, rng_seed=2020):
    """torch-fidelity's isc_features_to_metric (av-benchmark copies it)."""
    n = feature.shape[0]
    feature = feature[np.random.RandomState(rng_seed).permutation(n), :].double()
    p = feature.softmax(dim=1)
    log_p = feature.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        p_chunk = p[(i * n // splits):((i + 1) * n // splits), :]
        log_p_chunk = log_p[(i * n // splits):((i + 1) * n // splits), :]
        q_chunk = p_chunk.mean(dim=0, keepdim=True)
        kl_ = p_chunk * (log_p_chunk - q_chunk.log())
        scores.append(kl_.sum(dim=1).mean().exp().item())
    scores = torch.tensor(scores, dtype=torch.float64)
    return float(scores.mean()), float(scores.std())


def _kl_reference(gen_logits: torch.Tensor, ref_logits: torch.Tensor) -> float:
    """av-benchmark kl.py: F.kl_div(log_softmax(gen), log_softmax(gt), reduction='sum', log_target=True) / N."""
    g, r = gen_logits.double(), ref_logits.double()
    return float(torch.nn.functional.kl_div(g.log_softmax(1), r.log_softmax(1), reduction="sum",
                                            log_target=True) / g.shape[0])


def test_mova_is_equals_reference_formula():
    rng = np.random.default_rng(1)
    probs = 1 / (1 + np.exp(-rng.normal(-3, 3, size=(37, 527))))
    probs[0, :5] = 1.0  # saturated classes exercise the clamp
    probs[1, :] = 0.0
    ours = inception_score.mova_is(probs)
    ref = _mova_is_reference(torch.from_numpy(probs))
    assert abs(ours - ref) < 1e-9, (ours, ref)
    assert ours > 1.0


def test_split_is_equals_torch_fidelity():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, size=(53, 527))
    mean, std = inception_score.split_is(logits, splits=10, seed=2020)
    rmean, rstd = _isc_reference(torch.from_numpy(logits))
    assert abs(mean - rmean) < 1e-9 and abs(std - rstd) < 1e-9


def test_is_bounds():
    one_class = np.zeros((10, 527))
    one_class[:, 3] = 50.0
    assert inception_score.split_is(one_class, splits=1)[0] == pytest.approx(1.0, abs=1e-9)
    distinct = np.full((527, 527), -50.0)
    np.fill_diagonal(distinct, 50.0)
    assert inception_score.split_is(distinct, splits=1, shuffle=False)[0] == pytest.approx(527, rel=1e-6)


def test_kl_equals_av_benchmark_formula():
    rng = np.random.default_rng(3)
    gen, ref = rng.normal(0, 3, size=(11, 527)), rng.normal(0, 3, size=(11, 527))
    ours = kl.kl_softmax(ref, gen).mean()
    assert abs(ours - _kl_reference(torch.from_numpy(gen), torch.from_numpy(ref))) < 1e-9
    assert np.allclose(kl.kl_softmax(ref, ref), 0.0, atol=1e-12)


# ------------------------------------------------------------------ the metrics, with seeded random Cnn14 weights
@pytest.fixture(scope="module")
def random_cnn14():
    return {32000: panns.build_cnn14(32000, seed=11), 16000: panns.build_cnn14(16000, seed=12)}


@pytest.fixture
def patched(random_cnn14, monkeypatch):
    monkeypatch.setattr(panns, "load_cnn14", lambda sr, device="cpu", context=None: random_cnn14[sr])
    return random_cnn14


def _clip(x: np.ndarray, sr: int, name="c.wav") -> Clip:
    a = np.asarray(x, dtype=np.float32)[None]
    return Clip(path=name, content_hash=name, video=None, fps=None, audio=a, sample_rate=sr,
                duration=a.shape[-1] / sr)


def _item(i, cat="set1", ref=None):
    return SuiteItem(id=f"i{i}", category=cat, prompt="p", reference_audio=ref)


def _tones(n, sr, seconds):
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(5)
    return [0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) + 0.02 * rng.standard_normal(t.size) for k in range(n)]


def test_is_mova_mode_pads_to_10s_and_matches_formula(patched):
    m = inception_score.InceptionScore({"decode": "corrected"})  # in-memory clips: our decode, its own names
    m.load()
    assert m.all_is_category_mean
    clips = [_clip(x, 48000, f"c{k}") for k, x in enumerate(_tones(3, 48000, 1.0))]
    feats = [m.features(c, _item(k)) for k, c in enumerate(clips)]
    # the same audio, resampled to 32 kHz and padded to 320 000 samples, straight through the model
    from mova_eval.media import fit_length, resample_audio

    x = np.stack([fit_length(resample_audio(c.audio[0], 48000, 32000), 320000, "pad") for c in clips])
    with torch.no_grad():
        direct = patched[32000](torch.from_numpy(x))["clipwise_output"].numpy()
    np.testing.assert_allclose(np.stack(feats), direct, atol=1e-6)
    out = m.compute(feats, [_item(k) for k in range(3)])
    assert set(out.values) == {"is_corrected", "is_std_corrected"}
    assert abs(out.values["is_corrected"] - _mova_is_reference(torch.from_numpy(direct))) < 1e-6
    assert math.isnan(out.values["is_std_corrected"])
    # silence is scored, a clip longer than 10 s is cut
    assert np.isfinite(m.features(_clip(np.zeros(48000), 48000, "silent"), _item(9))).all()
    long = m.features(_clip(np.tile(_tones(1, 48000, 1.0)[0], 12), 48000, "long"), _item(10))
    assert long.shape == (527,)


def test_is_mova_default_decode_reads_the_file_as_the_toolkit(patched, tmp_path):
    """Default decode in mode mova: ffmpeg 32 kHz stereo s16 then the channel mean, padded to 10 s; outputs ``is``."""
    from mova_eval import media
    from mova_eval.errors import ConfigError

    x = _tones(1, 48000, 2.0)[0].astype(np.float32)
    path = media.encode(tmp_path / "a.mp4", np.zeros((48, 16, 16, 3), np.uint8), 24, np.stack([x, 0.5 * x]), 48000)
    clip = media.decode(path)
    m = inception_score.InceptionScore({})
    m.load()
    want = media.fit_length(media.ffmpeg_audio(path, 32000, 2, "s16").mean(axis=0), 320000, "pad")
    np.testing.assert_array_equal(m._audio(clip), want)
    with torch.no_grad():
        direct = patched[32000](torch.from_numpy(want[None]))["clipwise_output"].numpy()[0]
    np.testing.assert_allclose(m.features(clip, _item(0)), direct, atol=1e-6)
    assert not np.array_equal(want, inception_score.InceptionScore({"decode": "corrected"})._audio(clip))
    assert set(m.compute([direct, direct], [_item(0), _item(1)]).values) == {"is", "is_std"}
    assert m.cache_token() == inception_score.InceptionScore({"decode": "mova"}).cache_token()
    assert m.cache_token() != inception_score.InceptionScore({"decode": "corrected"}).cache_token()
    with pytest.raises(ConfigError, match="mode mova only"):
        inception_score.InceptionScore({"mode": "av_bench", "decode": "mova"})


def test_is_av_bench_mode(patched):
    m = inception_score.InceptionScore({"mode": "av_bench"})
    m.load()
    assert not m.all_is_category_mean and m.splits == 10
    clips = [_clip(x, 16000, f"c{k}") for k, x in enumerate(_tones(10, 16000, 0.5))]
    feats = [m.features(c, _item(k)) for k, c in enumerate(clips)]
    out = m.compute(feats, [_item(k) for k in range(10)])
    rmean, rstd = _isc_reference(torch.from_numpy(np.stack(feats).astype(np.float64)))
    # another protocol, its own names (is / is_std are mode mova's)
    assert abs(out.values["is_av_bench"] - rmean) < 1e-9 and abs(out.values["is_std_av_bench"] - rstd) < 1e-9
    with pytest.raises(MediaError, match="Cnn14 needs at least"):
        m.features(_clip(np.ones(3000), 16000, "short"), _item(0))
    with pytest.raises(ValueError, match="cannot fill 10 splits"):
        m.compute(feats[:4], [_item(k) for k in range(4)])


def test_kl_metric_pairs_reference_and_generated(patched, tmp_path):
    sf = pytest.importorskip("soundfile")
    tones = _tones(2, 16000, 1.0)
    ref_path = tmp_path / "ref.wav"
    sf.write(ref_path, tones[0].astype(np.float32), 16000)
    m = kl.KLPanns({})
    m.load()
    item = _item(0, ref=str(ref_path))
    assert m.applies(item) and not m.applies(_item(1))
    same = m.score(_clip(tones[0], 16000, "same"), item).values["kl_panns"]
    other = m.score(_clip(tones[1], 16000, "other"), item).values["kl_panns"]
    assert abs(same) < 1e-6 and other > same
    x = [t - t.mean() for t in tones]
    with torch.no_grad():
        lg = patched[16000](torch.from_numpy(np.stack(x).astype(np.float32)))["logits"]
    assert abs(other - _kl_reference(lg[1:2], lg[0:1])) < 1e-5
