"""The directory generator: which file belongs to which item, samples, manifests, and what `validate` reports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.errors import ConfigError
from mova_eval.generators.directory import DirectoryGenerator, _by_len, matching_id
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, Suite, SuiteItem

IDS = {"set1": ["00000001", "00000010", "a1", "a1_b"], "set2": ["clip_ab12", "00000300"]}


@pytest.fixture(scope="module")
def suite() -> Suite:
    items = tuple(SuiteItem(id=i, category=c, prompt=f"prompt {i}") for c, ids in IDS.items() for i in ids)
    return Suite(name="t", version=1, items=items, source="test")


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    frames = np.full((6, 32, 32, 3), 90, np.uint8)
    audio = (0.1 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    return media.encode(tmp_path_factory.mktemp("src") / "c.mp4", frames, 12, audio, 8000).read_bytes()


def _put(root: Path, rel: str, data: bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _gen(suite, **cfg) -> DirectoryGenerator:
    g = DirectoryGenerator({"name": "directory", **{k: str(v) for k, v in cfg.items()}})
    g.bind_suite(suite)
    return g


def _req(suite, item_id, seed=0):
    item = next(it for it in suite.items if it.id == item_id)
    return GenRequest(request_id=f"{item_id}#s{seed}", item=item, seed=seed)


def _pick(gen, suite, item_id, seed=0):
    return gen.generate([_req(suite, item_id, seed)])[0]


# ----------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize("stem,expected", [
    ("00000001", "00000001"),
    ("00000001_video_a cat_step1_seed0", "00000001"),
    ("00000001-take2", "00000001"),
    ("000000012_video", None),          # a longer number is another item, not a sample of 00000001
    ("00000010_video", "00000010"),
    ("a1_b_video_x", "a1_b"),           # both a1 and a1_b prefix it: the longest id wins
    ("a1_video", "a1"),
    ("a10", None),
    ("a1x_video", None),
    ("A1_video", None),                 # ids are case-sensitive
    ("b_a1", None),
])
def test_matching_rule(stem, expected):
    assert matching_id(stem, _by_len(IDS["set1"])) == expected


# ----------------------------------------------------------------------------------------------- layouts


def test_mova_set_layout_recursive_with_prefix_collisions(tmp_path, suite, clip_bytes):
    root = tmp_path / "out"
    good = {
        "00000001": _put(root, "set1/deep/er/00000001_video_prompt_step1_seed0.mp4", clip_bytes),
        "00000010": _put(root, "set1/00000010_video.MP4", clip_bytes),
        "a1": _put(root, "set1/a1_video.mkv", clip_bytes),
        "a1_b": _put(root, "set1/a1_b_video.webm", clip_bytes),
        "clip_ab12": _put(root, "set2/x/clip_ab12_video_waves.mov", clip_bytes),
    }
    _put(root, "set1/a1_notes.txt", b"not a video")
    gen = _gen(suite, path=root)
    for item_id, path in good.items():
        res = _pick(gen, suite, item_id)
        assert res.ok and Path(res.path) == path, item_id
        assert res.provenance["layout"] == "sets" and res.provenance["sample_index"] == 0
    missing = _pick(gen, suite, "00000300")
    assert not missing.ok and missing.path is None
    assert missing.error == f"no clip for item 00000300 in {root} (expected {root}/set2/00000300*.mp4)"


def test_single_step_folder_is_entered(tmp_path, suite, clip_bytes):
    root = tmp_path / "eval_input"
    p = _put(root, "step_4/set2/clip_ab12_video.mp4", clip_bytes)
    assert Path(_pick(_gen(suite, path=root), suite, "clip_ab12").path) == p


def test_several_step_folders_are_ambiguous(tmp_path, suite, clip_bytes):
    root = tmp_path / "eval_input"
    _put(root, "step_1/set1/a1.mp4", clip_bytes)
    _put(root, "step_2/set1/a1.mp4", clip_bytes)
    gen = _gen(suite, path=root)
    with pytest.raises(ConfigError, match="several folders"):
        _pick(gen, suite, "a1")
    (problem,) = gen.validate(suite)
    assert problem.kind == "config" and "several folders" in problem.message


def test_flat_layout(tmp_path, suite, clip_bytes):
    p = _put(tmp_path, "00000300_video.mp4", clip_bytes)
    _put(tmp_path, "a1.avi", clip_bytes)
    gen = _gen(suite, path=tmp_path)
    res = _pick(gen, suite, "00000300")
    assert res.ok and Path(res.path) == p and res.provenance["layout"] == "flat"
    assert _pick(gen, suite, "a1").ok
    err = _pick(gen, suite, "a1_b").error
    assert err == f"no clip for item a1_b in {tmp_path} (expected {tmp_path}/a1_b*.mp4)"


def test_samples_follow_sorted_file_names(tmp_path, suite, clip_bytes):
    """Files without seed names: seed k is the k-th file by name (sub-folders included)."""
    names = ["a1_video_c.mp4", "a1_video_a.mp4", "sub/a1_video_b.mp4"]
    for n in names:
        _put(tmp_path, f"set1/{n}", clip_bytes)
    gen = _gen(suite, path=tmp_path)
    picked = [Path(_pick(gen, suite, "a1", seed=k).path).name for k in range(3)]
    assert picked == ["a1_video_a.mp4", "a1_video_b.mp4", "a1_video_c.mp4"]
    res = _pick(gen, suite, "a1", seed=3)
    assert not res.ok and "has 3 clip(s)" in res.error and "seeds=[0..2]" in res.error


def test_seed_in_the_file_name_orders_the_samples_and_is_recorded(tmp_path, suite, clip_bytes):
    """``_seed(\\d+)`` names (the toolkit's ``{id}_video_{prompt}_step{N}_seed{S}``): samples go by seed value, so
    seed42 is sample 1 after seed7 although 'seed100' sorts first by name; each file's seed is in the provenance."""
    for n in ["a1_video_x_step1_seed100.mp4", "a1_video_x_step1_seed42.mp4", "sub/a1_video_x_step1_seed7.mp4"]:
        _put(tmp_path, f"set1/{n}", clip_bytes)
    gen = _gen(suite, path=tmp_path)
    picked = [_pick(gen, suite, "a1", seed=k) for k in range(3)]
    assert [Path(r.path).name for r in picked] == ["a1_video_x_step1_seed7.mp4", "a1_video_x_step1_seed42.mp4",
                                                   "a1_video_x_step1_seed100.mp4"]
    assert [r.provenance["seed"] for r in picked] == [7, 42, 100]
    assert {r.provenance["seed_source"] for r in picked} == {"file name"}
    # a repeated seed (or a file without one) keeps the sorted-by-name rule for that item, and records no seed
    _put(tmp_path, "set1/other/a1_video_y_step1_seed42.mp4", clip_bytes)
    again = _pick(_gen(suite, path=tmp_path), suite, "a1", seed=0)
    assert Path(again.path).name == "a1_video_x_step1_seed100.mp4" and "seed" not in again.provenance


def test_resumed_run_keeps_the_longest_match(tmp_path, suite, clip_bytes):
    """Only ``a1`` is still to do, yet ``a1_b_video.mp4`` (sorted first) must not become a sample of ``a1``."""
    _put(tmp_path, "set1/a1_b_video.mp4", clip_bytes)
    mine = _put(tmp_path, "set1/a1_video.mp4", clip_bytes)
    res = _gen(suite, path=tmp_path).generate([_req(suite, "a1")])[0]
    assert Path(res.path) == mine and res.provenance["samples"] == 1


# ----------------------------------------------------------------------------------------------- manifests


def test_csv_manifest_with_seeds_and_relative_paths(tmp_path, suite, clip_bytes):
    _put(tmp_path, "clips/one.mp4", clip_bytes)
    _put(tmp_path, "clips/two.mp4", clip_bytes)
    absolute = _put(tmp_path / "elsewhere", "x.mp4", clip_bytes)
    man = tmp_path / "m.csv"
    man.write_text(f"item_id,path,seed\n00000001,clips/two.mp4,7\n00000001,clips/one.mp4,3\na1,{absolute},0\n")
    gen = _gen(suite, manifest=man)
    assert Path(_pick(gen, suite, "00000001", seed=3).path) == tmp_path / "clips/one.mp4"
    assert Path(_pick(gen, suite, "00000001", seed=7).path) == tmp_path / "clips/two.mp4"
    assert "its seeds: [3, 7]" in _pick(gen, suite, "00000001", seed=0).error
    assert Path(_pick(gen, suite, "a1").path) == absolute
    assert "expected a row for '00000010'" in _pick(gen, suite, "00000010").error


def test_json_manifest_lists_samples_in_order(tmp_path, suite, clip_bytes):
    for n in ("b.mp4", "a.mp4"):
        _put(tmp_path, n, clip_bytes)
    man = tmp_path / "m.json"
    man.write_text(json.dumps({"a1": ["b.mp4", "a.mp4"], "clip_ab12": "a.mp4", "ghost": "a.mp4"}))
    gen = _gen(suite, manifest=man)
    assert Path(_pick(gen, suite, "a1", 0).path).name == "b.mp4"
    assert Path(_pick(gen, suite, "a1", 1).path).name == "a.mp4"
    assert _pick(gen, suite, "clip_ab12").ok
    problems = gen.validate(suite)
    assert any(p.kind == "unknown" and "'ghost'" in p.message for p in problems)


def test_manifest_listing_a_missing_file(tmp_path, suite):
    man = tmp_path / "m.csv"
    man.write_text("item_id,path\na1,nowhere.mp4\n")
    res = _pick(_gen(suite, manifest=man), suite, "a1")
    assert not res.ok and "nowhere.mp4" in res.error and "does not exist" in res.error


@pytest.mark.parametrize("text,match", [
    ("id,file\na1,x.mp4\n", "columns item_id,path"),
    ("item_id,path,seed\na1,x.mp4,first\n", "line 2: seed must be an integer"),
    ("item_id,path,seed\na1,x.mp4,0\na1,y.mp4,0\n", "seed 0 is already given at line 2"),
    ("item_id,path\na1,\n", "line 2: item_id and path"),
])
def test_bad_csv_manifests(tmp_path, suite, text, match):
    man = tmp_path / "m.csv"
    man.write_text(text)
    with pytest.raises(ConfigError, match=match):
        _pick(_gen(suite, manifest=man), suite, "a1")


# ----------------------------------------------------------------------------------------------- validate


def test_validate_lists_missing_unknown_unused_and_bad_files(tmp_path, suite, clip_bytes):
    root = tmp_path / "out"
    _put(root, "set1/00000001_video_s0.mp4", clip_bytes)
    _put(root, "set1/00000001_video_s1.mp4", clip_bytes)                      # an extra sample
    _put(root, "set1/000000012_video.mp4", clip_bytes)                        # no such item
    _put(root, "set1/a1_video.mp4", b"")                                      # empty
    _put(root, "set1/a1_b_video.mp4", b"\x00garbage" * 200)                   # not a video
    silent = media.encode(tmp_path / "v.mp4", np.zeros((4, 32, 32, 3), np.uint8), 12, None, None)
    _put(root, "set2/clip_ab12.mp4", silent.read_bytes())                     # no audio stream
    _put(root, "set3/00001000.mp4", clip_bytes)                               # a set this suite does not have
    _put(root, "loose_00000010.mp4", clip_bytes)                              # outside the set folders
    gen = _gen(suite, path=root)
    typed = gen.validate(suite)
    problems = [str(p) for p in typed]
    text = "\n".join(problems)
    assert f"missing: item 00000010 (set1) has no clip (expected {root}/set1/00000010*.mp4)" in problems
    assert f"missing: item 00000300 (set2) has no clip (expected {root}/set2/00000300*.mp4)" in problems
    assert "unused: item 00000001 has 2 clips, seeds [0] score 1" in text and "00000001_video_s1.mp4" in text
    assert f"unknown: {root}/set1/000000012_video.mp4 matches no item of set set1" in problems
    assert f"unknown: {root}/loose_00000010.mp4 lies outside the set folders" in problems
    assert f"bad file: {root}/set1/a1_video.mp4 (item a1): file is empty (0 bytes)" in problems
    assert any(p.startswith(f"bad file: {root}/set1/a1_b_video.mp4 (item a1_b): cannot open") for p in problems)
    assert f"bad file: {root}/set2/clip_ab12.mp4 (item clip_ab12): has no audio stream" in problems
    assert "00001000" not in text  # set3 is not part of this suite: not reported file by file
    assert len(problems) == 8, text
    assert {p.kind for p in typed} == {"missing", "unused", "unknown", "bad file"}
    assert [p.items for p in typed if p.kind == "unused"] == [("00000001",)]
    assert not any(p.kind == "unused" for p in gen.validate(suite, seeds=[0, 1]))


def test_validate_through_the_cli(tmp_path, clip_bytes, capsys):
    from mova_eval.cli import main

    root = tmp_path / "out"
    _put(root, "speech_en/smoke_en_01_video.mp4", clip_bytes)
    rc = main(["validate", "generator=directory", f"generator.path={root}"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "missing: item smoke_en_02 (speech_en) has no clip" in out
    assert "smoke_en_01" not in out.split("problem(s):")[1]


# ----------------------------------------------------------------------------------------------- contract


def test_availability_and_capabilities(tmp_path):
    assert DirectoryGenerator.capabilities.makes_clips is False
    av = DirectoryGenerator.availability({"path": None, "manifest": None})
    assert not av.ok and "generator.path=DIR" in av.reason and av.command
    av = DirectoryGenerator.availability({"path": str(tmp_path / "nope")})
    assert not av.ok and "is not a folder" in av.reason
    av = DirectoryGenerator.availability({"manifest": str(tmp_path / "m.csv")})
    assert not av.ok and "does not exist" in av.reason
    assert DirectoryGenerator.availability({"path": str(tmp_path)}) == Availability(True)
    with pytest.raises(ConfigError, match="is not a folder"):
        DirectoryGenerator({"name": "directory", "path": str(tmp_path / "nope")})


def test_without_a_bound_suite_requests_are_matched(tmp_path, suite, clip_bytes):
    p = _put(tmp_path, "set2/00000300.mp4", clip_bytes)
    gen = DirectoryGenerator({"name": "directory", "path": str(tmp_path)})
    res = gen.generate([_req(suite, "00000300")])[0]
    assert Path(res.path) == p
