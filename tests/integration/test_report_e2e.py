"""From runs to reports and a CI gate: three labelled runs of the synthetic generator on a small Verse-shaped suite
(one with a 400 ms audio offset) → `mova-eval report` in every format; `mova-eval compare` passes a rerun of the
same config and fails the offset run on av_align with exit 1 and a JUnit failure."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from mova_eval.cli import main

pytestmark = pytest.mark.slow  # four short runs (~1 min on 2 cores), shared by every test of the module

SUITE = Path(__file__).parent / "data" / "mini_verse.json"
BASE = ["suite=verse", f"suite.path={SUITE}", "generator=synthetic", "generator.width=128", "generator.height=96",
        "generator.duration=2.0", "metrics.only=[loudness,av_align]", "runtime.bootstrap=200",
        "runtime.progress=false"]
RUNS = {"clean": ["+generator.label=clean"],
        "clean-rerun": ["+generator.label=clean"],
        "small": ["+generator.label=small", "generator.width=96", "generator.height=64"],
        "offset": ["+generator.label=offset", "+generator.defects.audio_offset_ms=400"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import mova_eval

    out = tmp_path_factory.mktemp("runs")
    dirs = {}
    for run_id, extra in RUNS.items():
        outcome = mova_eval.run([*BASE, *extra, f"output_dir={out}", f"run_id={run_id}"])
        assert outcome.log.status == "complete"
        dirs[run_id] = outcome.run_dir
    return dirs


GATE = """\
defaults: {min_n: 4, fail_if_unavailable: true}
metrics:
  av_align: {max_regression: 0.02}
  lufs: {max_regression: 10%}
"""


def test_runs_are_labelled(runs):
    items = pd.read_parquet(runs["offset"] / "items.parquet")
    assert set(items["model"]) == {"offset"} and set(items["generator"]) == {"synthetic"}


def test_report_every_format(runs, tmp_path, capsys):
    out = tmp_path / "report"
    sources = [str(runs[k]) for k in ("clean", "small", "offset")]
    assert main(["report", *sources, "--out", str(out)]) == 0
    for name in ("report.md", "report.html", "report.tex", "table.tex", "report.csv", "report.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 200, name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "bars_av_align.png" in pngs and "sets_av_align.png" in pngs and "ranks.png" in pngs
    assert len(list((out / "figures").glob("*.svg"))) == len(pngs)

    md = (out / "report.md").read_text()
    for label in ("clean", "small", "offset"):
        assert f"| verse | {label} |" in md
    # the leaderboard's av_align cell of each model is its run's `all` summary value
    from mova_eval.results import read_run_json

    csv = pd.read_csv(out / "report.csv")
    lead = csv[(csv["table"] == "leaderboard") & (csv["column"] == "av_align")].set_index("model")
    for label in ("clean", "small", "offset"):
        row = next(r for r in read_run_json(runs[label]).summary if r.metric == "av_align" and r.category == "all")
        assert lead.loc[label, "mean"] == pytest.approx(row.mean)
        assert lead.loc[label, "n"] == row.n
    assert lead["mean"].idxmax() != "offset" and lead.loc["offset", "rank"] != 1
    # per-set and per-language breakdowns with CIs
    assert {"av_align-by-category", "av_align-by-language"} <= set(csv["table"])
    sets = csv[csv["table"] == "av_align-by-category"]
    assert {"set1", "set2", "set3", "all"} <= set(sets["column"])
    assert sets["ci_low"].notna().any()

    doc = json.loads((out / "report.json").read_text())
    assert {r["model"] for r in doc["summary"]} == {"clean", "small", "offset"}
    assert all(r["suite"] == "verse" for r in doc["summary"])
    assert {r["run_id"] for r in doc["runs"]} == {"clean", "small", "offset"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html

    assert main(["report", *sources]) == 0  # no --out: Markdown on stdout
    assert "| verse | offset |" in capsys.readouterr().out


def test_report_table4_layout_from_runs(runs, tmp_path):
    out = tmp_path / "t4"
    assert main(["report", str(runs["clean"]), str(runs["offset"]), "--published", "mova_table4", "--out", str(out),
                 "--format", "md,latex,html"]) == 0
    md = (out / "report.md").read_text()
    assert "MOVA-360p (s_B=1.0) *(published)*" in md
    assert "| ours | clean |" in md
    # none of the Table 4 metrics was run: every one of our cells is "–" with a footnote saying why
    t4 = md.split("## Verse-Bench")[1].split("### Provenance")[0]
    clean = next(line for line in t4.splitlines() if line.startswith("| ours | clean |"))
    assert clean.count("–<sup>") == 7
    assert "`is` was not run" in t4 and "no run of suite `mybench`" in t4
    assert "Published rows: MOVA paper (arXiv 2602.08794) Table 4" in md


def _gate(tmp_path) -> Path:
    p = tmp_path / "gate.yaml"
    p.write_text(GATE)
    return p


def test_compare_passes_a_rerun(runs, tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    rc = main(["compare", str(runs["clean-rerun"]), "--baseline", str(runs["clean"]), "--gate", str(_gate(tmp_path)),
               "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "**PASS**" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert {c.get("name") for c in suite.iter("testcase")} == {"av_align", "lufs"}


def test_compare_fails_the_offset_run_on_av_align(runs, tmp_path, capsys, monkeypatch):
    junit = tmp_path / "junit.xml"
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    rc = main(["compare", str(runs["offset"]), "--baseline", str(runs["clean"]), "--gate", str(_gate(tmp_path)),
               "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "**FAIL**" in out and "**regression**" in out
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    fail = cases["av_align"].find("failure")
    assert fail is not None and fail.get("type") == "regression" and "av_align: worse by" in fail.get("message")
    assert cases["lufs"].find("failure") is None
    text = step_summary.read_text()
    assert text.startswith("earlier step\n") and "mova-eval compare" in text and "**FAIL**" in text


def test_compare_against_a_committed_summary_is_unpaired(runs, tmp_path, capsys):
    src = runs["clean"] / "summary.parquet"
    assert src.is_file()  # every run writes its summary
    committed = tmp_path / "baseline-summary.parquet"
    shutil.copy(src, committed)
    rc = main(["compare", str(runs["offset"]), "--baseline", str(committed), "--gate", str(_gate(tmp_path))])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "(unpaired)" in out and "CI from both CIs in quadrature" in out


def test_compare_usage_errors_exit_2(runs, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  av_alig: {max_regression: 0.01}\n")
    assert main(["compare", str(runs["offset"]), "--baseline", str(runs["clean"]), "--gate", str(bad)]) == 2
    assert "did you mean av_align" in capsys.readouterr().err
    bad.write_text("metrics:\n  av_align: {max_regression: lots}\n")
    assert main(["compare", str(runs["offset"]), "--baseline", str(runs["clean"]), "--gate", str(bad)]) == 2
    assert main(["compare", str(runs["offset"]), "--baseline", str(tmp_path / "missing")]) == 2
    assert main(["compare", str(runs["offset"]), "--baseline", str(runs["clean"]), "--junit", "x.xml"]) == 2
