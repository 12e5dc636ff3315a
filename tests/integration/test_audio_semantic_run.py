"""`mova-eval run` with is and clap: weights absent → unavailable with the fetch command; weights present
(seeded random networks written in the official checkpoint layouts) → numbers for every category and `all`."""
from __future__ import annotations

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mova_eval.config import compose  # noqa: E402
from mova_eval.runner import run  # noqa: E402


def _cfg(tmp_path, metrics: str):
    # four items in two categories, 2 s tone clips: enough for per-category and `all` rows, cheap to score
    return compose(["suite=smoke", "suite.limit=4", "generator=synthetic", "generator.tts=none",
                    "generator.duration=2.0", f"metrics.only=[{metrics}]", f"output_dir={tmp_path}",
                    "runtime.progress=false", "runtime.bootstrap=10"])


def test_unavailable_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path / "none"))
    out = run(_cfg(tmp_path, "clap,is"))
    status = {s.name: s for s in out.log.metrics}
    assert not status["clap"].available and status["clap"].command == \
        "mova-eval weights fetch laion_clap_630k_audioset_fusion"
    assert not status["is"].available and status["is"].command == "mova-eval weights fetch panns_cnn14_32k"
    rows = [r for r in out.log.summary if r.family == "clap"]
    assert all(r.mean is None for r in rows)


def test_runs_with_weights_present(tmp_path, monkeypatch, roberta_tokenizer_dir, unpin_weights):
    from mova_eval.metrics import clap
    from mova_eval.metrics.features import panns

    wdir = tmp_path / "weights"
    (wdir / "roberta-base").mkdir(parents=True)
    for f in ("vocab.json", "merges.txt"):
        os.symlink(roberta_tokenizer_dir / f, wdir / "roberta-base" / f)
    torch.save({"model": panns.build_cnn14(32000, seed=1).state_dict(), "iteration": 0},
               wdir / "Cnn14_mAP=0.431.pth")
    torch.manual_seed(0)
    torch.save(clap.build_clap_model(None).state_dict(), wdir / "630k-audioset-fusion-best.pt")  # converted layout
    unpin_weights("laion_clap_630k_audioset_fusion", "panns_cnn14_32k")  # stand-ins: not LAION's or Zenodo's files
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(wdir))
    monkeypatch.setattr(panns, "_LOADED", {})
    monkeypatch.setattr(clap, "_ENCODERS", {})

    out = run(_cfg(tmp_path, "is,clap"))  # clap_mova shares the loading path; its choices are unit-tested
    assert all(s.available for s in out.log.metrics), [(s.name, s.reason) for s in out.log.metrics]
    by = {(r.metric, r.category): r for r in out.log.summary}
    cats = sorted({c for (_, c) in by if c != "all"})
    assert len(cats) >= 2
    for metric in ("is", "clap"):
        for c in cats + ["all"]:
            r = by[(metric, c)]
            assert r.mean is not None and math.isfinite(r.mean), (metric, c, r.note)
    assert by[("is", "all")].mean == pytest.approx(sum(by[("is", c)].mean for c in cats) / len(cats))
    assert -1.0 <= by[("clap", "all")].mean <= 1.0
    run_json = json.loads((tmp_path / out.log.run_id / "run.json").read_text())
    assert run_json["status"] == "complete"
