"""Synchformer / DeSync parity with the reference, hkchengrex/av-benchmark ``av_bench/synchformer``.

The reference is not on PyPI and is not vendored: these tests import it from ``MOVA_EVAL_AVBENCH`` (see
``synchformer_ref.py``) and skip with that instruction when it is absent. Both networks load the same seeded random
state_dict in the official 513-key layout. Compared stage by stage (max |Δ| ≤ 1e-4): visual tokens, each of the 12
divided blocks, the final norm, the spatially pooled segment features; the AST embeddings, each of its 12 layers,
its final norm, the frequency-pooled features; the 21 offset logits; and the final per-clip DeSync values of both
protocols on a synthetic clip, with the reference's segmentation and window choice re-stated in the test.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from .synchformer_ref import reference_synchformer_module  # noqa: E402

try:
    REF = reference_synchformer_module()
except ImportError as e:  # pragma: no cover - depends on the machine
    pytest.skip(f"{e}", allow_module_level=True)

from mova_eval.metrics import desync  # noqa: E402
from mova_eval.metrics.features import synchformer as sf  # noqa: E402

from .synchformer_helpers import random_state, synthetic_av  # noqa: E402

TOL = 1e-4
REPORT: dict[str, float] = {}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    path = tmp_path_factory.mktemp("synchformer") / "synchformer_state_dict.pth"
    torch.save(random_state(seed=7), path)
    ref = REF.Synchformer().eval()
    ref.load_state_dict(torch.load(path, weights_only=True), strict=True)
    ours = sf.load(path)
    yield ours, ref, path
    print("\nSynchformer parity, max |ours − reference|:")
    for k, v in REPORT.items():
        print(f"  {k:<28} {v:.3g}")


def _diff(name, a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert a.shape == b.shape, (name, a.shape, b.shape)
    d = float((a - b).abs().max())
    REPORT[name] = max(REPORT.get(name, 0.0), d)
    assert d <= TOL, f"{name}: max |Δ| = {d:.3g}"
    return d


def _nonvacuous(x, y):
    """The compared arrays carry signal: not constant, and different for two different inputs."""
    assert float(x.std()) > 1e-3
    assert float((x - y).abs().max()) > 1e-3


def test_state_dict_layout_is_the_references():
    ours, ref = sf.Synchformer().state_dict(), REF.Synchformer().state_dict()
    assert list(ours) == list(ref) and len(ours) == 513
    assert all(ours[k].shape == ref[k].shape for k in ours)


def _capture(modules):
    out = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: out.__setitem__(k, o[0] if isinstance(o, tuple) else o))
             for k, m in modules.items()]
    return out, hooks


@torch.inference_mode()
def test_visual_stream_stage_by_stage(nets):
    ours, ref, _ = nets
    g = torch.Generator().manual_seed(1)
    seg = torch.rand(2, 16, 3, 224, 224, generator=g) * 2 - 1  # [S, T, C, H, W] in [-1, 1]
    rv = ref.vfeat_extractor
    mods = {f"block{i}": b for i, b in enumerate(rv.blocks)}
    mods["norm"] = rv.norm
    got, hooks = _capture(mods)
    pre = {}
    hooks.append(rv.blocks[0].register_forward_pre_hook(lambda m, a: pre.__setitem__("tokens", a[0])))
    ref_out = ref.extract_vfeats(seg[None])[0]  # (S, 8, D)
    for h in hooks:
        h.remove()
    m = ours.vfeat_extractor
    x = m.tokens(seg.permute(0, 2, 1, 3, 4))
    _diff("visual tokens", x, pre["tokens"])
    for i, blk in enumerate(m.blocks):
        x = blk(x, 8, 196)
        _diff(f"visual block {i}", x, got[f"block{i}"])
    feats = m.norm(x[:, 1:])
    _diff("visual norm", feats, got["norm"])
    pooled = m.pool(feats)
    _diff("visual pooled (S,8,D)", pooled, ref_out)
    _diff("visual_features()", ours.visual_features(seg, batch=1), ref_out)
    _nonvacuous(pooled[0], pooled[1])


@torch.inference_mode()
def test_audio_stream_stage_by_stage(nets):
    ours, ref, _ = nets
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(3 * 5120 + 10240, generator=g) * 0.1
    mel = sf.log_mel(sf.audio_segments(audio))  # [S, 128, 66]
    ra = ref.afeat_extractor
    mods = {f"layer{i}": lyr for i, lyr in enumerate(ra.ast.encoder.layer)}
    mods.update(emb=ra.ast.embeddings, ln=ra.ast.layernorm)
    got, hooks = _capture(mods)
    ref_out = ref.extract_afeats(mel[None, :, None])[0]  # (S, 6, D)
    for h in hooks:
        h.remove()
    a = ours.afeat_extractor
    x = a.tokens(mel)
    _diff("audio embeddings", x, got["emb"])
    for i, lyr in enumerate(a.ast.encoder.layer):
        x = lyr(x)
        _diff(f"audio layer {i}", x, got[f"layer{i}"])
    x = a.ast.layernorm(x)
    _diff("audio final norm", x, got["ln"])
    pooled = a.pool(x[:, 2:])
    _diff("audio pooled (S,6,D)", pooled, ref_out)
    _diff("audio_features()", ours.audio_features(mel), ref_out)
    _nonvacuous(pooled[0], pooled[1])


@torch.inference_mode()
def test_offset_logits(nets):
    ours, ref, _ = nets
    g = torch.Generator().manual_seed(3)
    v = torch.randn(3, 14, 8, 768, generator=g)
    a = torch.randn(3, 14, 6, 768, generator=g)
    lo, lr = ours.compare(v, a), ref.compare_v_a(v, a)
    _diff("offset logits", lo, lr)
    _nonvacuous(lo[0], lo[1])


def _reference_windows(ref, frames_uint8, audio, starts):
    """av-benchmark's ``encode_video_with_sync`` / ``encode_audio_with_sync`` segmentation on the reference model,
    then ``compare_v_a`` on 14 segments from each start."""
    x = torch.from_numpy(np.ascontiguousarray(frames_uint8)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - 0.5) / 0.5  # Normalize(0.5, 0.5)
    nv = (x.shape[0] - 16) // 8 + 1
    vis = torch.stack([x[i * 8 : i * 8 + 16] for i in range(nv)])[None]  # (1, S, T, C, H, W)
    a = torch.from_numpy(np.ascontiguousarray(audio))
    na = (a.shape[0] - 10240) // 5120 + 1
    segs = torch.stack([a[i * 5120 : i * 5120 + 10240] for i in range(na)])
    mel = sf.log_mel(segs)  # stage compared separately (no torchaudio here): test_desync.py::test_log_mel_*
    vf = torch.cat([ref.extract_vfeats(vis[:, i : i + 2]) for i in range(0, nv, 2)], dim=1)
    af = ref.extract_afeats(mel[None, :, None])
    n = min(nv, na)
    starts = [s if s >= 0 else n + s for s in starts]
    return [ref.compare_v_a(vf[:, s : s + 14], af[:, s : s + 14])[0] for s in starts], n


@pytest.mark.slow
@torch.inference_mode()
def test_final_desync_values_match_reference(nets, tmp_path, monkeypatch):
    """Both protocols end to end on a 7.9 s synthetic clip (MOVA: windows at segment 0 and n − 14, argmax; AVGen:
    the 0.08–4.88 s window of the first 5 s, |expected offset|)."""
    from mova_eval import media
    from mova_eval.spec import SuiteItem

    ours, ref, path = nets
    frames, audio = synthetic_av(7.9, fps=25.0, size=(176, 320), seed=4, audio_delay_s=0.2)
    clip_path = media.encode(tmp_path / "c.mkv", frames, 25.0, audio, 16000, lossless=True)
    clip = media.decode(clip_path)
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(path.parent))
    item = SuiteItem(id="x", category="set1", prompt="")
    for metric_cls, proto in ((desync.DeSyncMetric, desync.MOVA), (desync.DeSyncAVGenMetric, desync.AVGEN)):
        m = metric_cls()
        got = m.score(clip, item)
        f, a, _ = desync.prepare(clip, proto)
        if proto is desync.MOVA:
            logits, n = _reference_windows(ref, f, a, [0, -14])
            grid = np.linspace(-2, 2, 21)
            want = float(np.mean([abs(grid[int(torch.argmax(lg))]) for lg in logits]))
            for lg in logits:  # the argmax is not a near-tie, so equal values mean equal decisions
                top = torch.topk(lg, 2).values
                assert float(top[0] - top[1]) > 10 * TOL
        else:
            logits, n = _reference_windows(ref, f[2:122], a[1280 : 1280 + 76800], [0])
            p = torch.softmax(logits[0].double(), -1).numpy()
            want = abs(float(np.sum(p * np.linspace(-2, 2, 21))))
        assert len(got.details["windows"]) == len(logits) == (2 if proto is desync.MOVA else 1)
        res = desync.score_window_sets(ours, f, a, proto)
        for w, lg in zip(res.windows, logits):
            _diff(f"window logits ({proto.name})", w.logits, lg)
        _diff(f"final {proto.name} value", got.values[metric_cls.info.outputs[0].name], want)
