"""The arena's actions, one method each, independent of HTTP: session, battle, vote, board, media, admin.

``app.py`` only turns requests into calls of ``ArenaService`` and its typed results into responses. The in-memory
state (pool and sampler, known and quarantined voters, the counters that decide when to refit, the cached board)
is guarded by one lock, ``ArenaService.lock``, held only for short critical sections: database writes go through
the store's group commit outside it (a vote is acknowledged only after its commit), and the board is fitted
outside it while a flag held under the lock keeps a second fit from starting.

Refusals are ``ArenaError`` (HTTP status, detail, headers), raised by the service and turned into responses by the
app. Run one process per database: the sampler's counters and the per-minute rate limiters live in memory (the
session limit is kept in the database).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
from sqlalchemy import Connection, Table, bindparam, insert, select, update

from mova_eval.arena import rating
from mova_eval.arena.export import load_votes
from mova_eval.arena.integrity import Keys, Limit, RateLimiter, StoredRateLimiter, TokenError
from mova_eval.arena.pairing import Sampler
from mova_eval.arena.pool import media_dir_for
from mova_eval.arena.schemas import (
    AdminStats,
    BattleOut,
    FlagOut,
    Health,
    Leaderboard,
    PromptOut,
    PublicLeaderboard,
    QuarantineOut,
    ReloadOut,
    Reveal,
    SessionOut,
    SideOut,
    VoteIn,
    VoterReliability,
)
from mova_eval.arena.storage import Battle, Clip, Prompt, Store, Vote, Voter
from mova_eval.arena.variants import VariantCache, contained, pad_targets
from mova_eval.errors import MovaEvalError

ADMIN_ENV = "MOVA_EVAL_ARENA_ADMIN_TOKEN"
log = logging.getLogger(__name__)


@dataclass
class Settings:
    db_url: str
    media_dir: str | None = None
    min_listen_s: float = 3.0          # each side must be heard this long (capped at 90% of the clip)
    token_ttl_s: float = 1800.0
    gold_rate: float = 0.1
    coverage_target: int = 20
    vote_limit_voter: Limit = field(default_factory=lambda: Limit(20, 60.0))
    vote_limit_ip: Limit = field(default_factory=lambda: Limit(300, 60.0))
    battle_limit_voter: Limit = field(default_factory=lambda: Limit(30, 60.0))
    battle_limit_ip: Limit = field(default_factory=lambda: Limit(600, 60.0))
    max_body_bytes: int = 8192
    provisional_votes: int = 50
    n_boot: int = 100
    refit_every: int = 50              # recompute the live board after this many new votes …
    refit_max_age_s: float = 60.0      # … or when it is older than this
    refit_min_interval_s: float = 30.0  # background refits (for the sampler) at most this often
    sqlite_sync: str = "full"
    admin_token: str | None = None     # default: $MOVA_EVAL_ARENA_ADMIN_TOKEN; unset → admin endpoints off
    trust_forwarded_for: int = 0       # number of reverse proxies in front: client IP = the entry the outermost appended
    secure_cookies: bool = False
    session_limit_ip: Limit = field(default_factory=lambda: Limit(20, 3600.0))  # new voter sessions per IP
    policy: rating.CountingPolicy = field(default_factory=rating.CountingPolicy)
    variants: bool = True              # serve per-battle variants (bytes never repeat), see variants.py
    variant_stock: int = 1             # ready variants kept per clip (made in the background; 0: make on request)
    variant_pad: float = 1.5           # variants padded to (largest copy of their visible class) × this; 0: no padding
    seed: int | None = None
    clock: Callable[[], float] = time.time  # wall clock of the session limit (kept in the database); tests inject one


class ArenaError(Exception):
    """A refused request: HTTP status, a message for the client, optional headers (e.g. Retry-After)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


@dataclass(frozen=True)
class Caller:
    """What the service needs to know about a request, taken from it by the route."""

    cookie: str | None = None
    csrf: str | None = None
    origin: str | None = None
    host: str = ""
    peer: str | None = None            # the TCP peer address
    forwarded_for: str | None = None   # the X-Forwarded-For header


@dataclass(frozen=True)
class Session:
    voter_id: str
    new_cookie: str | None             # set this cookie (None: the caller already has a valid one)
    out: SessionOut


@dataclass(frozen=True)
class Identity:
    voter_id: str
    voter: str                          # pseudonym
    ip: str                             # pseudonym


# Statements built once: constructing a statement per request costs more than executing it.
_bt = cast(Table, Battle.__table__)  # declarative tables are Tables; their stubs say FromClause
_vt = cast(Table, Voter.__table__)
SQL_FIND_VOTER = select(_vt.c.pseudonym).where(_vt.c.pseudonym == bindparam("p"))
SQL_ADD_VOTER = insert(_vt)
SQL_ADD_BATTLE = insert(_bt)
SQL_GET_BATTLE = select(_bt).where(_bt.c.id == bindparam("bid"))
SQL_CLAIM_BATTLE = (update(_bt).where(_bt.c.id == bindparam("bid"), _bt.c.voted.is_(False)).values(voted=True)
                    .returning(*_bt.c))  # SQLite ≥ 3.35 and PostgreSQL support RETURNING
SQL_ADD_VOTE = insert(cast(Table, Vote.__table__))


class ArenaService:
    """Server state and the actions on it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.db_url, sqlite_sync=settings.sqlite_sync)
        self.keys = Keys(self.store.ensure_secret("token_secret"), self.store.ensure_secret("pseudonym_salt"))
        self.media_dir = media_dir_for(self.store, settings.media_dir)
        self.admin_token = settings.admin_token if settings.admin_token is not None else os.environ.get(ADMIN_ENV)
        # Per-minute limits on the hot path stay in memory; the per-hour session limit is kept in the database, so
        # a restarted or crash-looping server does not hand out a fresh allowance of voter sessions.
        self.limits: dict[str, RateLimiter | StoredRateLimiter] = {
            k: RateLimiter(getattr(settings, k)) for k in
            ("vote_limit_voter", "vote_limit_ip", "battle_limit_voter", "battle_limit_ip")}
        self.limits["session_limit_ip"] = StoredRateLimiter(settings.session_limit_ip, self.store, "session_limit_ip",
                                                            clock=settings.clock)
        self.variants = VariantCache(self.media_dir / ".variants", ttl_s=settings.token_ttl_s,
                                     stock=settings.variant_stock if settings.variants else 0)
        self.lock = threading.Lock()
        self._board: Leaderboard | None = None
        self._board_time = 0.0
        self._board_busy = threading.Condition(self.lock)
        self._fitting_board = False
        self._votes_since = 0
        self._refitting = False
        self._votes_since_fit = 0
        self._fit_time = 0.0
        self.reload()

    # ------------------------------------------------------------------------------------------- pool

    def reload(self) -> ReloadOut:
        """(Re)read the pool after an import, keeping issued-battle counts from the database."""
        s = self.settings
        sampler = Sampler(self.store, coverage_target=s.coverage_target, gold_rate=s.gold_rate, seed=s.seed)
        with self.store.read() as db:
            prompts = {p.id: p for p in db.scalars(select(Prompt))}
            rows = list(db.scalars(select(Clip)))
            clips = {c.id: (c.playback_file, c.duration) for c in rows}
            visible = {}
            for c in rows:  # what a voter sees of a clip: its variants' sizes must not tell more
                src = contained(self.media_dir, c.playback_file)
                if src is not None:
                    visible[src] = (c.width, c.height, round(c.fps, 3), round(c.duration, 3))
            quarantined = set(db.scalars(select(Voter.pseudonym).where(Voter.quarantined.is_(True))))
            known = set(db.scalars(select(Voter.pseudonym)))
        self.variants.targets = pad_targets(visible, s.variant_pad) if s.variants else {}
        with self.lock:
            self.sampler, self.prompts, self.clips = sampler, prompts, clips
            self.quarantined, self.known_voters = quarantined, known
        return ReloadOut(pairs=len(sampler.pool.pairs), gold_pairs=len(sampler.pool.gold))

    def health(self) -> Health:
        return Health(ok=True, pairs=len(self.sampler.pool.pairs), models=list(self.sampler.pool.models))

    # ------------------------------------------------------------------------------------------- identity

    def client_ip(self, caller: Caller) -> str:
        """The client address. Behind ``trust_forwarded_for`` = N proxies, each proxy appended the address it
        received the request from to X-Forwarded-For, so the client is the N-th entry from the right; entries to its
        left were written by the client and are ignored. A header shorter than N did not pass all the proxies: the
        TCP peer is used."""
        n = int(self.settings.trust_forwarded_for)
        if n > 0 and caller.forwarded_for:
            entries = [e.strip() for e in caller.forwarded_for.split(",") if e.strip()]
            if len(entries) >= n:
                return entries[-n]
        return caller.peer or "unknown"

    def session(self, caller: Caller) -> Session:
        """The caller's voter session, minting a new voter cookie when it has none (or an invalid one); new
        sessions are rate-limited per IP (``session_limit_ip``), so voter identities cannot be minted at will."""
        vid = self.keys.voter_id(caller.cookie)
        cookie = None
        if vid is None:
            self._limit("session_limit_ip", self.keys.pseudonym(self.client_ip(caller), "ip"))
            cookie = self.keys.new_voter_cookie()
            vid = self.keys.voter_id(cookie)
            if vid is None:  # a cookie just minted with our own key always verifies
                raise RuntimeError("a freshly minted voter cookie did not verify")
        return Session(vid, cookie, SessionOut(csrf=self.keys.csrf_token(vid)))

    def identify(self, caller: Caller, *, post: bool = True) -> Identity:
        """Voter and IP pseudonyms of a request; for POSTs also the CSRF and Origin checks."""
        vid = self.keys.voter_id(caller.cookie)
        if vid is None:
            raise ArenaError(403, "no voter session: load the page or GET /api/session first")
        if post:
            origin = caller.origin
            # "null" is what sandboxed frames, file: pages and some redirects send: never our own page.
            if origin and (origin == "null" or origin.split("://", 1)[-1] != caller.host):
                raise ArenaError(403, "cross-site request refused (Origin does not match Host)")
            if not self.keys.check_csrf(vid, caller.csrf):
                raise ArenaError(403, "missing or wrong X-CSRF-Token header")
        return Identity(vid, self.keys.pseudonym(vid, "voter"), self.keys.pseudonym(self.client_ip(caller), "ip"))

    def _limit(self, name: str, key: str) -> None:
        wait = self.limits[name].hit(key)
        if wait > 0:
            raise ArenaError(429, f"rate limit ({name.replace('_', ' ')}); retry in {wait:.1f} s",
                             headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def min_listen(self, clip_id: str) -> float:
        return round(min(self.settings.min_listen_s, 0.9 * self.clips[clip_id][1]), 3)

    # ------------------------------------------------------------------------------------------- battle

    async def new_battle(self, caller: Caller) -> BattleOut:
        """Issue a battle: draw a pair and prompt, store the battle (committed before the answer), sign a token."""
        who = self.identify(caller)
        self._limit("battle_limit_voter", who.voter)
        self._limit("battle_limit_ip", who.ip)
        s = self.settings
        with self.lock:
            sampler = self.sampler
            if not sampler.ready:
                raise ArenaError(503, "the battle pool is empty: run `mova-eval arena import RUN_DIR...` with at "
                                      "least two generators that share prompts")
            d = sampler.draw()
            new_voter = who.voter not in self.known_voters
            prompt = self.prompts[d.prompt_id]
            dur_a, dur_b = self.clips[d.clip_a][1], self.clips[d.clip_b][1]
            need = {"a": self.min_listen(d.clip_a), "b": self.min_listen(d.clip_b)}
        bid = secrets.token_hex(16)
        now = time.time()
        row = dict(id=bid, kind=d.kind, prompt_id=d.prompt_id, clip_a=d.clip_a, clip_b=d.clip_b, model_a=d.model_a,
                   model_b=d.model_b, gold_answer=d.gold_answer, pair_prob=d.pair_prob, prompt_prob=d.prompt_prob,
                   side_prob=d.side_prob, sampler=d.sampler, voter=who.voter, ip_hash=who.ip, created_at=now,
                   expires_at=now + s.token_ttl_s, voted=False)

        def op(conn: Connection) -> None:
            if new_voter and conn.execute(SQL_FIND_VOTER, {"p": who.voter}).first() is None:
                conn.execute(SQL_ADD_VOTER, {"pseudonym": who.voter, "created_at": now, "quarantined": False})
            conn.execute(SQL_ADD_BATTLE, row)

        await asyncio.wrap_future(self.store.submit(op))
        with self.lock:
            self.known_voters.add(who.voter)
            files = [self.clips[d.clip_a][0], self.clips[d.clip_b][0]]
        if s.variants:
            for f in files:  # the page asks for both sides right away: have a variant of each ready or on its way
                src = contained(self.media_dir, f)
                if src is not None:
                    self.variants.prepare(src)
        return BattleOut(battle_id=bid, token=self.keys.battle_token(bid, who.voter),
                         prompt=PromptOut(text=prompt.text, category=prompt.category, language=prompt.language),
                         a=SideOut(url=f"/media/{bid}/a", duration=dur_a), b=SideOut(url=f"/media/{bid}/b",
                                                                                     duration=dur_b),
                         min_listen_s=need, expires_at=now + s.token_ttl_s)

    # ------------------------------------------------------------------------------------------- vote

    async def vote(self, caller: Caller, body: VoteIn) -> Reveal:
        """Record a vote with its flags (shadow exclusion: a flagged vote is acknowledged like any other)."""
        who = self.identify(caller)
        try:
            tok = self.keys.read_battle_token(body.token, self.settings.token_ttl_s)
        except TokenError as e:
            raise ArenaError(e.status, e.detail) from None
        if tok["v"] != who.voter:
            raise ArenaError(403, "this battle was issued to another voter")
        self._limit("vote_limit_voter", who.voter)
        self._limit("vote_limit_ip", who.ip)
        now = time.time()
        with self.lock:
            quarantined = who.voter in self.quarantined
            prompts, min_listen = self.prompts, self.min_listen

        def op(conn: Connection) -> tuple[int, int | str, dict[str, Any] | None]:
            # One statement claims the battle (single use) and reads it back.
            b = conn.execute(SQL_CLAIM_BATTLE, {"bid": tok["b"]}).mappings().first()
            if b is None:
                if conn.execute(SQL_GET_BATTLE, {"bid": tok["b"]}).first() is None:
                    return 403, "invalid battle token", None
                return 409, "this battle was already voted on", None
            need_a, need_b = min_listen(b["clip_a"]), min_listen(b["clip_b"])
            elapsed = now - b["created_at"]
            flags = []
            if body.heard_a_s < need_a or body.heard_b_s < need_b:
                flags.append("listen_short")
            if elapsed < max(need_a, need_b):
                flags.append("too_fast")
            if quarantined:
                flags.append("quarantined")
            p = prompts[b["prompt_id"]]
            res = conn.execute(SQL_ADD_VOTE, dict(
                battle_id=b["id"], kind=b["kind"], choice=body.choice, model_a=b["model_a"], model_b=b["model_b"],
                item_id=p.item_id, category=p.category, language=p.language, pair_prob=b["pair_prob"],
                gold_answer=b["gold_answer"], heard_a_s=body.heard_a_s, heard_b_s=body.heard_b_s, elapsed_s=elapsed,
                tags_a=list(body.tags.a), tags_b=list(body.tags.b), voter=who.voter, ip_hash=who.ip, flags=flags,
                created_at=now))
            pk = res.inserted_primary_key
            if pk is None:  # an INSERT into a table with an integer key always reports it
                raise RuntimeError("the vote's INSERT reported no primary key")
            return 200, int(pk[0]), dict(b)

        status, detail, b = await asyncio.wrap_future(self.store.submit(op))
        if status != 200:
            raise ArenaError(status, detail)
        with self.lock:
            self._votes_since += 1
            self._votes_since_fit += 1
        self._maybe_refit()
        if b["kind"] == "gold":
            late = "gold: sound 500 ms late"
            names = {s: "gold: in sync" if b["gold_answer"] == s else late for s in ("a", "b")}
        else:
            names = {"a": b["model_a"], "b": b["model_b"]}
        return Reveal(vote_id=detail, choice=body.choice, a=names["a"], b=names["b"], gold=b["kind"] == "gold")

    # ------------------------------------------------------------------------------------------- media

    def media_file(self, caller: Caller, battle_id: str, side: str) -> Path:
        """The file to serve for one side of one battle, to the voter the battle was issued to.

        Media is addressed by battle and side only: no file paths, and no stable clip id that a voter could link to
        a model after a reveal. With ``variants`` on, the file is this battle's own variant of the playback copy
        (made on first request, ``variants.py``), so no two battles serve the same bytes. A playback file that
        resolves outside the media folder (a symlink planted there) is refused.
        """
        if len(battle_id) != 32 or any(c not in "0123456789abcdef" for c in battle_id) or side not in ("a", "b"):
            raise ArenaError(404, "no such battle")
        with self.store.read() as s:
            b = s.get(Battle, battle_id)
        if b is None:
            raise ArenaError(404, "no such battle")
        vid = self.keys.voter_id(caller.cookie)
        if vid is None or self.keys.pseudonym(vid, "voter") != b.voter:
            raise ArenaError(403, "this battle was issued to another voter")
        with self.lock:
            fname = self.clips[b.clip_a if side == "a" else b.clip_b][0]
        src = contained(self.media_dir, fname)
        if src is None:  # missing, or a link that leads outside the media folder
            raise ArenaError(404, "no such battle")
        if not self.settings.variants:
            return src
        try:
            return self.variants.get(battle_id, side, src)
        except MovaEvalError as e:
            # A playback copy that no longer decodes: the file and the problem go to the server log; the voter gets
            # a plain message (a file name is a stable clip id, which must never reach a voter).
            log.error("battle %s side %s: %s", battle_id, side, e)
            raise ArenaError(500, "could not prepare this clip for playback; the server log has the details") from None

    # ------------------------------------------------------------------------------------------- board

    def _maybe_refit(self) -> None:
        """Refit in the background after ``refit_every`` new votes, at most once per ``refit_min_interval_s``, so
        the sampler's uncertainties follow the votes even when nobody opens the board."""
        s = self.settings
        with self.lock:
            due = (self._votes_since_fit >= s.refit_every and time.time() - self._fit_time >= s.refit_min_interval_s
                   and not self._refitting)
            if not due:
                return
            self._refitting = True
            self._votes_since_fit, self._fit_time = 0, time.time()

        def work() -> None:
            try:
                # Only the main fit without bootstrap: cheap enough not to stall the voters.
                policy = self.settings.policy
                counted, excluded, _ = rating.counting_votes(load_votes(self.store), policy=policy)
                counted, _, _ = rating.screen_bias(counted, excluded, policy)  # the same counted set as the board
                if len(counted):
                    self._feed_sampler(rating.board(counted, n_boot=0))
            finally:
                with self.lock:
                    self._refitting = False

        threading.Thread(target=work, name="arena-refit", daemon=True).start()

    def board(self, force: bool = False) -> Leaderboard:
        """The live board: refitted after ``refit_every`` new votes or ``refit_max_age_s``; one fit at a time, and
        a caller that waited for a fit is served its board rather than fitting again (the new board is in place
        before the waiters wake)."""
        s = self.settings
        with self.lock:
            while self._fitting_board:
                self._board_busy.wait()
            current = self._board
            if current is not None and not force and self._votes_since < s.refit_every \
                    and time.time() - self._board_time <= s.refit_max_age_s:
                return current
            self._fitting_board = True
            seen = self._votes_since
        try:
            lb = rating.leaderboard(load_votes(self.store), n_boot=s.n_boot, provisional_votes=s.provisional_votes,
                                    policy=s.policy)
            lb["updated"] = time.time()
            board = Leaderboard.model_validate(lb)
            self._feed_sampler(lb.get("main", {}))
        except BaseException:
            with self.lock:
                self._fitting_board = False
                self._board_busy.notify_all()
            raise
        with self.lock:
            self._board, self._board_time = board, time.time()
            self._votes_since = max(0, self._votes_since - seen)
            self._fitting_board = False
            self._board_busy.notify_all()
        return board

    def public_board(self) -> PublicLeaderboard:
        """The board as the public sees it: ratings, intervals, ranks and counted votes, but no exclusion counts,
        reasons or totals of received votes, from which a shadow-excluded voter could tell that their own votes do
        not count (those are in ``admin_stats`` and the export)."""
        lb = self.board()
        return PublicLeaderboard.model_validate({**lb.model_dump(exclude={"counts"}),
                                                 "counts": {"counted": lb.counts.counted}})

    def _invalidate_board(self) -> None:
        with self.lock:
            self._votes_since = self.settings.refit_every

    def _feed_sampler(self, main: dict[str, Any]) -> None:
        """Var(s_i) from the sandwich intervals (cross-covariances ignored) → the sampler's pair uncertainty."""
        rows = main.get("models", [])
        if rows:
            se = [(r["ci_sandwich"][1] - r["ci_sandwich"][0]) / (2 * rating.Z95 * rating.POINTS) for r in rows]
            self.sampler.update_uncertainty([r["model"] for r in rows], np.diag(np.square(se)))

    # ------------------------------------------------------------------------------------------- admin

    def check_admin(self, authorization: str | None) -> None:
        if not self.admin_token:
            raise ArenaError(403, f"admin endpoints are disabled (set {ADMIN_ENV})")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), self.admin_token.encode()):
            raise ArenaError(401, "admin token required (Authorization: Bearer …)")

    def admin_stats(self) -> AdminStats:
        lb = self.board(force=True)
        _, _, rel = rating.counting_votes(load_votes(self.store), policy=self.settings.policy)
        with self.lock:
            pairs = {f"{a} vs {b}": n for (a, b), n in self.sampler.issued.items()}
            gold = len(self.sampler.pool.gold)
        return AdminStats(counts=lb.counts, pairs=pairs, gold_pairs=gold, voter_reliability=[
            VoterReliability(voter=r.voter, gold_n=int(r.gold_n), gold_correct=int(r.gold_correct),
                             accuracy=float(r.accuracy), reliable=bool(r.reliable), trusted=bool(r.trusted))
            for r in rel.itertuples()])

    def flag_vote(self, vote_id: int, reason: str) -> FlagOut:
        with self.store.write() as s:
            v = s.get(Vote, vote_id)
            if v is None:
                raise ArenaError(404, "no such vote")
            if reason not in v.flags:
                v.flags = [*v.flags, reason]
            flags = list(v.flags)
        self._invalidate_board()
        return FlagOut(vote_id=vote_id, flags=flags)

    def quarantine(self, pseudonym: str) -> QuarantineOut:
        with self.store.write() as s:
            voter = s.get(Voter, pseudonym)
            if voter is None:
                raise ArenaError(404, "no such voter")
            voter.quarantined = True
            n = 0
            for v in s.scalars(select(Vote).where(Vote.voter == pseudonym)):
                if "quarantined" not in v.flags:
                    v.flags = [*v.flags, "quarantined"]
                    n += 1
        with self.lock:
            self.quarantined.add(pseudonym)
        self._invalidate_board()
        return QuarantineOut(voter=pseudonym, votes_flagged=n)
