"""MOVA adapter: in-process and torchrun paths on the TinyMova stand-in (MOVA's call signature, not MOVA)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.context import RunContext
from mova_eval.generators.mova import Mova360p
from mova_eval.runner import generate
from mova_eval.spec import GenRequest, SuiteItem

REPO = Path(__file__).resolve().parents[2]
FACTORY = "tests.integration.tiny_mova:TinyMova.from_pretrained"


def _cfg(**over):
    cfg = compose(["generator=mova_360p"])["generator"]
    cfg.update({"num_frames": 9, "pipeline_factory": FACTORY, "checkpoint": "tiny-stand-in", **over})
    return cfg


def _req(i: int, seed: int = 0, first_frame=None, prompt="A man says \"hi\" by the sea.") -> GenRequest:
    item = SuiteItem(id=f"it{i}", category="set3", prompt=prompt, speech_text="hi", first_frame=first_frame)
    return GenRequest(f"it{i}#s{seed}", item, seed, width=640, height=352, fps=24.0)


def test_missing_package_is_a_per_item_error_with_the_install_command():
    cfg = compose(["generator=mova_360p"])["generator"]
    av = Mova360p.availability(cfg)
    assert not av.ok and "mova" in av.reason and "OpenMOSS/MOVA" in av.command
    gen = Mova360p(cfg)
    gen.load()  # never raises: the reason is kept for every request
    res = gen.generate([_req(0)])
    assert res[0].path is None and "pip install -e ./MOVA" in res[0].error


def test_in_process_writes_clip_with_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_MOVA_TRACE", str(tmp_path / "trace"))
    gen = Mova360p(_cfg())
    gen.load()
    try:
        out = generate(gen, [_req(0)], cache_enabled=True, progress=False, context=RunContext.from_env())["it0#s0"]
    finally:
        gen.close()
    assert out.ok, out.error
    clip = media.decode(out.path)
    assert clip.video.shape == (9, 352, 640, 3) and clip.fps == 24.0
    assert clip.sample_rate == 16000 and clip.has_audio
    assert 20 < clip.video.mean() < 35  # one rank: contribution 1 → ~0.1 + noise
    p = out.provenance
    assert p["seed"] == 42 and p["run_seed"] == 0  # toolkit default seed 42 for the run's seed 0
    assert p["prompt_sent"] == "A man says \"hi\" by the sea." and p["mode"] == "t2va"
    assert p["sampler"]["cfg_scale"] == 5.0 and p["sampler"]["num_inference_steps"] == 50
    assert p["negative_prompt"].startswith("色调艳丽")
    sidecar = json.loads(Path(out.path).with_suffix(".json").read_text())
    assert sidecar["seed"] == 42
    (trace,) = [json.loads(line) for line in (tmp_path / "trace" / "rank0.jsonl").read_text().splitlines()]
    assert trace["image_size"] == [640, 352] and trace["offload"] == "cpu"  # white T2VA frame at the target size


def test_capability_errors_are_per_item(tmp_path):
    gen = Mova360p(_cfg(num_frames=10))
    gen.load()
    try:
        bad_frames, bad_size = gen.generate([_req(0, 0), GenRequest("x#s0", _req(1).item, 0, width=512, height=512,
                                                                     out_path=str(tmp_path / "x.mp4"))])
    finally:
        gen.close()
    assert "(num_frames - 1) % 4" in bad_frames.error
    assert "cannot generate 512x512" in bad_size.error


def test_dual_cfg_is_refused_by_a_mova_without_it_and_used_when_present(tmp_path):
    gen = Mova360p(_cfg(dual_cfg_scale=3.5))
    gen.load()
    try:
        (res,) = gen.generate([GenRequest(**{**_req(0).__dict__, "out_path": str(tmp_path / "a.mp4")})])
    finally:
        gen.close()
    assert res.path is None and "dual CFG" in res.error and "not supported by the installed MOVA" in res.error
    gen = Mova360p(_cfg(dual_cfg_scale=3.5, pipeline_factory="tests.integration.tiny_mova:TinyMovaDual.from_pretrained"))
    gen.load()
    try:
        (res,) = gen.generate([GenRequest(**{**_req(0).__dict__, "out_path": str(tmp_path / "b.mp4")})])
        assert res.ok, res.error
        assert gen._pipe.last_dual == ("dual", 3.5)
    finally:
        gen.close()


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_rank0_writes(tmp_path, monkeypatch):
    """2 gloo processes: both compute every call (the all-reduced value shows in the frames), rank 0 writes."""
    monkeypatch.setenv("TINY_MOVA_TRACE", str(tmp_path / "trace"))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    gen = Mova360p(_cfg(gpus=2, worker_timeout_s=240))
    gen.load()
    reqs = [GenRequest(**{**_req(i, 0).__dict__, "out_path": str(tmp_path / f"c{i}.mp4")}) for i in range(2)]
    res = gen.generate(reqs)
    assert all(r.ok for r in res), [r.error for r in res]
    for r in res:
        clip = media.decode(r.path)
        assert clip.video.shape[0] == 9
        assert 70 < clip.video.mean() < 90  # contributions 1 + 2 all-reduced → ~0.3
        assert r.provenance["writer_rank"] == 0 and r.provenance["world_size"] == 2
    traces = {p.name: [json.loads(x) for x in p.read_text().splitlines()] for p in (tmp_path / "trace").iterdir()}
    assert set(traces) == {"rank0.jsonl", "rank1.jsonl"}
    assert [t["contrib"] for t in traces["rank1.jsonl"]] == [3.0, 3.0]  # rank 1 computed both clips
    # resume: records beside the clips mean a second call launches nothing
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "trace").iterdir()}
    again = gen.generate(reqs)
    assert all(r.ok and r.provenance.get("resumed_from_worker_record") for r in again)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "trace").iterdir()} == before


@pytest.mark.parametrize("offload,expected", [("none", "none:cpu"), ("group", "group")])
def test_offload_modes_reach_the_pipeline(tmp_path, monkeypatch, offload, expected):
    monkeypatch.setenv("TINY_MOVA_TRACE", str(tmp_path / "trace"))
    gen = Mova360p(_cfg(offload=offload))
    gen.load()
    try:
        (res,) = gen.generate([GenRequest(**{**_req(0).__dict__, "out_path": str(tmp_path / "a.mp4")})])
    finally:
        gen.close()
    assert res.ok, res.error
    (trace,) = [json.loads(x) for x in (tmp_path / "trace" / "rank0.jsonl").read_text().splitlines()]
    assert trace["offload"] == expected


def test_unknown_offload_mode_is_a_config_error_before_loading():
    from mova_eval.errors import ConfigError

    with pytest.raises(ConfigError, match=r"generator\.offload of generator 'mova_360p' must be 'none' \| 'cpu' \| "
                                          r"'group', got 'disk'"):
        Mova360p(_cfg(offload="disk"))
