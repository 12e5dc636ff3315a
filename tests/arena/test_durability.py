"""Kill the server (SIGKILL) in the middle of concurrent voting: every vote it acknowledged must be in the database,
and the server must start again on the same database."""
from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
import time


def _serve(db, port):
    cmd = [sys.executable, "-m", "mova_eval", "arena", "serve", "--db", db, "--port", str(port), "--min-listen", "0",
           "--vote-limit", "100000/s", "--ip-vote-limit", "100000/s", "--battle-limit", "100000/s",
           "--ip-battle-limit", "100000/s", "--session-limit", "100000/s"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_no_acknowledged_vote_is_lost_when_the_server_is_killed(arena_db):
    from mova_eval.arena.loadgen import free_port, run_load, wait_ready

    port = free_port()
    proc = _serve(arena_db, port)
    try:
        wait_ready(port)
        out = {}
        th = threading.Thread(target=lambda: out.setdefault("res", asyncio.run(
            run_load(port, voters=12, seconds=8.0, max_votes=20_000))))
        th.start()
        deadline = time.time() + 6
        while time.time() < deadline:  # kill once a fair number of votes went through
            time.sleep(0.2)
            con = sqlite3.connect(arena_db)
            n = con.execute("select count(*) from votes").fetchone()[0]
            con.close()
            if n >= 100:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        th.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = out["res"]
    assert res.votes >= 50, res.summary()
    assert res.errors, "the kill should have cut connections"
    con = sqlite3.connect(arena_db)
    stored = dict(con.execute("select id, battle_id from votes").fetchall())
    con.close()
    lost = [(vid, bid) for vid, bid in res.acknowledged if stored.get(vid) != bid]
    assert not lost, f"{len(lost)} acknowledged votes missing after the kill: {lost[:5]}"
    # The database is usable again: a fresh server starts and counts the votes.
    port2 = free_port()
    proc2 = _serve(arena_db, port2)
    try:
        wait_ready(port2)
        res2 = asyncio.run(run_load(port2, voters=2, seconds=1.0, max_votes=5))
        assert res2.votes >= 5 and not res2.errors
    finally:
        proc2.send_signal(signal.SIGTERM)
        proc2.wait(timeout=10)
