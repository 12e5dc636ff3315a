"""The crash-safe item log at its edges (issue 15 item 4): a kill between finalise steps, and a torn item.

The kill points are injected deterministically (a crash hook on the partial log's removal, a hand-torn line), so
these tests do not depend on where a real SIGKILL lands."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mova_eval.errors import ResultsError
from mova_eval.results import FeatureRow, ItemLog, ItemRow, ScoredRows


def _request(item: str, seed: int = 0, n_outputs: int = 2) -> ScoredRows:
    base = dict(run_id="r", suite="s", item_id=item, category="c", language="en", generator="g", model="m",
                seed=seed, family="loudness")
    rows = [ItemRow(**base, metric=f"out{k}", value=float(k) + 0.5) for k in range(n_outputs)]
    rows.append(ItemRow(**base, metric="out_nan", value=math.nan, error="NotApplicable: nothing to say"))
    feats = [FeatureRow(**{k: v for k, v in base.items() if k != "family"}, extractor="fvd", cache_key=f"k-{item}")]
    return ScoredRows(rows, feats)


def _log_with(tmp_path: Path, items: list[str]) -> tuple[ItemLog, ScoredRows]:
    log = ItemLog(tmp_path)
    everything = ScoredRows()
    for it in items:
        rows = _request(it)
        log.append(rows)
        everything.extend(rows)
    return log, everything


def _key(rows: ScoredRows) -> list[tuple]:
    return sorted((r.item_id, r.seed, r.metric, r.error) for r in rows.items)


def test_one_checksummed_line_per_request(tmp_path):
    log, rows = _log_with(tmp_path, ["a", "b", "c"])
    lines = log.partial.read_text().splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[1])
    assert rec["request"] == ["b", 0] and len(rec["rows"]) == 4 and len(rec["sha256"]) == 64
    assert _key(ItemLog(tmp_path).load()) == _key(rows)


def test_append_refuses_rows_of_two_requests(tmp_path):
    both = _request("a")
    both.extend(_request("b"))
    with pytest.raises(ValueError, match="one request"):
        ItemLog(tmp_path).append(both)


def test_a_kill_between_the_parquet_files_and_the_partial_log_removal_doubles_nothing(tmp_path, monkeypatch):
    log, rows = _log_with(tmp_path, ["a", "b", "c"])
    real_unlink = Path.unlink

    def killed(self, *a, **kw):  # the crash hook: the process dies right before the partial log is removed
        if self.name == "items.partial.jsonl":
            raise KeyboardInterrupt
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        log.finalize(rows)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert log.partial.is_file() and log.final.is_file() and log.features.is_file()

    again = ItemLog(tmp_path).load()
    assert _key(again) == _key(rows)  # each row once, not twice
    assert len(again.features) == len(rows.features)
    items, feats = ItemLog(tmp_path).finalize(again)  # finalising again is idempotent
    assert len(items) == len(rows.items) and len(feats) == len(rows.features)
    assert not log.partial.exists()


def test_a_torn_or_tampered_item_is_recomputed_not_taken_as_finished(tmp_path):
    log, rows = _log_with(tmp_path, ["a", "b", "c"])
    lines = log.partial.read_text().splitlines()
    cut = json.loads(lines[1])
    cut["rows"] = cut["rows"][:2]  # the item's rows cut part-way, old checksum kept
    lines[1] = json.dumps(cut)
    lines[2] = lines[2][: len(lines[2]) // 2]  # the last line torn by a kill
    log.partial.write_text("\n".join(lines) + "\n")

    again = ItemLog(tmp_path)
    loaded = again.load()
    assert loaded.done_requests() == {("a", 0)}
    assert {r.item_id for r in loaded.items} == {"a"}
    assert len(again.dropped) == 2 and "checksum" in again.dropped[0] and "torn" in again.dropped[1]


def test_an_earlier_versions_one_row_per_line_log_is_still_read(tmp_path):
    rows = _request("a")
    recs = [{"table": "items", **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                 for k, v in r.__dict__.items()}} for r in rows.items]
    (tmp_path / "items.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    loaded = ItemLog(tmp_path).load()
    assert _key(loaded) == _key(ScoredRows(rows.items, []))


def test_a_truncated_items_parquet_is_a_clear_error_naming_it(tmp_path):
    log, rows = _log_with(tmp_path, ["a"])
    log.finalize(rows)
    data = log.final.read_bytes()
    log.final.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError, match="items.parquet.*cannot be read"):
        ItemLog(tmp_path).load()


def test_resumed_run_after_a_kill_between_finalise_steps_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from mova_eval.config import compose
    from mova_eval.runner import run

    base = ["metrics.only=[loudness]", "suite.limit=3", "runtime.progress=false", "runtime.cache=false",
            "runtime.bootstrap=20"]
    reference = run(compose([f"output_dir={tmp_path / 'ref'}", "run_id=r", *base])).items
    real_unlink = Path.unlink

    def killed(self, *a, **kw):
        if self.name == "items.partial.jsonl":
            raise KeyboardInterrupt
        return real_unlink(self, *a, **kw)

    cfg = compose([f"output_dir={tmp_path / 'k'}", "run_id=r", *base])
    monkeypatch.setattr(Path, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    resumed = run(cfg).items
    cols = ["item_id", "metric", "value", "error"]
    assert len(resumed) == len(reference)
    pd.testing.assert_frame_equal(resumed[cols], reference[cols])
