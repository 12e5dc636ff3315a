"""`mova-eval run` exit statuses, one test per rule (mova_eval.run_checks), the typed summary.parquet every run
writes, the console's paper-protocol column, and the label of a directory run."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mova_eval.cli import main
from mova_eval.results import read_run_json
from mova_eval.summary import ALL, ExclusionReason, load_summary, read_records, records_to_frame, summarize_run

SUITE = Path(__file__).parent / "data" / "mini_verse.json"
QUICK = ["suite=verse", f"suite.path={SUITE}", "runtime.progress=false", "runtime.bootstrap=50",
         "runtime.device=cpu"]
SYNTH = ["generator=synthetic", "generator.width=96", "generator.height=64", "generator.duration=1.5"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """The mini suite's synthetic clips as a MOVA-layout folder named `MyModel`."""
    import mova_eval

    out = tmp_path_factory.mktemp("made")
    run = mova_eval.run([*QUICK, *SYNTH, "metrics.only=[loudness]", f"output_dir={out}", "run_id=made"])
    root = tmp_path_factory.mktemp("clips") / "MyModel"
    for r in pd.read_parquet(run.run_dir / "items.parquet").drop_duplicates("item_id").itertuples():
        (root / r.category).mkdir(parents=True, exist_ok=True)
        shutil.copy(r.clip_path, root / r.category / f"{r.item_id}_video_seed0.mp4")
    return root


def _run(tmp_path, run_id, *overrides) -> tuple[int, object]:
    rc = main(["run", *QUICK, f"output_dir={tmp_path}", f"run_id={run_id}", *overrides])
    return rc, read_run_json(tmp_path / run_id)


def test_complete_run_exits_0_writes_summary_and_labels_with_the_folder(clips, tmp_path, capsys):
    rc, log = _run(tmp_path, "ok", "generator=directory", f"generator.path={clips}", "metrics.only=[loudness]")
    captured = capsys.readouterr()
    assert rc == 0 and log.status == "complete" and log.failures == []
    assert log.model == "MyModel"
    assert "labelled 'MyModel' (the clip folder's name)" in captured.err
    items = pd.read_parquet(tmp_path / "ok" / "items.parquet")
    assert set(items["model"]) == {"MyModel"} and set(items["generator"]) == {"directory"}
    # summary.parquet: written by the run, round-trips, and agrees with run.json's summary
    written = read_records(tmp_path / "ok")
    pd.testing.assert_frame_equal(records_to_frame(written), records_to_frame(summarize_run(tmp_path / "ok")))
    frame = load_summary(tmp_path / "ok")
    assert set(frame["model"]) == {"MyModel"} and set(frame["language"]) == {ALL, "en", "zh", "none"}
    for row in log.summary:
        rec = next(r for r in written if (r.metric, r.category, r.language) == (row.metric, row.category, ALL))
        assert rec.mean == pytest.approx(row.mean) and rec.n == row.n and rec.n_excluded == row.excluded
        assert rec.ci_low == pytest.approx(row.ci_low) and rec.ci_high == pytest.approx(row.ci_high)


def test_label_override(clips, tmp_path):
    rc, log = _run(tmp_path, "lab", "generator=directory", f"generator.path={clips}", "metrics.only=[loudness]",
                   "+generator.label=MOVA-360p")
    assert rc == 0 and log.model == "MOVA-360p"


def test_requested_metric_that_cannot_run_exits_1(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path / "no-weights"))  # lse's SyncNet/S3FD are not there
    rc, log = _run(tmp_path, "unavail", "generator=directory", f"generator.path={clips}",
                   "metrics.only=[loudness,lse]")
    out = capsys.readouterr().out
    assert rc == 1 and log.status == "failed"
    assert [f.rule for f in log.failures] == ["unavailable"]
    assert "lse" in log.failures[0].detail and "runtime.allow_unavailable=true" in log.failures[0].detail
    assert "[unavailable] metric lse" in out
    # allowed: the run completes, lse's items are excluded as metric_unavailable, loudness has its values
    rc, log = _run(tmp_path, "allowed", "generator=directory", f"generator.path={clips}",
                   "metrics.only=[loudness,lse]", "runtime.allow_unavailable=true")
    assert rc == 0 and log.status == "complete" and log.failures == []
    lse = next(r for r in read_records(tmp_path / "allowed")
               if r.metric == "lse_c" and r.category == ALL and r.language == ALL)
    assert math.isnan(lse.mean) and lse.excluded[ExclusionReason.METRIC_UNAVAILABLE] == 6


def test_metric_without_any_value_exits_1(tmp_path, capsys):
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    rc, log = _run(tmp_path, "novalue", "generator=directory", f"generator.path={empty}", "metrics.only=[loudness]")
    out = capsys.readouterr().out
    assert rc == 1 and log.status == "failed"
    assert {f.rule for f in log.failures} == {"no_value"}
    assert any("lufs" in f.detail and "6 missing clip" in f.detail for f in log.failures)
    assert "6 missing clip" in out  # the note column names the reason


def test_error_fraction_rule(clips, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(clips, partial)
    for f in list((partial / "set1").glob("*.mp4")) + list((partial / "set2").glob("*.mp4")):
        f.unlink()  # 4 of 6 clips missing
    rc, log = _run(tmp_path, "frac", "generator=directory", f"generator.path={partial}", "metrics.only=[loudness]",
                   "runtime.fail_on_error=0.5")
    assert rc == 1 and [f.rule for f in log.failures] == ["error_fraction"]
    assert "8 of 12 item rows" in log.failures[0].detail
    rc, log = _run(tmp_path, "frac-ok", "generator=directory", f"generator.path={partial}", "metrics.only=[loudness]",
                   "runtime.fail_on_error=0.9")
    assert rc == 0 and log.status == "complete"
    lufs = next(r for r in read_records(tmp_path / "frac-ok")
                if r.metric == "lufs" and r.category == ALL and r.language == ALL)
    assert lufs.n == 2 and lufs.excluded[ExclusionReason.MISSING_CLIP] == 4


def test_console_shows_the_papers_protocol_beside_all(clips, tmp_path, capsys):
    rc, log = _run(tmp_path, "dns", "generator=directory", f"generator.path={clips}", "metrics.only=[dnsmos]")
    out = capsys.readouterr().out
    assert rc == 0, out
    recs = {(r.metric, r.category): r for r in read_records(tmp_path / "dns") if r.language == ALL}
    set3 = recs[("dnsmos_p808", "set3")]
    line = next(x for x in out.splitlines() if x.startswith("dnsmos_p808"))
    assert f"set3: {set3.mean:.4g}" in line
    assert f"{recs[('dnsmos_p808', ALL)].mean:.4g}" in line
    assert not any(x.startswith("dnsmos_sig") and "set3:" in x for x in out.splitlines())  # not a Table 4 column
    assert "dnsmos_p808 on set3, as in Verse-Bench objective comparison (MOVA paper, Table 4)" in out
