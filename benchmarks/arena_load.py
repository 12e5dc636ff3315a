"""Arena load benchmark: N concurrent voters over loopback against `mova-eval arena serve` (SQLite by default).

Prints sustained votes/s (each vote is preceded by its own POST /api/battles) and p50/p99 latency of the vote and
battle requests. Target on a 2-core machine with SQLite: >= 500 votes/s and vote p99 < 100 ms.

    python benchmarks/arena_load.py --voters 32 --seconds 10
    python benchmarks/arena_load.py --db postgresql://user@127.0.0.1:5432/arena   # an existing pool

Bounded: at most --seconds of load and --max-votes votes, loopback only. The server runs in a subprocess with
rate limits raised (all voters share 127.0.0.1) and the minimum listening time set to 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), so the figure is not skewed by other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voters", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-votes", type=int, default=50_000)
    ap.add_argument("--db", default=None, help="use this database (default: a fresh SQLite pool in a temp folder)")
    ap.add_argument("--sqlite-sync", default="full", choices=["full", "normal"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="pin the server and the load generator to different cores (default on)")
    args = ap.parse_args()

    from mova_eval.arena.loadgen import free_port, run_load, wait_ready

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        db = args.db
        if db is None:
            from mova_eval.arena.demo import make_pool

            db = str(Path(tmp) / "bench.db")
            make_pool(db, tmp, models=3, items=3, gold=1)
        port = free_port()
        cmd = [sys.executable, "-m", "mova_eval", "arena", "serve", "--db", db, "--port", str(port),
               "--min-listen", "0", "--vote-limit", "100000/s", "--ip-vote-limit", "100000/s",
               "--battle-limit", "100000/s", "--ip-battle-limit", "100000/s", "--session-limit", "100000/s",
               "--sqlite-sync", args.sqlite_sync]
        cores = sorted(os.sched_getaffinity(0))
        pin = args.pin and len(cores) >= 2
        # With --pin the server gets one core and the voters another, so they do not steal each other's time.
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                  preexec_fn=(lambda: os.sched_setaffinity(0, {cores[0]})) if pin else None)
        if pin:
            os.sched_setaffinity(0, {cores[1]})
        try:
            wait_ready(port)
            asyncio.run(run_load(port, voters=args.voters, seconds=1.0, max_votes=200))  # warm-up
            cpu0 = _cpu_seconds(server.pid)
            res = asyncio.run(run_load(port, voters=args.voters, seconds=args.seconds, max_votes=args.max_votes))
            server_cpu = _cpu_seconds(server.pid) - cpu0
        finally:
            server.terminate()
            server.wait(timeout=10)
    s = res.summary()
    s["server_cpu_ms_per_vote"] = 1000 * server_cpu / s["votes"] if s["votes"] else float("nan")
    s["load_average"] = os.getloadavg()[0]
    s.update({"voters": args.voters, "database": "sqlite" if args.db is None else args.db.split(":", 1)[0],
              "sqlite_sync": args.sqlite_sync, "cpu_count": os.cpu_count()})
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{s['votes']} votes in {s['seconds']} s with {args.voters} voters: {s['votes_per_s']:.0f} votes/s")
        print(f"vote   latency p50 {s['vote_p50_ms']:.1f} ms, p99 {s['vote_p99_ms']:.1f} ms")
        print(f"battle latency p50 {s['battle_p50_ms']:.1f} ms, p99 {s['battle_p99_ms']:.1f} ms")
        print(f"server CPU per vote (battle + vote request): {s['server_cpu_ms_per_vote']:.2f} ms "
              f"(≈ {1000 / s['server_cpu_ms_per_vote']:.0f} votes/s per fully available core); "
              f"load average during the run: {s['load_average']:.1f} on {os.cpu_count()} cores")
        if s["errors"]:
            print(f"errors: {s['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
