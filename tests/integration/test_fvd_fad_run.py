"""FVD and FAD end to end: `mova-eval reference build`, then a run with metrics.only=[fvd,fad], plus the bad-input
outcomes (missing / mismatched reference, short clips, silent audio, per-item reference audio).

Real checkpoints cannot be downloaded here, so the weights folder holds files in the official formats: a seeded
random VGGish state_dict (the torch port's layout) and a small TorchScript module with StyleGAN-V's I3D call
signature (the real networks' parity is tested in tests/metrics/). Numbers are therefore plumbing checks, not FVDs.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mova_eval import media, references  # noqa: E402
from mova_eval.cli import main  # noqa: E402
from mova_eval.errors import MetricUnavailable  # noqa: E402
from mova_eval.metrics import fad as fad_mod  # noqa: E402
from mova_eval.metrics import fvd as fvd_mod  # noqa: E402
from mova_eval.metrics.features import vggish  # noqa: E402
from mova_eval.spec import Clip, SuiteItem  # noqa: E402


class _FakeI3D(torch.nn.Module):
    """StyleGAN-V's detector signature; features = a fixed random projection of a pooled video (400-d)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(3 * 2 * 4 * 4, 400, generator=g))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x / 255.0 * 2.0 - 1.0
        p = torch.nn.functional.adaptive_avg_pool3d(x, (2, 4, 4)).flatten(1)
        return torch.tanh(p @ self.proj)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    torch.jit.script(_FakeI3D()).save(str(d / "i3d_torchscript.pt"))
    torch.manual_seed(0)
    net = vggish.build_vggish()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * (2.0 / max(1, p[0].numel())) ** 0.5 if p.dim() > 1 else torch.zeros_like(p))
    torch.save(net.state_dict(), d / "vggish-10086976.pth")
    return d


@pytest.fixture
def env(weights_dir, monkeypatch, tmp_path, unpin_weights):
    unpin_weights("vggish")  # the stand-in is not torchvggish's file (published sha256 prefix in its name)
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _real_folder(root, n=6, sr=22_050):
    rng = np.random.default_rng(1)
    d = root / "real"
    for i in range(n):
        frames = (rng.integers(0, 255, size=(1, 1, 1, 3)) + rng.integers(0, 40, size=(20, 64, 64, 3))).clip(0, 255)
        t = np.arange(int(1.5 * sr)) / sr
        audio = (0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
        media.encode(d / f"real{i}.mp4", frames.astype(np.uint8), 24, audio, sr)
    media.encode(d / "short.mp4", np.zeros((8, 64, 64, 3), np.uint8), 24, np.zeros(sr, np.float32), sr)
    return d


def _run(root, *extra):
    from mova_eval import run

    return run(["generator.width=64", "generator.height=64", "generator.duration=1.0", "runtime.progress=false",
                "runtime.bootstrap=0", "runtime.device=cpu", f"output_dir={root / 'runs'}", *extra])


def test_reference_build_then_run(env, capsys):
    real = _real_folder(env)
    assert main(["reference", "build", "real_fvd", "--metric", "fvd", "--from", str(real), "--quiet",
                 "--protocol", "fvd_styleganv"]) == 0
    out = capsys.readouterr().out
    assert "n=6 clips" in out and "1 excluded" in out and "excluded short.mp4: ShortClipError" in out
    # never overwritten silently
    assert main(["reference", "build", "real_fvd", "--metric", "fvd", "--from", str(real), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["reference", "build", "real_fad", "--metric", "fad", "--from", str(real), "--quiet"]) == 0
    meta = references.load("real_fad", metric="fad").meta
    assert meta["protocol"] == "fad_vggish" and meta["n_clips"] == 7 and meta["padded_clips"] == 0
    assert meta["extractor"]["weights_sha256"] != "absent" and meta["created_by"].startswith("mova-eval")
    assert meta["n_vectors"] == 7  # one 0.96 s example per 1–1.5 s clip
    assert main(["reference", "list"]) == 0 and "real_fvd" in capsys.readouterr().out

    outcome = _run(env, "metrics=distribution", "metrics.options.fvd.reference=real_fvd",
                   "metrics.options.fad.reference=real_fad", "metrics.options.fvd.bootstrap=10",
                   "metrics.options.fad.bootstrap=0", "+metrics.options.fad.inf_steps=5")
    rows = {(r.metric, r.category): r for r in outcome.log.summary}
    fvd_all, fad_all = rows[("fvd", "all")], rows[("fad", "all")]
    assert fvd_all.n == 10 and fvd_all.mean is not None and fvd_all.mean > 0
    assert "protocol fvd_styleganv" in fvd_all.note and "biased (1/N)" in fvd_all.note
    assert "rank-deficient" in fvd_all.note  # 10 clips for 400-d features
    assert fvd_all.ci_low is not None and fvd_all.ci_low <= fvd_all.ci_high
    assert rows[("fvd_kid", "all")].mean is not None
    assert fad_all.mean is not None and "unbiased (N−1)" in fad_all.note
    assert rows[("fad_inf", "all")].mean is not None and "fewer than min_n" in rows[("fad_inf", "all")].note
    assert "mixed" not in fad_all.note  # every generated clip is 16 kHz
    # a category with one clip: no covariance, a reason instead of a number
    single = [r for r in outcome.log.summary if r.metric == "fvd" and r.n == 1]
    assert single and all(r.mean is None and "at least 2" in r.note for r in single)


def test_missing_reference_is_reported_with_the_build_command(env):
    outcome = _run(env, "metrics.only=[fvd]", "metrics.options.fvd.reference=nope", "suite.limit=2")
    assert outcome.items.empty  # a set-level metric has no per-item outputs: its exclusions are feature rows
    assert len(outcome.features) == 2 and outcome.features["cache_key"].isna().all()
    errs = outcome.features["error"].dropna().unique()
    assert len(errs) == 1 and "mova-eval reference build nope --metric fvd" in errs[0]
    status = {m.name: m for m in outcome.log.metrics}["fvd"]
    assert not status.available and "not built" in status.reason


def test_reference_of_another_protocol_is_refused(env):
    real = _real_folder(env)
    from mova_eval.reference_cli import build

    build("ref_sg", "fvd", real, protocol="fvd_styleganv", progress=False)
    m = fvd_mod.FVD({"reference": "ref_sg", "protocol": "fvd_tf"})
    with pytest.raises(MetricUnavailable, match="protocol 'fvd_styleganv'; this run uses 'fvd_tf'"):
        m.load()


def _clip(video=None, fps=24.0, audio=None, sr=None, name="x"):
    dur = max(0 if video is None else len(video) / fps, 0 if audio is None else audio.shape[-1] / sr)
    return Clip(path=f"/tmp/{name}.mp4", content_hash=name, video=video, fps=fps if video is not None else None,
                audio=audio, sample_rate=sr, duration=dur)


def test_short_clip_is_excluded_not_looped(env):
    m = fvd_mod.FVD({"reference": "unused"})
    with pytest.raises(fvd_mod.ShortClipError, match="has 12 frames.*needs 16 consecutive frames — excluded"):
        m.features(_clip(np.zeros((12, 32, 32, 3), np.uint8)), SuiteItem("a", "c", "p"))
    stride = fvd_mod.FVD({"reference": "unused", "stride": 2})
    with pytest.raises(fvd_mod.ShortClipError, match="needs 31"):
        stride.features(_clip(np.zeros((20, 32, 32, 3), np.uint8)), SuiteItem("a", "c", "p"))
    f = m.features(_clip(np.zeros((40, 32, 32, 3), np.uint8), fps=25.0), SuiteItem("a", "c", "p"))
    emb, meta = fvd_mod.frechet.unpack_features(f)
    assert emb.shape == (1, 400) and meta["fps"] == 25.0 and meta["frames"] == 40


def test_fad_silent_short_and_mixed_rate_audio(env):
    m = fad_mod.FAD({"reference": fad_mod.PER_ITEM})
    item = SuiteItem("a", "c", "p")
    silent = m.features(_clip(audio=np.zeros((1, 48_000), np.float32), sr=48_000, name="s"), item)
    emb, meta = fad_mod.frechet.unpack_features(silent)
    assert emb.shape == (1, 128) and meta["silent"] == 1.0 and np.isfinite(emb).all()
    short = m.features(_clip(audio=0.1 * np.ones((2, 4000), np.float32), sr=16_000, name="t"), item)
    emb, meta = fad_mod.frechet.unpack_features(short)
    assert emb.shape == (1, 128) and meta["padded"] == 1.0 and meta["silent"] == 0.0


def test_fad_per_item_reference_audio(env):
    sr = 16_000
    rng = np.random.default_rng(0)
    items, feats = [], []
    m = fad_mod.FAD({"reference": fad_mod.PER_ITEM, "bootstrap": 0})
    for i in range(4):
        ref = env / f"ref{i}.wav"
        import soundfile as sf

        sf.write(ref, (0.2 * rng.normal(size=2 * sr)).astype(np.float32), sr)
        items.append(SuiteItem(f"i{i}", "set2", "p", reference_audio=str(ref)))
        gen = (0.2 * np.sin(2 * np.pi * 300 * np.arange(2 * sr) / sr)).astype(np.float32)[None]
        feats.append(m.features(_clip(audio=gen, sr=44_100 if i == 0 else sr, name=f"g{i}"), items[-1]))
    assert not m.applies(SuiteItem("no_ref", "set1", "p"))
    vals = m.compute(feats, items)
    assert math.isfinite(vals.values["fad"]) and vals.values["fad"] > 0
    assert "items' own reference audio (4 files" in vals.note and "mixed source sample rates" in vals.note
    same = m.compute(feats, items)
    assert same.values["fad"] == vals.values["fad"]  # deterministic (reference features come from the cache the second time)
    assert json.dumps(vals.details)  # details are JSON-serialisable for the run log


class _FlagProbe(torch.nn.Module):
    """Reports how it was called: feature 0 = 1 if rescale, feature 1 = 1 if resize, 2 = input mean, 3 = height."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 400)
        out[:, 0] = float(rescale)
        out[:, 1] = float(resize)
        out[:, 2] = x.float().mean()
        out[:, 3] = float(x.shape[3])
        return out


@pytest.mark.parametrize("protocol, want", [("fvd_styleganv", (1, 1, 255.0, 48)), ("fvd_tf", (0, 0, 1.0, 224))])
def test_protocols_call_the_torchscript_as_their_reference(tmp_path, monkeypatch, protocol, want):
    d = tmp_path / "w"
    d.mkdir()
    torch.jit.script(_FlagProbe()).save(str(d / "i3d_torchscript.pt"))
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(d))
    m = fvd_mod.FVD({"protocol": protocol})
    emb, _ = fvd_mod.frechet.unpack_features(
        m.features(_clip(np.full((16, 48, 64, 3), 255, np.uint8)), SuiteItem("a", "c", "p")))
    assert tuple(float(v) for v in emb[0, :4]) == pytest.approx(want)
    assert m.protocol.unbiased == (protocol == "fvd_tf")


def test_without_weights_fvd_and_fad_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("MOVA_EVAL_WEIGHTS", raising=False)
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "cache"))
    outcome = _run(tmp_path, "metrics.only=[fvd,fad]", "suite.limit=1")
    errs = set(outcome.features["error"].dropna())
    assert any("mova-eval weights fetch i3d_torchscript" in e for e in errs)
    assert any("mova-eval weights fetch vggish" in e for e in errs)
    assert outcome.items.empty and outcome.features["cache_key"].isna().all()


def test_suite_declared_reference_is_used_unless_an_option_names_one(env):
    """references: {fad: NAME} in the suite config reaches FAD; metrics.options.fad.reference overrides it; the
    summary note and the run log say which source chose the reference."""
    real = _real_folder(env, n=3)
    from mova_eval.reference_cli import build

    build("suite_fad", "fad", real, progress=False)
    build("option_fad", "fad", real, progress=False)
    base = ["metrics.only=[fad]", "suite.limit=3", "+metrics.options.fad.bootstrap=0", "+metrics.options.fad.inf_steps=3",
            "suite.references.fad=suite_fad"]
    by_suite = _run(env, *base)
    row = {(r.metric, r.category): r for r in by_suite.log.summary}[("fad", "all")]
    assert row.mean is not None and row.n == 3
    assert "reference 'suite_fad' (chosen by suite smoke (references.fad))" in row.note
    status = {m.name: m for m in by_suite.log.metrics}["fad"]
    assert status.options["reference"] == "suite_fad" and status.options["reference_from"].startswith("suite smoke")
    explicit = _run(env, *base, "metrics.options.fad.reference=option_fad")
    row = {(r.metric, r.category): r for r in explicit.log.summary}[("fad", "all")]
    assert "reference 'option_fad' (chosen by metrics.options.fad.reference)" in row.note
    assert by_suite.log.config_hash != explicit.log.config_hash
