"""The local engine overlaps generation and scoring (issue 16 item 3): a clip is scored while the next one is being
made, the results equal the old generate-then-score sequence, and the item log never holds an item whose clip's
provenance is missing from run.json."""
import json
import threading

import pandas as pd
import pytest

from mova_eval import runner as runner_mod
from mova_eval.config import compose
from mova_eval.errors import ConfigError
from mova_eval.generators.synthetic import SyntheticGenerator
from mova_eval.results import ItemLog, ScoredRows
from mova_eval.runner import aggregate, finalise, generate_stage, plan, record_generation, run, score

BASE = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.bootstrap=50", "runtime.cache=false",
        "suite.limit=4"]


def _sequential(cfg: dict):
    """The run as it was before the engine: every clip generated, then every clip scored."""
    p = plan(cfg)
    try:
        results = generate_stage(p)
        record_generation(p, results)
        rows = ScoredRows(list(p.previous.items), list(p.previous.features))
        rows.extend(score(p, results))
        return finalise(p, results, rows, aggregate(p, rows))
    finally:
        p.close()


def _tables(run_dir):
    # clip_hash: each run generates its own clips, whose bytes may differ in libx264's final bytes while decoding
    # the same (generators/synthetic.py), so two runs are compared by what was scored, not by the files' hashes
    items = pd.read_parquet(run_dir / "items.parquet").drop(columns=["run_id", "clip_hash"])
    summary = pd.read_parquet(run_dir / "summary.parquet")
    summary = summary.drop(columns=[c for c in ("run_id",) if c in summary.columns])
    return items, summary


@pytest.mark.parametrize("workers", [1, 2])
def test_overlapped_run_equals_generate_then_score(tmp_path, workers):
    args = [*BASE, f"output_dir={tmp_path}", f"runtime.workers={workers}"]
    _sequential(compose([*args, "run_id=seq"]))
    out = run(compose([*args, "run_id=ovl"]))
    assert out.log.status == "complete" and len(out.items) == 8
    a_items, a_sum = _tables(tmp_path / "seq")
    b_items, b_sum = _tables(tmp_path / "ovl")
    assert a_items["value"].notna().all()
    pd.testing.assert_frame_equal(a_items, b_items)
    pd.testing.assert_frame_equal(a_sum, b_sum)
    seq_log, ovl_log = (json.loads((tmp_path / r / "run.json").read_text()) for r in ("seq", "ovl"))
    assert len(ovl_log["decode"]) == 4 and ovl_log["decode"] == seq_log["decode"]
    assert ovl_log["warnings"] == seq_log["warnings"]
    gen = ovl_log["generation"]
    assert len(gen) == 4 and all("error" not in g for g in gen.values())


def test_a_clip_is_scored_while_the_next_is_generated(tmp_path, monkeypatch):
    """The second clip's generation waits until the first clip has been scored: only an overlapping engine lets that
    happen (run one stage after the other, the wait times out and the test fails)."""
    first_scored = threading.Event()
    waited: list[bool] = []
    real_generate, real_score = SyntheticGenerator.generate, runner_mod.score_request

    calls = []

    def generate(self, requests):
        if calls:  # every clip after the first
            waited.append(first_scored.wait(timeout=10))
        calls.append(len(requests))
        return real_generate(self, requests)

    def score_request(ctx, req, res):
        rows = real_score(ctx, req, res)
        first_scored.set()
        return rows

    missing: list[str] = []  # items appended to the log before their clip's provenance was in run.json
    real_append = ItemLog.append

    def append(self, rows):
        gen = json.loads((self.run_dir / "run.json").read_text())["generation"]
        missing.extend(f"{r.item_id}#s{r.seed}" for r in rows.items if f"{r.item_id}#s{r.seed}" not in gen)
        return real_append(self, rows)

    monkeypatch.setattr(SyntheticGenerator, "generate", generate)
    monkeypatch.setattr(runner_mod, "score_request", score_request)
    monkeypatch.setattr(ItemLog, "append", append)
    out = run(compose([*BASE, f"output_dir={tmp_path}", "run_id=o"]))
    assert out.log.status == "complete"
    assert waited and all(waited), "generation of the later clips never saw a clip scored: the stages did not overlap"
    assert not missing, f"items logged before run.json held their clips' provenance: {missing}"


def test_generator_crash_leaves_logged_items_with_their_provenance_and_resumes(tmp_path, monkeypatch):
    """A generator that dies after two clips: the items scored before are in the item log, each with its clip's
    provenance already in run.json, and the resumed run equals an uninterrupted one."""
    calls = []
    real_generate = SyntheticGenerator.generate

    def generate(self, requests):
        calls.append(len(requests))
        if len(calls) == 3:
            raise RuntimeError("generator died")
        return real_generate(self, requests)

    args = [*BASE, f"output_dir={tmp_path}"]
    monkeypatch.setattr(SyntheticGenerator, "generate", generate)
    with pytest.raises(RuntimeError, match="generator died"):
        run(compose([*args, "run_id=r"]))
    logged = ItemLog(tmp_path / "r").load()
    done = logged.done_requests()
    assert len(done) == 2
    gen = json.loads((tmp_path / "r" / "run.json").read_text())["generation"]
    assert {f"{item}#s{seed}" for item, seed in done} <= set(gen)
    monkeypatch.setattr(SyntheticGenerator, "generate", real_generate)
    out = run(compose([*args, "run_id=r"]))
    assert out.log.status == "complete" and out.log.counts["resumed_rows"] == 4
    run(compose([*args, "run_id=clean"]))
    a_items, a_sum = _tables(tmp_path / "clean")
    b_items, b_sum = _tables(tmp_path / "r")
    pd.testing.assert_frame_equal(a_items, b_items)
    pd.testing.assert_frame_equal(a_sum, b_sum)
    assert set(json.loads((tmp_path / "r" / "run.json").read_text())["generation"]) == set(
        json.loads((tmp_path / "clean" / "run.json").read_text())["generation"])


@pytest.mark.parametrize("value, message", [("spark", "not an engine"), ("ray", "ray")])
def test_runtime_engine_is_checked(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        plan(compose([*BASE, f"output_dir={tmp_path}", f"runtime.engine={value}"]))
    assert "runtime.engine" in str(e.value)
    assert not (tmp_path / "runs").exists() and not any(tmp_path.iterdir())
