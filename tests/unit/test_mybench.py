"""suite=mybench: MOVA's 27 multi-speaker references, and clips paired with them as eval_cpcer.py pairs them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.errors import ConfigError, SuiteError
from mova_eval.generators.directory import DirectoryGenerator
from mova_eval.spec import GenRequest
from mova_eval.suites import load_mybench, load_suite, summarize
from tests.conftest import shared_path


@pytest.fixture
def references() -> Path:
    return shared_path("verse-bench", "mybench_multispeaker_references.txt")


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    frames = np.full((6, 32, 32, 3), 90, np.uint8)
    audio = (0.1 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    return media.encode(tmp_path_factory.mktemp("src") / "c.mp4", frames, 12, audio, 8000).read_bytes()


def test_the_27_references_load_with_the_toolkits_counts(references):
    """27 lines (MOVA's references.txt): 13 with Chinese, 26 with two speakers and one with three."""
    suite = load_suite({"loader": "mybench", "name": "mybench", "path": str(references)})
    s = summarize(suite)
    assert s["items"] == 27 and s["with_speech"] == 27
    assert s["categories"] == {"multi-speaker": {"items": 27, "en": 14, "zh": 13, "none": 0}}
    assert sorted(it.num_speakers for it in suite.items) == [2] * 26 + [3]
    assert suite.file_match == "mova_numbered"
    first = suite.items[0]
    assert first.id == "01" and first.speech_text.startswith("[S01] That man looks like")
    assert "[S0" not in first.prompt and first.extra["mova_index"] == 0 and first.extra["mova_count"] == 27
    # the folder holding it is accepted too, and limit keeps the pairing data of the full list
    few = load_suite({"loader": "mybench", "path": str(references.parent), "limit": 3})
    assert [it.id for it in few.items] == ["01", "02", "03"] and few.items[2].extra["mova_count"] == 27


def test_bad_reference_files_are_named(tmp_path):
    with pytest.raises(SuiteError, match="needs suite.path"):
        load_mybench(None)
    with pytest.raises(SuiteError, match="does not exist"):
        load_mybench(str(tmp_path / "nope.txt"))
    bad = tmp_path / "references.txt"
    bad.write_text("[S01] fine [S02] ok\n\nno tags here\n", encoding="utf-8")
    with pytest.raises(SuiteError) as e:
        load_mybench(str(bad))
    assert "line 3" in str(e.value) and str(bad) in str(e.value)
    with pytest.raises(SuiteError, match="holds no MyBench references"):
        load_mybench(str(tmp_path / ".."))


def _tiny_refs(tmp_path, n=4) -> Path:
    p = tmp_path / "refs" / "references.txt"
    p.parent.mkdir()
    p.write_text("\n".join(f"[S01] line {k} [S02] reply {k}" for k in range(1, n + 1)) + "\n", encoding="utf-8")
    return p


def _gen(suite, root):
    g = DirectoryGenerator({"name": "directory", "path": str(root)})
    g.bind_suite(suite)
    return g


def _pick_all(gen, suite):
    reqs = [GenRequest(request_id=f"{it.id}#s0", item=it, seed=0) for it in suite.items]
    return {r.request_id.split("#")[0]: r for r in gen.generate(reqs)}


def test_numbered_clips_pair_by_number_order_not_by_name(tmp_path, clip_bytes):
    """eval_cpcer.py sorts ^(\\d+)_ files by the integer (2_ before 10_, which sorts first by name) and pairs the
    k-th with reference k; other files are ignored, as the toolkit ignores them."""
    suite = load_mybench(str(_tiny_refs(tmp_path)))
    folder = tmp_path / "clips" / "step_1" / "multi-speaker"
    folder.mkdir(parents=True)
    for name in ["10_video_d.mp4", "2_video_b.mp4", "1_video_a.mp4", "3_video_c.MP4", "notes.mp4", "x.mkv"]:
        (folder / name).write_bytes(clip_bytes)
    got = _pick_all(_gen(suite, tmp_path / "clips"), suite)
    assert {k: Path(r.path).name for k, r in got.items()} == {
        "01": "1_video_a.mp4", "02": "2_video_b.mp4", "03": "3_video_c.MP4", "04": "10_video_d.mp4"}


def test_a_count_other_than_the_references_names_what_is_missing(tmp_path, clip_bytes):
    """MOVA asserts len(videos) == len(references); here the run refuses before scoring, naming the folder, the
    numbers found and those missing."""
    suite = load_mybench(str(_tiny_refs(tmp_path)))
    folder = tmp_path / "multi-speaker"
    folder.mkdir()
    for name in ["01_a.mp4", "02_b.mp4", "04_d.mp4"]:
        (folder / name).write_bytes(clip_bytes)
    with pytest.raises(ConfigError) as e:
        _gen(suite, tmp_path)
    msg = str(e.value)
    assert str(folder) in msg and "3 numbered clip(s) for 4 references" in msg
    assert "numbers found: 1–2, 4" in msg and "missing (numbering 1–4): 3" in msg
    (folder / "04_again.mp4").write_bytes(clip_bytes)
    with pytest.raises(ConfigError, match=r"number\(s\) 4 are used by several files"):
        _gen(suite, tmp_path)
    # validate reports the same problem instead of raising
    (folder / "04_again.mp4").unlink()
    g = DirectoryGenerator({"name": "directory", "path": str(tmp_path)})
    problems = g.validate(suite)
    assert [p.kind for p in problems] == ["config"] and "missing (numbering 1–4): 3" in problems[0].message
