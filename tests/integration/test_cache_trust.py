"""Nothing cached is trusted blindly, and concurrent writers cannot collide (issue 15 items 5, 6 and the
provenance part of 7). Each test names the failure it guards against; each failed on the code before the fix."""
from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.cache import Cache
from mova_eval.config import compose
from mova_eval.errors import RunLockedError
from mova_eval.metrics.base import ItemScore
from mova_eval.metrics.loudness import LoudnessMetric
from mova_eval.results import RunLock, read_run_json
from mova_eval.runner import run

BASE = ["metrics.only=[loudness]", "suite.limit=3", "runtime.progress=false", "runtime.bootstrap=20"]


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(root))  # a cold cache of this test's own
    return root


def _cached_clips(root: Path) -> list[Path]:
    return sorted(p for p in (root / "clips").rglob("*.mp4") if not p.name.startswith("."))


def _values(outcome) -> list:
    return outcome.items[["item_id", "metric", "value", "error"]].values.tolist()


def _cached_flags(run_dir: Path) -> list[bool]:
    return [bool(g.get("cached")) for _, g in sorted(read_run_json(run_dir).generation.items())]


# ------------------------------------------------------------------------------------------- score/feature cache


@pytest.mark.parametrize("garbage", [os.urandom(257), b"\x80\x04K", pickle.dumps("a string, not a score"),
                                     pickle.dumps({"values": {"lufs": 1.0}})])
def test_an_unreadable_or_wrongly_typed_entry_is_removed_and_recomputed(cache_root, garbage):
    cache = Cache("scores")
    cache.path("k").parent.mkdir(parents=True)
    cache.path("k").write_bytes(garbage)
    computed = ItemScore(values={"lufs": -23.0})
    got = cache.get_or_compute("k", lambda: computed, expect=ItemScore)
    assert got is computed
    assert isinstance(pickle.loads(cache.path("k").read_bytes()), ItemScore)  # the bad entry was replaced


# ------------------------------------------------------------------------------------------- clip cache


def test_a_truncated_cached_clip_is_made_again_not_reused(tmp_path, cache_root):
    first = run(compose([f"output_dir={tmp_path}", "run_id=a", *BASE]))
    clips = _cached_clips(cache_root)
    assert len(clips) == 3
    data = clips[1].read_bytes()
    clips[1].write_bytes(data[: len(data) // 3])

    second = run(compose([f"output_dir={tmp_path}", "run_id=b", *BASE]))
    assert second.items["error"].isna().all(), second.items["error"].dropna().tolist()
    assert _values(second) == _values(first)
    assert sorted(_cached_flags(tmp_path / "b")) == [False, True, True]  # only the damaged clip was remade
    assert json.loads(clips[1].with_suffix(".json").read_text())["clip_sha256"]


@pytest.mark.parametrize("sidecar_text", ['{"seed": 0, "gener', "", "[1, 2]", '{"seed": 0}'])
def test_a_torn_foreign_or_hashless_sidecar_is_a_miss_not_a_crash(tmp_path, cache_root, sidecar_text):
    first = run(compose([f"output_dir={tmp_path}", "run_id=a", *BASE]))
    clip = _cached_clips(cache_root)[0]
    clip.with_suffix(".json").write_text(sidecar_text)
    second = run(compose([f"output_dir={tmp_path}", "run_id=b", *BASE]))
    assert _values(second) == _values(first)
    assert sorted(_cached_flags(tmp_path / "b")) == [False, True, True]


# ------------------------------------------------------------------------------------------- concurrency


def test_concurrent_encodes_of_the_same_clip_do_not_share_a_temp_file(tmp_path):
    video = np.zeros((8, 32, 32, 3), np.uint8)
    audio = (0.1 * np.sin(np.linspace(0, 200, 16000))).astype(np.float32)
    dest = tmp_path / "same.mp4"
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer():
        start.wait()
        try:
            for _ in range(3):
                media.encode(dest, video, 8.0, audio, 16000)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert media.decode(dest).video.shape[0] == 8
    assert [p.name for p in tmp_path.iterdir()] == ["same.mp4"]  # no temp file left behind


def test_a_second_writer_of_a_run_directory_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "r"
    held = RunLock(run_dir).acquire()
    try:
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
            run(compose([f"output_dir={tmp_path}", "run_id=r", *BASE]))
    finally:
        held.release()
    assert run(compose([f"output_dir={tmp_path}", "run_id=r", *BASE])).log.status == "complete"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from pathlib import Path; from mova_eval.results import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "r")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            RunLock(tmp_path / "r").acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    RunLock(tmp_path / "r").acquire().release()


# ------------------------------------------------------------------------------------------- provenance on resume


def test_a_resumed_run_keeps_the_provenance_of_clips_made_before_the_kill(tmp_path, cache_root, monkeypatch):
    cfg = compose([f"output_dir={tmp_path}", "run_id=r", *BASE, "runtime.cache=false"])
    real = LoudnessMetric.score
    calls = {"n": 0}

    def killed_on_the_third(self, clip, item):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, clip, item)

    monkeypatch.setattr(LoudnessMetric, "score", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert len(read_run_json(tmp_path / "r").generation) == 3  # written when generation ended, before scoring
    monkeypatch.setattr(LoudnessMetric, "score", real)
    resumed = run(cfg)
    gen = resumed.log.generation
    assert len(gen) == 3 and all("path" in g and "seed" in g for g in gen.values())
    assert resumed.log.counts["clips_failed"] == 0


def test_a_resumed_run_names_the_decode_of_every_clip_scored_before_the_kill(tmp_path, cache_root, monkeypatch):
    cfg = compose([f"output_dir={tmp_path}", "run_id=d", *BASE])
    real = LoudnessMetric.score
    calls = {"n": 0}
    on_disk_at_kill: dict = {}

    def killed_on_the_third(self, clip, item):
        calls["n"] += 1
        if calls["n"] == 3:
            # what run.json holds at this instant is all a SIGKILL here would leave (no cleanup runs)
            on_disk_at_kill.update(read_run_json(tmp_path / "d").decode)
            raise KeyboardInterrupt
        return real(self, clip, item)

    monkeypatch.setattr(LoudnessMetric, "score", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert len(on_disk_at_kill) == 2, on_disk_at_kill  # the two items already in the item log
    monkeypatch.setattr(LoudnessMetric, "score", real)
    resumed = run(cfg)
    assert resumed.log.counts["resumed_rows"] > 0  # the first two were not scored again
    decode = read_run_json(tmp_path / "d").decode
    assert len(decode) == 3 and set(on_disk_at_kill) < set(decode), decode
    assert set(decode) == set(resumed.log.generation)  # every scored clip, by request id
    assert all("audio_tracks" in d for d in decode.values())
