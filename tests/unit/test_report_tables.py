"""Report tables from hand-made summary records: the mova_table4 layout puts each cell in the paper's protocol
(set3 for DNSMOS and LSE, the mean of the per-set values for IS/DeSync/IB-Score), published rows sit beside ours,
missing columns say why; golden Markdown and LaTeX; the LaTeX compiles with pdflatex where it is installed."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mova_eval.report.data import MetricState, ModelRuns, ReportData, RunInfo
from mova_eval.report.render import table_latex, table_markdown
from mova_eval.report.tables import DASH, layout_table, leaderboard
from mova_eval.summary import ALL, REASONS, ExclusionReason, SummaryRecord

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MOVA_EVAL_UPDATE_GOLDEN") == "1"

DIRECTION = {"is": "higher", "dnsmos_p808": "higher", "desync": "lower", "ib_score": "higher", "lse_d": "lower",
             "lse_c": "higher", "cpcer": "lower", "cpcer_mova": "lower", "av_align": "higher"}
FAMILY = {"is": "is", "dnsmos_p808": "dnsmos", "desync": "desync", "ib_score": "imagebind", "lse_d": "lse",
          "lse_c": "lse", "cpcer": "cpcer", "cpcer_mova": "cpcer_mova", "av_align": "av_align"}


def rec(model, metric, category, mean, ci=None, n=20, suite="verse", language=ALL, missing=0, agg="pooled_mean"):
    lo, hi = ci if ci else (math.nan, math.nan)
    excl = {r: 0 for r in REASONS}
    excl[ExclusionReason.MISSING_CLIP] = missing
    return SummaryRecord(run_id=f"run-{model}", suite=suite, model=model, generator="directory",
                         family=FAMILY[metric], metric=metric, category=category, language=language, mean=mean,
                         ci_low=lo, ci_high=hi, n=n, excluded=excl, direction=DIRECTION[metric], aggregation=agg,
                         config_hash="c0ffee")


def info(model, suite="verse", families=("is", "dnsmos", "desync", "imagebind", "lse", "av_align")):
    return RunInfo(run_id=f"run-{model}", path=f"/runs/run-{model}", suite=suite, model=model, generator="directory",
                   status="complete", config_hash="c0ffee", git_revision="0123456789abcdef",
                   packages={"mova-eval": "0.1.0"},
                   metrics={f: MetricState(True, options={}, weights={}, version="1") for f in families})


def model_records(model, base):
    """A model's verse records: per-set values and the run's `all` rows (the MOVA aggregation of those sets)."""
    r = []
    is_sets = [base + 0.1, base + 0.5, base - 0.2]
    r += [rec(model, "is", s, v, n=20, agg="set_level") for s, v in zip(("set1", "set2", "set3"), is_sets)]
    r.append(rec(model, "is", ALL, sum(is_sets) / 3, ci=(base - 0.2, base + 0.4), n=60, agg="set_level"))
    r += [rec(model, "dnsmos_p808", "set1", 3.0), rec(model, "dnsmos_p808", "set2", 3.1),
          rec(model, "dnsmos_p808", "set3", base - 0.278, ci=(base - 0.3, base - 0.25), missing=2),
          rec(model, "dnsmos_p808", ALL, 3.3, ci=(3.2, 3.4), n=60, agg="category_mean")]
    ds = [0.4, 0.5, 0.6 if model == "ours-A" else 0.3]
    r += [rec(model, "desync", s, v) for s, v in zip(("set1", "set2", "set3"), ds)]
    r.append(rec(model, "desync", ALL, sum(ds) / 3, ci=(0.3, 0.6), n=60, agg="category_mean"))
    ib = [0.25, 0.30, 0.20]
    r += [rec(model, "ib_score", s, v) for s, v in zip(("set1", "set2", "set3"), ib)]
    r.append(rec(model, "ib_score", ALL, 0.26, ci=(0.2, 0.3), n=60, agg="category_mean"))  # not the set mean
    r += [rec(model, "lse_d", "set3", 7.5, ci=(7.3, 7.7)), rec(model, "lse_d", ALL, 8.0, agg="pooled_mean"),
          rec(model, "lse_c", "set3", 6.5, ci=(6.2, 6.9)), rec(model, "lse_c", ALL, 6.0, agg="pooled_mean")]
    return r


@pytest.fixture
def data():
    return ReportData([ModelRuns("verse", "ours-A", [info("ours-A")], model_records("ours-A", 4.0)),
                       ModelRuns("verse", "ours-B", [info("ours-B")], model_records("ours-B", 4.4))])


def _row(t, label):
    return next(r for r in t.rows if r.label == label)


def test_table4_places_cells_in_the_papers_protocol(data):
    t = layout_table(data, "mova_table4", published=False)
    assert [c.key for c in t.columns] == ["IS", "DNSMOS", "DeSync", "IB-Score", "LSE-D", "LSE-C", "cpCER"]
    a = _row(t, "ours-A").cells
    # hand-computed: IS = mean of the per-set IS values; its CI is the run's `all` row, which is that statistic
    assert a["IS"].mean == pytest.approx((4.1 + 4.5 + 3.8) / 3)
    assert (a["IS"].ci_low, a["IS"].ci_high) == (3.8, 4.4)
    # DNSMOS and LSE are the set3 values, not `all` (3.3, 8.0, 6.0)
    assert a["DNSMOS"].mean == pytest.approx(4.0 - 0.278) and a["DNSMOS"].n == 20 and a["DNSMOS"].excluded == 2
    assert a["DNSMOS"].note == "2 missing clip"
    assert a["LSE-D"].mean == 7.5 and a["LSE-C"].mean == 6.5
    # DeSync / IB-Score: mean of set1/2/3 means
    assert a["DeSync"].mean == pytest.approx(0.5) and a["DeSync"].has_ci
    assert a["IB-Score"].mean == pytest.approx(0.25)
    assert not a["IB-Score"].has_ci  # the run's `all` (0.26) is another statistic: its CI is not borrowed
    # cpCER is on MyBench, which no run covers: "–" with the reason
    assert not a["cpCER"].has_value and a["cpCER"].footnotes
    assert "mybench" in t.footnotes[a["cpCER"].footnotes[0] - 1]
    # best/second by direction (DeSync lower is better: B's 0.4 beats A's 0.5)
    b = _row(t, "ours-B").cells
    assert b["DeSync"].rank == 1 and a["DeSync"].rank == 2
    assert b["IS"].rank == 1 and a["IS"].rank == 2


def test_table4_cpcer_comes_from_the_mybench_run_in_percent_printed_as_the_papers_fraction(data):
    """MOVA's cpCER is written in percent (cpcer_mova); Table 4 prints the fraction: the cell is the mybench run's
    corpus value ÷ 100, CI included, and a verse-only model still shows the dash with its reason."""
    mb = [rec("ours-A", "cpcer_mova", "multi-speaker", 17.7, ci=(12.0, 24.0), n=27, suite="mybench", agg="corpus"),
          rec("ours-A", "cpcer_mova", ALL, 17.7, ci=(12.0, 24.0), n=27, suite="mybench", agg="corpus")]
    runs = data.models + [ModelRuns("mybench", "ours-A", [info("ours-A", "mybench", ("cpcer_mova",))], mb)]
    t = layout_table(ReportData(runs), "mova_table4")
    cell = _row(t, "ours-A").cells["cpCER"]
    assert cell.mean == pytest.approx(0.177) and (cell.ci_low, cell.ci_high) == pytest.approx((0.12, 0.24))
    assert cell.record is mb[1] and cell.n == 27
    assert not _row(t, "ours-B").cells["cpCER"].has_value
    assert next(c for c in t.columns if c.key == "cpCER").unit == "fraction"


def test_table4_published_rows_beside_ours(data):
    t = layout_table(data, "mova_table4", published=True)
    pub = [r for r in t.rows if r.published]
    assert [r.model for r in pub][:3] == ["LTX-2", "Ovi", "WAN2.1+MMAudio"]
    mova = _row(t, "MOVA-360p (s_B=1.0)").cells
    assert mova["IS"].mean == 4.269 and mova["DNSMOS"].mean == 3.797 and mova["cpCER"].mean == 0.177
    wan = _row(t, "WAN2.1+MMAudio").cells
    assert not wan["DNSMOS"].has_value and wan["DeSync"].mean == 0.260
    assert wan["DeSync"].rank == 1  # the paper's bold DeSync
    assert any("Table 4" in p and "verse_bench.jpg" in p for p in t.provenance)
    assert mova["IS"].rank == 2  # ours-B's (4.5+4.9+4.2)/3 = 4.533 beats it in this made-up data


def test_table4_explains_absent_and_mismatched_metrics(data):
    from mova_eval.registry import metric_classes

    recs = [r for r in data.models[0].records if r.metric not in ("ib_score", "lse_c", "lse_d")]
    recs = [r for r in recs if not (r.metric == "dnsmos_p808" and r.category == "set3")]
    runs = [info("ours-A", families=("is", "dnsmos", "desync", "av_align"))]
    runs[0].metrics["is"] = MetricState(True, options={"mode": "av_bench"})
    runs[0].metrics["lse"] = MetricState(False, reason="weights 'syncnet_v2' are missing",
                                         command="mova-eval weights fetch syncnet_v2")
    t = layout_table(ReportData([ModelRuns("verse", "ours-A", runs, recs)]), "mova_table4")
    cells = t.rows[0].cells
    notes = {k: t.footnotes[c.footnotes[0] - 1] for k, c in cells.items() if not c.has_value}
    assert set(notes) == {"IS", "DNSMOS", "IB-Score", "LSE-D", "LSE-C", "cpCER"}
    assert "mode=av_bench" in notes["IS"] and "mode=mova" in notes["IS"]
    assert "set3" in notes["DNSMOS"]
    assert "syncnet_v2" in notes["LSE-C"] and "mova-eval weights fetch syncnet_v2" in notes["LSE-C"]
    registered = any(o.name == "ib_score" for c in metric_classes().values() for o in c.info.outputs)
    assert ("was not run" if registered else "not a metric of this mova-eval") in notes["IB-Score"]
    assert cells["DeSync"].has_value


def test_leaderboard_groups_by_suite_and_marks_best_within_a_suite():
    recs = {("verse", "A"): 0.30, ("verse", "B"): 0.20, ("smoke", "A"): 0.90}
    models = [ModelRuns(s, m, [info(m, suite=s)], [rec(m, "av_align", ALL, v, ci=(v - .05, v + .05), suite=s,
                                                     agg="category_mean")])
              for (s, m), v in recs.items()]
    t = leaderboard(ReportData(models))
    assert [(r.group, r.label) for r in t.rows] == [("verse", "A"), ("verse", "B"), ("smoke", "A")]
    ranks = [r.cells["av_align"].rank for r in t.rows]
    assert ranks == [1, 2, None]  # one model on smoke: nothing to compare it with


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing; regenerate with MOVA_EVAL_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file (MOVA_EVAL_UPDATE_GOLDEN=1)"


def test_golden_markdown_and_latex(data):
    t = layout_table(data, "mova_table4", published=True)
    md = table_markdown(t)
    tex = table_latex(t)
    assert "**4.533**" in md and DASH in md  # guards: the golden files hold a marked best and a dash
    _golden("mova_table4.md", md)
    _golden("mova_table4.tex", tex)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed "
                    "(apt-get install texlive-latex-base texlive-latex-recommended)")
def test_latex_compiles_with_pdflatex(data, tmp_path):
    from mova_eval.report import Report
    from mova_eval.report.render import report_latex

    t = layout_table(data, "mova_table4", published=True)
    report = Report("r", "0", [], data, t)
    (tmp_path / "report.tex").write_text(report_latex(report), encoding="utf-8")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000
    log = (tmp_path / "report.log").read_text(errors="replace")
    assert "Missing character" not in log and "Undefined control sequence" not in log
    assert "Overfull" not in log  # the table and the provenance fit the (landscape) page


def test_report_json_is_a_summary_export(data, tmp_path):
    """report.json carries every summary row, so a committed export can be a `compare` baseline."""
    import pandas as pd

    from mova_eval.report import Report
    from mova_eval.report.render import report_json
    from mova_eval.summary import load_summary, records_to_frame

    t = layout_table(data, "mova_table4")
    path = tmp_path / "report.json"
    path.write_text(report_json(Report("r", "0", [], data, t)))
    back = load_summary(path)
    want = records_to_frame([r for m in data.models for r in m.records])
    pd.testing.assert_frame_equal(back, want)
