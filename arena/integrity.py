"""Integrity helpers: signed single-use battle tokens, voter pseudonyms, CSRF tokens, rate limits (in memory, or
kept in the database for the session limit), body-size limit.

Nothing here stores a raw IP address or a raw voter id: both are reduced to salted SHA-256 pseudonyms.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.signer import Signer
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

if TYPE_CHECKING:
    from mova_eval.arena.storage import Store


class TokenError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Keys:
    """Everything derived from the server secret and the pseudonym salt (both kept in the database)."""

    def __init__(self, secret: str, salt: str):
        self._secret = secret.encode()
        self._salt = salt.encode()
        # "battle_id.voter.timestamp.signature": plain hex fields, so no JSON or compression per request.
        self.battles = TimestampSigner(secret, salt="mova-eval-arena-battle")
        self.cookies = Signer(secret, salt="mova-eval-arena-voter")
        # Verified cookies and computed pseudonyms, kept in memory only (bounded): every request needs both.
        self._cookie_cache: dict = {}
        self._pseudonym_cache: dict = {}

    # --- battle tokens
    def battle_token(self, battle_id: str, voter: str) -> str:
        return self.battles.sign(f"{battle_id}.{voter}").decode()

    def read_battle_token(self, token: str, max_age: float) -> dict:
        try:
            value = self.battles.unsign(token, max_age=max_age).decode()
        except SignatureExpired as e:
            raise TokenError(410, "battle token expired; start a new battle") from e
        except (BadSignature, UnicodeDecodeError) as e:
            raise TokenError(403, "invalid battle token") from e
        battle, _, voter = value.partition(".")
        if not battle or not voter:
            raise TokenError(403, "invalid battle token")
        return {"b": battle, "v": voter}

    # --- voter cookie and pseudonyms
    def new_voter_cookie(self) -> str:
        return self.cookies.sign(secrets.token_hex(16)).decode()

    def voter_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        hit = self._cookie_cache.get(cookie)
        if hit is not None:
            return hit
        try:
            vid = self.cookies.unsign(cookie).decode()
        except BadSignature:
            return None
        _remember(self._cookie_cache, cookie, vid)
        return vid

    def pseudonym(self, raw: str, kind: str) -> str:
        key = (raw, kind)
        hit = self._pseudonym_cache.get(key)
        if hit is None:
            hit = hashlib.sha256(self._salt + kind.encode() + b":" + raw.encode()).hexdigest()[:24]
            _remember(self._pseudonym_cache, key, hit)
        return hit

    def csrf_token(self, voter_id: str) -> str:
        return hmac.new(self._secret, b"csrf:" + voter_id.encode(), hashlib.sha256).hexdigest()[:32]

    def check_csrf(self, voter_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(voter_id), token)


def _remember(cache: dict, key, value, limit: int = 50_000) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


@dataclass
class Limit:
    count: int
    window_s: float


def refill(tokens: float, last: float, now: float, limit: Limit) -> float:
    """A token bucket's content at ``now``: ``count`` per ``window_s`` flow back in continuously, up to ``count``.
    A clock that stepped back (a wall clock after a restart) refills nothing rather than draining the bucket."""
    rate = limit.count / limit.window_s
    return min(float(limit.count), tokens + max(0.0, now - last) * rate)


def take(tokens: float, limit: Limit) -> tuple[float, float]:
    """(tokens left, seconds to wait): consume one token when there is one (wait 0.0), else keep them."""
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / (limit.count / limit.window_s)


class RateLimiter:
    """Token buckets per key: ``count`` requests per ``window_s``, refilled continuously. In-process state (lost on
    restart): used for the per-minute vote and battle limits, which a restart refills within a minute anyway and
    which sit on the hot path; the session limit (per hour) is kept in the database by ``StoredRateLimiter``."""

    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    max_keys = 100_000

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they carry no state), so memory stays bounded."""
        full = [k for k, (t, last) in self._buckets.items() if refill(t, last, now, self.limit) >= self.limit.count]
        for k in full:
            del self._buckets[k]

    def hit(self, key: str, now: float | None = None) -> float:
        """0.0 when allowed (and consumed), else the seconds to wait."""
        now = self.clock() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.limit.count), now))
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            tokens, wait = take(refill(tokens, last, now, self.limit), self.limit)
            self._buckets[key] = (tokens, now)
            return wait


class StoredRateLimiter:
    """Token buckets kept in the arena database (table ``rate_limits``, one row per limiter name and key), so a
    restarted, redeployed or crash-looping server keeps its limits.

    Each ``hit`` is one transaction that reads, refills, consumes and writes the bucket: on SQLite under the store's
    write lock (one writer), on PostgreSQL with the row locked (``SELECT … FOR UPDATE`` after an
    ``INSERT … ON CONFLICT DO NOTHING`` that makes sure the row exists), so concurrent requests, or two server
    processes, cannot both take the last token. Times are wall-clock seconds (``clock``, default ``time.time``):
    a monotonic clock restarts with the process. A bucket untouched for a whole window is full again and carries no
    state: such rows are deleted (at most once per window), so the table stays as small as the active keys.
    """

    def __init__(self, limit: Limit, store: Store, name: str, clock: Callable[[], float] = time.time):
        self.limit, self.store, self.name, self.clock = limit, store, name, clock
        self._last_prune = -math.inf

    def hit(self, key: str, now: float | None = None) -> float:
        """0.0 when allowed (and consumed), else the seconds to wait."""
        from mova_eval.arena.storage import RateBucket

        now = self.clock() if now is None else now
        t = RateBucket.__table__
        where = (t.c.name == self.name) & (t.c.key == key)
        dialect_insert = pg_insert if self.store.url.startswith("postgresql") else sqlite_insert
        with self.store.write() as s:
            conn = s.connection()
            conn.execute(dialect_insert(t).values(name=self.name, key=key, tokens=float(self.limit.count),
                                                  updated_at=now).on_conflict_do_nothing(index_elements=["name", "key"]))
            tokens, last = conn.execute(select(t.c.tokens, t.c.updated_at).where(where).with_for_update()).one()
            tokens, wait = take(refill(min(tokens, float(self.limit.count)), last, now, self.limit), self.limit)
            conn.execute(update(t).where(where).values(tokens=tokens, updated_at=max(now, last)))
            if now - self._last_prune >= self.limit.window_s:
                self._last_prune = now
                conn.execute(delete(t).where((t.c.name == self.name) & (t.c.updated_at < now - self.limit.window_s)))
        return wait


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, by header or while streaming.

    The body is read here in full (it is at most ``max_bytes``) and replayed to the app: raising from inside the
    app's ``receive`` would reach FastAPI's body parser, which reports any error there as a 400, so a chunked
    upload without Content-Length must be stopped before the app sees it.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    return await _reply_413(send, self.max_bytes)
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                chunks.append(msg)
                break
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                return await _reply_413(send, self.max_bytes)
            chunks.append(msg)
            if not msg.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def buffered():
            return replay.pop(0) if replay else await receive()

        await self.app(scope, buffered, send)


async def _reply_413(send, limit: int) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# Served on every response. The pages use only their own scripts and styles; /docs (Swagger UI) loads its bundle
# from jsDelivr and starts it with an inline script, so it gets a policy of its own.
CSP_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
             "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
CSP_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]


class SecurityHeaders:
    """ASGI middleware: CSP (with ``frame-ancestors 'none'``), X-Frame-Options, nosniff and Referrer-Policy on every
    response, so the pages cannot be framed (click-jacking a vote), scripts come only from this server, and battle
    URLs never leak to other sites through the Referer header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        csp = CSP_DOCS if path in ("/docs", "/redoc") else CSP_PAGES

        async def with_headers(msg):
            if msg["type"] == "http.response.start":
                names = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(b"content-security-policy", csp.encode())] + SECURITY_HEADERS
                msg = {**msg, "headers": list(msg.get("headers", [])) + [(k, v) for k, v in extra if k not in names]}
            await send(msg)

        await self.app(scope, receive, with_headers)
