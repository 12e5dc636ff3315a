"""Import from run directories, playback copies (loudness, codec, no metadata), gold twins, export and an exact
leaderboard recomputation from the export, and the CLI."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.arena import playback


def _write_with_metadata(path: Path, gain: float) -> None:
    """A clip with a revealing container title and a quiet/loud tone."""
    import av

    sr, fps = 44100, 10
    t = np.arange(int(1.5 * sr)) / sr
    audio = (gain * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    video = np.full((15, 64, 80, 3), 90, np.uint8)
    media.encode(path, video, fps, audio, sr)
    tmp = path.with_name("meta_" + path.name)
    with av.open(str(path)) as src, av.open(str(tmp), "w") as dst:
        dst.metadata["title"] = "made-by-SECRETMODEL"
        dst.metadata["comment"] = "SECRETMODEL v2"
        streams = {}
        for s in src.streams:
            streams[s.index] = dst.add_stream_from_template(s)
        for pkt in src.demux():
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            dst.mux(pkt)
    tmp.replace(path)


@pytest.mark.parametrize("gain", [0.02, 0.6])
def test_playback_copy_is_normalised_and_stripped(tmp_path, gain):
    import av

    src = tmp_path / "src.mp4"
    _write_with_metadata(src, gain)
    with av.open(str(src)) as c:
        assert c.metadata.get("title") == "made-by-SECRETMODEL"  # the source really carries it
    info = playback.make_copy(src, tmp_path / "copy.mp4")
    raw = (tmp_path / "copy.mp4").read_bytes()
    assert b"SECRETMODEL" not in raw
    with av.open(str(tmp_path / "copy.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        a = c.streams.audio[0].codec_context
        assert (a.name, a.sample_rate, a.channels) == ("aac", 48000, 2)
        assert "title" not in c.metadata and "comment" not in c.metadata
    clip = media.decode(tmp_path / "copy.mp4")
    assert abs(playback.loudness(clip.audio, clip.sample_rate) - playback.TARGET_LUFS) < 0.5
    assert np.max(np.abs(clip.audio)) <= 10 ** (playback.PEAK_DBFS / 20) + 0.02
    assert info["loudness_in"] < -20 if gain < 0.1 else info["loudness_in"] > -10


def test_gold_twin_sound_is_500ms_late(tmp_path):
    sr, fps = 16000, 25
    audio = np.zeros(2 * sr, np.float32)
    audio[int(0.6 * sr): int(0.65 * sr)] = 0.8  # one click at 0.6 s
    media.encode(tmp_path / "s.mp4", np.full((50, 64, 64, 3), 50, np.uint8), fps, audio, sr)
    playback.make_copy(tmp_path / "s.mp4", tmp_path / "good.mp4")
    playback.make_copy(tmp_path / "s.mp4", tmp_path / "bad.mp4", audio_shift_s=playback.GOLD_SHIFT_S)
    onset = {}
    for name in ("good", "bad"):
        c = media.decode(tmp_path / f"{name}.mp4")
        env = np.abs(c.audio[0])
        onset[name] = np.argmax(env > 0.5 * env.max()) / c.sample_rate
    assert abs(onset["bad"] - onset["good"] - 0.5) < 0.02


def test_import_builds_pairs_and_is_idempotent(pool_template, tmp_path):
    from mova_eval.arena.pairing import Pool
    from mova_eval.arena.pool import import_runs
    from mova_eval.arena.storage import Store

    db = tmp_path / "p.db"
    store = Store(str(db))
    runs = [(pool_template["runs"] / "synth-wide", None), (pool_template["runs"] / "synth-small", "small=renamed")]
    rep = import_runs(store, runs, tmp_path / "media")
    assert rep.models == {"synth-wide": 3, "small=renamed": 3} and not rep.skipped
    again = import_runs(store, runs, tmp_path / "media")
    assert again.models == {"synth-wide": 0, "small=renamed": 0}
    pool = Pool(store)
    assert pool.models == ["small=renamed", "synth-wide"]
    assert list(pool.pairs.values()) == [[1, 2, 3]]
    con = sqlite3.connect(db)
    prompts = con.execute("select item_id, category, text from prompts").fetchall()
    files = [r[0] for r in con.execute("select playback_file from clips")]
    con.close()
    assert len(prompts) == 3 and all(p[2] for p in prompts)  # prompt text came from the suite
    assert all(len(f) == 36 and (tmp_path / "media" / f).is_file() for f in files)
    store.dispose()


def test_import_refuses_a_folder_that_is_not_a_run(tmp_path):
    from mova_eval.arena.pool import import_runs
    from mova_eval.arena.storage import Store
    from mova_eval.errors import MovaEvalError

    store = Store(str(tmp_path / "x.db"))
    with pytest.raises(MovaEvalError, match="no run.json"):
        import_runs(store, [(tmp_path, None)], tmp_path / "m")
    store.dispose()


def test_export_reproduces_the_board_exactly(make_client, arena_db, tmp_path, capsys):
    from mova_eval.arena.integrity import Limit
    from mova_eval.cli import main

    app = make_client(gold_rate=0.3, vote_limit_voter=Limit(1000, 60), battle_limit_voter=Limit(1000, 60))
    c = make_client.client(app)
    rng = np.random.default_rng(0)
    for _ in range(30):
        b = c.post("/api/battles", json={}).json()
        con = sqlite3.connect(arena_db)
        gold = con.execute("select gold_answer from battles where id=?", (b["battle_id"],)).fetchone()[0]
        con.close()
        choice = gold or ["a", "b", "tie", "both_bad"][rng.integers(4)]  # a reliable voter
        r = c.post("/api/votes", json={"token": b["token"], "choice": choice, "heard_a_s": 3.0, "heard_b_s": 3.0})
        assert r.status_code == 200
    app.state.arena.store.dispose()
    out = tmp_path / "release"
    assert main(["arena", "export", "--db", arena_db, "--out", str(out)]) == 0
    for f in ("votes.parquet", "votes.jsonl", "clips.parquet", "clips.jsonl", "meta.json"):
        assert (out / f).is_file()
    lines = (out / "votes.jsonl").read_text().splitlines()
    assert len(lines) == 30 and {"flags", "voter", "pair_prob", "clip_a"} <= set(json.loads(lines[0]))
    assert main(["arena", "leaderboard", "--db", arena_db, "--out", str(tmp_path / "from_db"), "--bootstrap", "30"]) == 0
    assert main(["arena", "leaderboard", "--from", str(out), "--out", str(tmp_path / "from_dump"),
                 "--bootstrap", "30"]) == 0
    a = (tmp_path / "from_db" / "leaderboard.json").read_text()
    b = (tmp_path / "from_dump" / "leaderboard.json").read_text()
    assert a == b
    lb = json.loads(a)
    assert lb["counts"]["votes"] == 30 and lb["counts"]["gold_votes"] > 0
    assert lb["counts"]["model_votes"] + lb["counts"]["gold_votes"] == 30
    assert lb["counts"]["unreliable_voters"] == 0 and lb["counts"]["counted"] == lb["counts"]["model_votes"]
    md = (tmp_path / "from_dump" / "leaderboard.md").read_text()
    assert md == (tmp_path / "from_db" / "leaderboard.md").read_text() and "| Rank | Model |" in md


def test_cli_import_prints_the_pool(pool_template, tmp_path, capsys):
    from mova_eval.cli import main

    runs = pool_template["runs"]
    assert main(["arena", "import", str(runs / "synth-wide"), str(runs / "synth-small"), "--db",
                 str(tmp_path / "c.db"), "--gold", "1"]) == 0
    out = capsys.readouterr().out
    assert "synth-wide: 3 clips added" in out and "pool: 2 models, 1 pairs" in out and "1 gold pairs" in out
    assert (tmp_path / "c-media").is_dir()
