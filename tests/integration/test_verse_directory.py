"""`mova-eval run suite=verse suite.path=FILE generator=directory generator.path=DIR` on a folder in MOVA's layout."""
import shutil

import numpy as np
import pandas as pd

from mova_eval import media
from mova_eval.cli import main
from mova_eval.results import read_run_json


def test_scores_a_mova_layout_folder_and_counts_missing_items(tmp_path, verse_prompts):
    sr, fps = 16_000, 24
    t = np.arange(2 * sr) / sr
    source = tmp_path / "one.mp4"
    frames = np.full((48, 64, 96, 3), 90, np.uint8)
    media.encode(source, frames, fps, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    chosen = {"set3": ["00001000", "00001001", "00001002"], "set1": ["00000000"], "set2": ["clip_05f5760d"]}
    step = tmp_path / "gen" / "step_0"
    for s, ids in chosen.items():
        (step / s).mkdir(parents=True)
        for i in ids:
            shutil.copy(source, step / s / f"{i}_video_some_prompt_step0_seed42.mp4")

    out = tmp_path / "runs"
    rc = main(["run", "suite=verse", f"suite.path={verse_prompts}", "generator=directory",
               f"generator.path={tmp_path / 'gen'}", "metrics.only=[loudness]", f"output_dir={out}", "run_id=v",
               "runtime.progress=false", "runtime.bootstrap=100"])
    assert rc == 0
    items = pd.read_parquet(out / "v" / "items.parquet")
    lufs = items[items.metric == "lufs"]
    assert len(lufs) == 600
    scored = lufs[lufs["value"].notna()]
    assert sorted(scored["item_id"]) == sorted(i for ids in chosen.values() for i in ids)
    assert set(scored["category"]) == {"set1", "set2", "set3"}
    missing = lufs[lufs["value"].isna()]
    assert missing["error"].str.contains("no clip for item").all()
    row = [r for r in read_run_json(out / "v").summary if r.metric == "lufs" and r.category == "all"][0]
    assert row.n == 5 and row.excluded == 595
