"""A clip folder with broken files: each bad clip is an item error naming the file, the good ones still score."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.runner import run


def _good(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (24, 64, 64, 3)).astype(np.uint8)
    t = np.arange(16000) / 16000
    audio = (0.2 * np.sin(2 * np.pi * (200 + 50 * seed) * t) * (1 + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)
    return frames, audio


@pytest.fixture
def clip_dir(tmp_path) -> tuple[Path, dict[str, Path]]:
    """The smoke suite in MOVA layout: five good clips, one per kind of breakage, and one item with no file."""
    root = tmp_path / "clips"
    ids = {"speech_en": ["smoke_en_01", "smoke_en_02"], "speech_zh": ["smoke_zh_01", "smoke_zh_02"],
           "dialogue": ["smoke_dialogue_01"], "sfx": ["smoke_sfx_01", "smoke_sfx_02"], "music": ["smoke_music_01"],
           "ambience": ["smoke_ambience_01", "smoke_ambience_02"]}
    path = {i: root / cat / f"{i}_video_step1_seed0.mp4" for cat, its in ids.items() for i in its}
    for k, i in enumerate(["smoke_en_01", "smoke_zh_01", "smoke_dialogue_01", "smoke_sfx_01", "smoke_music_01"]):
        frames, audio = _good(k)
        media.encode(path[i], frames, 24, audio, 16000)
    # truncated while being written: the index (moov) at the end of the file is lost
    frames, audio = _good(9)
    full = media.encode(root / "tmp.mp4", frames, 24, audio, 16000)
    data = full.read_bytes()
    full.unlink()
    path["smoke_en_02"].write_bytes(data[: len(data) // 2])
    path["smoke_zh_02"].write_bytes(b"")                                                      # empty
    media.encode(path["smoke_sfx_02"], _good(3)[0], 24, None, None)                           # no audio
    path["smoke_ambience_01"].parent.mkdir(parents=True, exist_ok=True)
    path["smoke_ambience_01"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    del path["smoke_ambience_02"]                                                             # no file at all
    return root, path


def test_bad_files_are_item_errors_and_good_ones_score(tmp_path, clip_dir):
    root, path = clip_dir
    cfg = compose(["suite=smoke", "generator=directory", f"generator.path={root}", "metrics.only=[loudness]",
                   f"output_dir={tmp_path / 'runs'}", "run_id=bad", "runtime.progress=false", "runtime.bootstrap=50",
                   "runtime.device=cpu"])  # cpu: no torch import just to look for a GPU
    outcome = run(cfg)
    assert outcome.log.status == "complete"
    rows = outcome.items
    lufs = rows[rows["metric"] == "lufs"].set_index("item_id")
    assert len(lufs) == 10

    for good in ("smoke_en_01", "smoke_zh_01", "smoke_dialogue_01", "smoke_sfx_01", "smoke_music_01"):
        assert math.isfinite(lufs.loc[good, "value"]) and lufs.loc[good, "error"] is None, good
        assert -40 < lufs.loc[good, "value"] < -5

    expected = {
        "smoke_en_02": ("UnreadableMediaError", str(path["smoke_en_02"])),
        "smoke_zh_02": ("UnreadableMediaError", f"{path['smoke_zh_02']}: file is empty"),
        "smoke_sfx_02": ("MissingStreamError", f"{path['smoke_sfx_02']}: has no audio stream"),
        "smoke_ambience_01": ("UnreadableMediaError", str(path["smoke_ambience_01"])),
        "smoke_ambience_02": ("GenerationError", f"no clip for item smoke_ambience_02 in {root}"),
    }
    for item_id, (kind, text) in expected.items():
        row = lufs.loc[item_id]
        assert math.isnan(row["value"]), item_id
        assert row["error"].startswith(kind) and text in row["error"], (item_id, row["error"])

    summary = {(r.metric, r.category): r for r in outcome.log.summary}
    assert summary[("lufs", "all")].excluded == 5
    assert summary[("lufs", "speech_en")].n == 1 and summary[("lufs", "speech_en")].excluded == 1
    assert (outcome.run_dir / "items.parquet").is_file()
