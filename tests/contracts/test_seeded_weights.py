"""The per-item Metric contract, checked for every registered per-item metric with seeded random weights in its
official key layout (the real checkpoints cannot be fetched here):

* each metric is built by a builder in ``BUILDERS`` — the same seeded networks and weight files the per-metric parity
  tests use (``tests/metrics/*``), handed to the metric where it would load its checkpoint;
* it scores two synthetic smoke clips it applies to; the values are named exactly as the instance declares
  (``requested_outputs``), every non-finite value has a reason in ``errors`` and no reason names an undeclared output;
* scoring the same clips again gives the same values and reasons (determinism);
* ``cache_token`` is the same before loading, after scoring, and for a fresh instance with the same options.

A registered per-item metric with no builder fails ``test_every_per_item_metric_has_a_builder`` naming it; the only
exceptions are the entries of ``NOT_BUILT``, each with the reason it has none.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.metrics.base import ItemScore, Metric, SetLevelMetric
from mova_eval.registry import metric_classes

PER_ITEM = sorted(n for n, c in metric_classes().items() if not issubclass(c, SetLevelMetric))

#: per-item metrics without a builder, and why (never silent)
NOT_BUILT: dict[str, str] = {
    "clap": "the only CLAP layout the project can build is the full LAION HTSAT+RoBERTa model (~150 M parameters, "
            "RoBERTa tokenizer files from ../shared); too slow for a 2-core contract run — covered by "
            "tests/metrics/test_clap.py",
    "clap_mova": "as clap (same network)",
    "audiobox_aesthetics": "WavLM Base+ has no reduced configuration in features/audiobox.py (768-wide layers are "
                           "fixed), so seeded weights mean a 95 M-parameter network; covered by "
                           "tests/metrics/test_audiobox_aesthetics.py",
    "lse_mediapipe": "needs MediaPipe's face-landmarker task file, which no PyPI package here ships",
}


@dataclasses.dataclass
class Built:
    metric: Metric
    options: dict[str, Any]
    #: False where the seeded weights can only give NaN-with-reason (random S3FD finds no face); the check then
    #: requires that every value is NaN with a reason instead of requiring a finite one
    expect_values: bool = True
    #: rewrites the suite item before scoring (KL needs reference audio the smoke items do not have)
    item: Callable[[Any, list], Any] | None = None


# ----------------------------------------------------------------------------------------------- builders


def _plain(name: str, options: dict | None = None, expect_values: bool = True, item=None):
    def build(mp: pytest.MonkeyPatch, tmp: Path) -> Built:
        m = metric_classes()[name](options or {})
        m.load()
        return Built(m, options or {}, expect_values, item)
    return build


def _as_chinese(item, pairs):
    """The smoke suite has no Chinese dialogue: its English one, labelled zh (tiny.en refuses it with a reason)."""
    return dataclasses.replace(item, language="zh") if (item.num_speakers or 0) >= 2 else item


def _desync(name: str):
    def build(mp, tmp):
        import torch

        from mova_eval.metrics import desync
        from mova_eval.metrics.features import synchformer as sf
        from tests.metrics.synchformer_helpers import random_state

        # the reduced configuration of tests/metrics/test_desync.py (same key names as the released checkpoint)
        tiny = sf.SynchformerConfig(dim=64, v_depth=1, v_heads=4, a_depth=1, a_heads=4, mlp=128, g_depth=1, g_heads=4)
        torch.manual_seed(0)
        net = sf.Synchformer(tiny).eval()
        net.load_state_dict(random_state(tiny, seed=11), strict=True)
        mp.setattr(desync, "shared_network", lambda *a, **k: net)
        m = metric_classes()[name]({})
        m.load()
        return Built(m, {})
    return build


def _imagebind(name: str):
    def build(mp, tmp):
        from mova_eval.metrics import ib_score
        from mova_eval.metrics.features import imagebind as ib
        from tests.metrics.imagebind_ref import SMALL, small_reference_model

        net = ib.ImageBind(ib.ImageBindConfig(**SMALL)).eval()
        net.load_state_dict(ib.select_state(small_reference_model(seed=0).state_dict()), strict=True)
        mp.setattr(ib_score, "shared_network", lambda *a, **k: net)
        m = metric_classes()[name]({})
        m.load()
        return Built(m, {})
    return build


def _clip_video(mp, tmp):
    import torch

    from mova_eval.metrics import clip_video
    from mova_eval.metrics.features import clip_vit

    cfg = clip_vit.ClipConfig(vision_width=64, vision_layers=2, vision_heads=2, text_width=64, text_layers=2,
                              text_heads=2, embed=32)
    torch.manual_seed(3)
    net = clip_vit.ClipModel(cfg).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 else 0.05))
    mp.setattr(clip_video, "shared_network", lambda *a, **k: net)
    m = metric_classes()["clip_video"]({})
    m.load()
    return Built(m, {})


def _clip_video_viclip(mp, tmp):
    import torch

    from mova_eval.metrics import clip_video_viclip
    from mova_eval.metrics.features import viclip

    # the reduced configuration of tests/metrics/test_clip_video_viclip.py (same key names as the released file),
    # written and read back through the official loader
    cfg = viclip.ViClipConfig(vision_width=64, vision_layers=2, vision_heads=2, embed=32, text_width=64,
                              text_layers=2, text_heads=2)
    torch.manual_seed(4)
    net = viclip.ViClip(cfg).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 else 0.05))
    torch.save({"model": net.state_dict()}, tmp / "viclip.pth")
    loaded = viclip.load(tmp / "viclip.pth", cfg=cfg)
    mp.setattr(clip_video_viclip, "shared_network", lambda *a, **k: loaded)
    m = metric_classes()["clip_video_viclip"]({})
    m.load()
    return Built(m, {})


def _lse(name: str):
    def build(mp, tmp):
        from mova_eval import weights
        from tests.metrics.lse_helpers import random_s3fd, random_syncnet

        folder = tmp / "w"
        folder.mkdir(exist_ok=True)
        random_syncnet(folder / weights.get("syncnet_v2").filename)
        random_s3fd(folder / weights.get("sfd_face").filename, face_logit=-10.0)
        mp.setenv("MOVA_EVAL_WEIGHTS", str(folder))
        m = metric_classes()[name]({})
        m.load()
        # random S3FD weights with a face logit of −10 find no face (as a trained detector on a face-less frame):
        # every value is NaN with the detector's reason
        return Built(m, {}, expect_values=False)
    return build


def _kl(mp, tmp):
    from mova_eval.metrics.features import panns

    net = panns.build_cnn14(16000, seed=12)
    mp.setattr(panns, "load_cnn14", lambda *a, **k: net)
    m = metric_classes()["kl"]({})
    m.load()

    def with_reference(item, pairs):  # another smoke clip's file is this item's "ground truth"
        other = next(c for it, c in pairs if it.id != item.id and c.has_audio)
        return dataclasses.replace(item, reference_audio=str(other.path))
    return Built(m, {}, item=with_reference)


BUILDERS: dict[str, Callable[[pytest.MonkeyPatch, Path], Built]] = {
    "loudness": _plain("loudness"),
    "av_align": _plain("av_align"),
    "dnsmos": _plain("dnsmos"),
    "wer": _plain("wer"),
    "cpwer": _plain("cpwer"),
    # the multilingual Whisper base is not installed here; tiny.en (shipped on PyPI) scores English items and gives
    # Chinese ones NaN with the option to set — both sides of the contract
    "cer": _plain("cer", {"model": "tiny.en"}, expect_values=False),
    "cpcer": _plain("cpcer", {"model": "tiny.en"}, expect_values=False, item=_as_chinese),
    "cpcer_mova": _plain("cpcer_mova", {"model": "tiny.en"}, expect_values=False),
    "desync": _desync("desync"),
    "desync_avgen": _desync("desync_avgen"),
    "ib_score": _imagebind("ib_score"),
    "javis_score": _imagebind("javis_score"),
    "clip_video": _clip_video,
    "clip_video_viclip": _clip_video_viclip,
    "lse": _lse("lse"),
    "lse_latentsync": _lse("lse_latentsync"),
    "lipsync_offset_avgen": _lse("lipsync_offset_avgen"),
    "kl": _kl,
}


def test_every_per_item_metric_has_a_builder():
    missing = [n for n in PER_ITEM if n not in BUILDERS and n not in NOT_BUILT]
    assert not missing, (f"per-item metric(s) {missing} have no seeded-weights builder in "
                         f"tests/contracts/test_seeded_weights.py BUILDERS (or an entry in NOT_BUILT saying why)")
    assert not set(BUILDERS) & set(NOT_BUILT)
    stale = sorted(set(BUILDERS) | set(NOT_BUILT) - set(PER_ITEM))
    assert not [n for n in stale if n not in PER_ITEM], f"entries for metrics that are not registered: {stale}"
    assert all(len(why) > 20 for why in NOT_BUILT.values())


# ----------------------------------------------------------------------------------------------- the contract


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The smoke suite's synthetic clips (every category, speech in both languages), 8 s long (DeSync and IB-Score
    need 7.9 s), decoded once; the dialogue item twice (seeds 0 and 1), so speaker-attributed metrics get two clips."""
    from mova_eval.context import RunContext
    from mova_eval.registry import get_generator_class
    from mova_eval.runner import generate, plan_requests
    from mova_eval.suites import load_suite

    cfg = compose(["suite.limit=10", "generator.duration=8.0"])
    suite = load_suite(cfg["suite"])
    gen = get_generator_class(cfg["generator"]["name"])(dict(cfg["generator"]))
    gen.bind_suite(suite)
    gen.load()
    reqs = plan_requests(suite, [0], cfg["generator"])
    reqs += [r for r in plan_requests(suite, [1], cfg["generator"]) if (r.item.num_speakers or 0) >= 2]
    ctx = RunContext.from_config({"cache_dir": str(tmp_path_factory.mktemp("cache"))})
    res = generate(gen, reqs, cache_enabled=False, progress=False, context=ctx)
    return [(r.item, media.decode(res[r.request_id].path)) for r in reqs if res[r.request_id].ok]


def _same(a: ItemScore, b: ItemScore) -> bool:
    return (a.values.keys() == b.values.keys() and a.errors == b.errors
            and all(a.values[k] == b.values[k] or (math.isnan(a.values[k]) and math.isnan(b.values[k]))
                    for k in a.values))


def _pairs_for(m: Metric, built: Built, clips) -> list:
    ok = [(it, c) for it, c in clips
          if all(getattr(c, f"has_{k}") for k in ("video", "audio") if k in m.info.needs)]
    if built.item is not None:
        ok = [(built.item(it, clips), c) for it, c in ok]
    return [(it, c) for it, c in ok if m.applies(it)][:2]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PER_ITEM if n in BUILDERS])
def test_seeded_metric_keeps_the_contract(name, clips, monkeypatch, tmp_path):
    cls = metric_classes()[name]
    built = BUILDERS[name](monkeypatch, tmp_path)
    m = built.metric
    token = cls(built.options).cache_token()
    pairs = _pairs_for(m, built, clips)
    assert len(pairs) == 2, f"{name}: fewer than two smoke clips it applies to"
    declared = {o.name for o in m.requested_outputs()}
    assert declared <= {o.name for o in (*cls.info.outputs, *cls.info.variant_outputs)}
    first = [m.score(c, it) for it, c in pairs]
    finite = 0
    for (it, _), s in zip(pairs, first):
        assert isinstance(s, ItemScore)
        assert set(s.values) == declared, f"{name} on {it.id}: outputs {sorted(s.values)} ≠ declared {sorted(declared)}"
        assert set(s.errors) <= declared, f"{name} on {it.id}: a reason for an undeclared output {sorted(s.errors)}"
        for k, v in s.values.items():
            assert isinstance(v, float), f"{name}.{k} is a {type(v).__name__}, not a float"
            if math.isfinite(v):
                finite += 1
            else:
                assert s.errors.get(k), f"{name} on {it.id}: {k} is {v} without a reason"
    if built.expect_values:
        assert finite, f"{name}: no finite value on two clips (a builder that can only fail proves nothing)"
    again = [m.score(c, it) for it, c in pairs]
    for (it, _), a, b in zip(pairs, first, again):
        assert _same(a, b), f"{name} on {it.id}: a second score differs: {a.values} {a.errors} vs {b.values} {b.errors}"
    assert m.cache_token() == token == cls(built.options).cache_token(), f"{name}: cache_token is not stable"
