"""Concurrent voters over loopback, for the load benchmark and the durability test.

Each voter opens a session (cookie + CSRF token), then repeats: POST /api/battles, POST /api/votes. The client is a
minimal HTTP/1.1 keep-alive client on asyncio streams, so that it costs the 2-core machine little next to the
server it measures. Only 127.0.0.1 is allowed: this never sends traffic off the machine.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


class Conn:
    def __init__(self, host: str, port: int):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"load generation is for loopback only, not {host!r}")
        self.host, self.port = host, port
        self.reader = self.writer = None
        self.cookie = ""
        self.csrf = ""

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive",
                f"Content-Length: {len(data)}"]
        if data:
            head.append("Content-Type: application/json")
        if self.cookie:
            head.append(f"Cookie: {self.cookie}")
        if self.csrf:
            head.append(f"X-CSRF-Token: {self.csrf}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v.strip())
            elif k == "set-cookie":
                self.cookie = v.strip().split(";", 1)[0]
        raw = await self.reader.readexactly(length) if length else b""
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, {"raw": raw[:200].decode("latin-1")}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class LoadResult:
    votes: int = 0
    battles: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    vote_latency: list[float] = field(default_factory=list)
    battle_latency: list[float] = field(default_factory=list)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)  # (vote id, battle id) answered 200
    elapsed: float = 0.0

    def summary(self) -> dict:
        import numpy as np

        def pct(xs, q):
            return float(np.percentile(np.array(xs) * 1000, q)) if xs else float("nan")

        return {"votes": self.votes, "seconds": round(self.elapsed, 3),
                "votes_per_s": self.votes / self.elapsed if self.elapsed else 0.0,
                "vote_p50_ms": pct(self.vote_latency, 50), "vote_p99_ms": pct(self.vote_latency, 99),
                "battle_p50_ms": pct(self.battle_latency, 50), "battle_p99_ms": pct(self.battle_latency, 99),
                "errors": dict(self.errors)}


async def _voter(host, port, deadline, max_votes, res: LoadResult, choices, stop: asyncio.Event) -> None:
    c = Conn(host, port)
    try:
        await c.open()
        st, body = await c.request("GET", "/api/session")
        c.csrf = body.get("csrf", "")
        i = 0
        while time.perf_counter() < deadline and res.votes < max_votes and not stop.is_set():
            t0 = time.perf_counter()
            st, b = await c.request("POST", "/api/battles", {})
            res.battle_latency.append(time.perf_counter() - t0)
            if st != 200:
                res.errors[f"battle {st}"] = res.errors.get(f"battle {st}", 0) + 1
                continue
            res.battles += 1
            t0 = time.perf_counter()
            st, v = await c.request("POST", "/api/votes", {"token": b["token"], "choice": choices[i % len(choices)],
                                                           "heard_a_s": 5.0, "heard_b_s": 5.0})
            res.vote_latency.append(time.perf_counter() - t0)
            i += 1
            if st == 200:
                res.votes += 1
                res.acknowledged.append((int(v["vote_id"]), b["battle_id"]))
            else:
                res.errors[f"vote {st}"] = res.errors.get(f"vote {st}", 0) + 1
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
        res.errors[type(e).__name__] = res.errors.get(type(e).__name__, 0) + 1
    finally:
        c.close()


async def run_load(port: int, *, voters: int = 32, seconds: float = 5.0, max_votes: int = 100_000,
                   host: str = "127.0.0.1", stop: asyncio.Event | None = None) -> LoadResult:
    """Run ``voters`` concurrent voters for ``seconds`` (or until ``max_votes``); bounded in both."""
    res = LoadResult()
    stop = stop or asyncio.Event()
    choices = ["a", "b", "a", "tie", "b", "a", "both_bad", "b"]
    t0 = time.perf_counter()
    deadline = t0 + seconds
    await asyncio.gather(*[_voter(host, port, deadline, max_votes, res, choices[i % 3:] + choices[: i % 3], stop)
                           for i in range(voters)])
    res.elapsed = time.perf_counter() - t0
    return res


def wait_ready(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Block until the server answers /api/health."""
    import socket

    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"arena server on port {port} did not come up in {timeout} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
