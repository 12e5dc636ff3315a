"""`seeds=all` (issue 14 item 5): a clip folder's every sample per item is scored, as the MOVA toolkit scores every
.mp4 — items with different numbers of files get different numbers of requests, the counts in run.json say so,
merged shards agree with the single run, and generators that make clips refuse it with a clear error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mova_eval import media
from mova_eval.cli import main
from mova_eval.config import compose
from mova_eval.errors import ConfigError
from mova_eval.merge import merge_runs
from mova_eval.results import read_run_json
from mova_eval.runner import SEEDS_ALL, parse_seeds, run

# smoke_sfx_01 has three samples named as the toolkit names them (seed100 sorts first by name, seed7 is sample 0),
# smoke_sfx_02 one, every other smoke item none
AMPLITUDE = {"smoke_sfx_01_video_x_step1_seed100.mp4": 0.4, "smoke_sfx_01_video_x_step1_seed42.mp4": 0.1,
             "smoke_sfx_01_video_x_step1_seed7.mp4": 0.025, "smoke_sfx_02_video_x_step1_seed0.mp4": 0.2}
EXPECTED_SAMPLES = {"smoke_en_01": [0], "smoke_en_02": [0], "smoke_zh_01": [0], "smoke_zh_02": [0],
                    "smoke_dialogue_01": [0], "smoke_sfx_01": [0, 1, 2], "smoke_sfx_02": [0], "smoke_music_01": [0],
                    "smoke_ambience_01": [0], "smoke_ambience_02": [0]}
COMMON = ["suite=smoke", "generator=directory", "metrics.only=[loudness]", "runtime.progress=false",
          "runtime.bootstrap=50", "runtime.cache=false"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeds_all") / "clips"
    sr, fps = 16_000, 12
    t = np.arange(sr) / sr
    frames = np.full((12, 32, 32, 3), 90, np.uint8)
    for name, amp in AMPLITUDE.items():
        (root / "sfx").mkdir(parents=True, exist_ok=True)
        media.encode(root / "sfx" / name, frames, fps, (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return root


def _run(folder: Path, out: Path, run_id: str, *extra: str):
    return run(compose([*COMMON, f"generator.path={folder}", f"output_dir={out}", f"run_id={run_id}", "seeds=all",
                        *extra]))


def test_parse_seeds_accepts_all():
    assert parse_seeds("all") == SEEDS_ALL and parse_seeds("ALL") == SEEDS_ALL
    assert parse_seeds([3, 1]) == [3, 1] and parse_seeds(None) == [0]
    with pytest.raises(ConfigError, match="seeds=all"):
        parse_seeds("some")


def test_seeds_all_scores_every_file_of_every_item(folder, tmp_path):
    outcome = _run(folder, tmp_path, "all")
    log = read_run_json(tmp_path / "all")
    assert log.samples == EXPECTED_SAMPLES
    assert log.counts["requests"] == 12 and log.counts["items"] == 10  # 3 + 1 + one failing request for 8 items
    items = pd.read_parquet(tmp_path / "all" / "items.parquet")
    lufs = items[items.metric == "lufs"].set_index(["item_id", "seed"])["value"]
    assert len(lufs) == 12
    sfx = [lufs[("smoke_sfx_01", k)] for k in range(3)]
    # samples go by the seed in the name (7, 42, 100): louder files, so LUFS rises with the sample index
    assert all(np.isfinite(sfx)) and sfx[0] < sfx[1] < sfx[2], sfx
    assert [log.generation[f"smoke_sfx_01#s{k}"]["seed"] for k in range(3)] == [7, 42, 100]
    assert np.isfinite(lufs[("smoke_sfx_02", 0)])
    missing = items[(items.metric == "lufs") & items["value"].isna()]
    assert len(missing) == 8 and missing["error"].str.contains("no clip for item").all()
    row = next(r for r in log.summary if r.metric == "lufs" and r.category == "all")
    assert row.n == 4 and row.excluded == 8
    sfx_row = next(r for r in log.summary if r.metric == "lufs" and r.category == "sfx")
    assert sfx_row.n == 4 and sfx_row.mean == pytest.approx(float(np.mean([*sfx, lufs[("smoke_sfx_02", 0)]])))
    assert outcome.log.counts == log.counts

    # an explicit seed list still means the same requests for every item (and records no per-item samples)
    explicit = run(compose([*COMMON, f"generator.path={folder}", f"output_dir={tmp_path}", "run_id=two",
                            "seeds=[0,1]"]))
    assert explicit.log.counts["requests"] == 20 and explicit.log.samples == {}


def test_seeds_all_resumes_and_merges_like_a_single_run(folder, tmp_path):
    single = _run(folder, tmp_path, "single")
    for i in range(2):
        _run(folder, tmp_path, f"s{i}", f"suite.shard={i}/2")
    shard_samples = [read_run_json(tmp_path / f"s{i}").samples for i in range(2)]
    assert not set(shard_samples[0]) & set(shard_samples[1])
    assert {**shard_samples[0], **shard_samples[1]} == EXPECTED_SAMPLES
    merged = merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert merged.log.samples == single.log.samples == EXPECTED_SAMPLES
    assert merged.log.counts["requests"] == single.log.counts["requests"] == 12
    key = ["item_id", "seed", "metric"]
    a = merged.items.sort_values(key).reset_index(drop=True)
    b = single.items.sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(a["value"], b["value"])
    # a shard whose recorded samples name an item of the other shard is refused
    bad = tmp_path / "s1_bad"
    shutil.copytree(tmp_path / "s1", bad)
    data = json.loads((bad / "run.json").read_text())
    data["samples"].update({k: v for k, v in shard_samples[0].items()})
    (bad / "run.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="not in shard 1/2"):
        merge_runs([tmp_path / "s0", bad], tmp_path / "merged_bad")


def test_generators_that_make_clips_refuse_seeds_all(tmp_path, capsys):
    rc = main(["run", "seeds=all", "metrics.only=[loudness]", f"output_dir={tmp_path}", "run_id=synth",
               "runtime.progress=false"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "seeds=all" in err and "generator 'synthetic' makes clips" in err and "seeds=[0,1,2]" in err
    assert not (tmp_path / "synth").exists()  # refused before the run directory is made


def test_validate_with_seeds_all(folder, capsys):
    rc = main(["validate", "--no-decode", "suite=smoke", "generator=directory", f"generator.path={folder}"])
    out = capsys.readouterr().out
    assert rc == 1 and "unused: item smoke_sfx_01 has 3 clips" in out
    main(["validate", "--no-decode", "suite=smoke", "generator=directory", f"generator.path={folder}", "seeds=all"])
    out = capsys.readouterr().out
    assert "unused" not in out and "missing: item smoke_en_01" in out
    rc = main(["validate", "suite=smoke", "generator=synthetic", "seeds=all"])
    out = capsys.readouterr().out
    assert rc == 1 and "config: seeds=all scores every clip" in out
