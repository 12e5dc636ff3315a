"""The arena web service (FastAPI): battle page, battle/vote API, leaderboard, media by battle, admin endpoints.

Run one process per database (``mova-eval arena serve``): the sampler's counters and the rate limiters live in
memory. Every write commits before the response is sent, so an acknowledged vote is on disk.
"""
from __future__ import annotations

import asyncio
import inspect
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, insert, select, update

from mova_eval.arena import rating
from mova_eval.arena.export import load_votes
from mova_eval.arena.integrity import BodyLimit, Keys, Limit, RateLimiter, TokenError
from mova_eval.arena.pairing import Sampler
from mova_eval.arena.pool import media_dir_for
from mova_eval.arena.storage import SIDE_TAGS, Battle, Clip, Prompt, Store, Vote, Voter

VOTER_COOKIE = "mova_voter"
ADMIN_ENV = "MOVA_EVAL_ARENA_ADMIN_TOKEN"


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
    trust_forwarded_for: bool = False  # behind a reverse proxy: take the client IP from X-Forwarded-For
    secure_cookies: bool = False
    seed: int | None = None


# Statements built once: constructing a statement per request costs more than executing it.
_bt = Battle.__table__
SQL_FIND_VOTER = select(Voter.__table__.c.pseudonym).where(Voter.__table__.c.pseudonym == bindparam("p"))
SQL_ADD_VOTER = insert(Voter.__table__)
SQL_ADD_BATTLE = insert(_bt)
SQL_GET_BATTLE = select(_bt).where(_bt.c.id == bindparam("bid"))
SQL_CLAIM_BATTLE = (update(_bt).where(_bt.c.id == bindparam("bid"), _bt.c.voted.is_(False)).values(voted=True)
                    .returning(*_bt.c))  # SQLite ≥ 3.35 and PostgreSQL support RETURNING
SQL_ADD_VOTE = insert(Vote.__table__)


class BattleRequest(BaseModel):
    model_config = {"extra": "forbid"}


class PromptOut(BaseModel):
    text: str
    category: str
    language: str


class SideOut(BaseModel):
    url: str
    duration: float


class BattleOut(BaseModel):
    battle_id: str
    token: str
    prompt: PromptOut
    a: SideOut
    b: SideOut
    min_listen_s: dict[str, float]
    expires_at: float


class Tags(BaseModel):
    model_config = {"extra": "forbid"}
    a: list[Literal["visual", "audio", "sync", "prompt"]] = Field(default_factory=list, max_length=len(SIDE_TAGS))
    b: list[Literal["visual", "audio", "sync", "prompt"]] = Field(default_factory=list, max_length=len(SIDE_TAGS))


class VoteIn(BaseModel):
    model_config = {"extra": "forbid"}
    token: str = Field(max_length=512)
    choice: Literal["a", "b", "tie", "both_bad"]
    heard_a_s: float = Field(ge=0, le=3600)
    heard_b_s: float = Field(ge=0, le=3600)
    tags: Tags = Field(default_factory=Tags)


class Reveal(BaseModel):
    vote_id: int
    choice: str
    a: str
    b: str
    gold: bool


class FlagIn(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")


class AnonymousFileResponse(FileResponse):
    """A file response without Last-Modified/ETag: file times would tell which clips were imported together,
    i.e. came from the same model."""

    def set_stat_headers(self, stat_result) -> None:
        self.headers.setdefault("content-length", str(stat_result.st_size))


def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(resources.files("mova_eval.arena").joinpath("templates")))


class Arena:
    """Server state: the store, keys, sampler, limiters and the cached board."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.db_url, sqlite_sync=settings.sqlite_sync)
        self.keys = Keys(self.store.ensure_secret("token_secret"), self.store.ensure_secret("pseudonym_salt"))
        self.media_dir = media_dir_for(self.store, settings.media_dir)
        self.admin_token = settings.admin_token if settings.admin_token is not None else os.environ.get(ADMIN_ENV)
        self.limits = {k: RateLimiter(getattr(settings, k)) for k in
                       ("vote_limit_voter", "vote_limit_ip", "battle_limit_voter", "battle_limit_ip")}
        self._board_lock = threading.Lock()
        self._board: dict | None = None
        self._board_votes = 0
        self._board_time = 0.0
        self._votes_since = 0
        self._refitting = False
        self._votes_since_fit = 0
        self._fit_time = 0.0
        self.reload()

    def reload(self) -> None:
        """(Re)read the pool after an import, keeping issued-battle counts from the database."""
        s = self.settings
        self.sampler = Sampler(self.store, coverage_target=s.coverage_target, gold_rate=s.gold_rate, seed=s.seed)
        with self.store.read() as db:
            self.prompts = {p.id: p for p in db.scalars(select(Prompt))}
            self.clips = {c.id: (c.playback_file, c.duration) for c in db.scalars(select(Clip))}
            self.quarantined = set(db.scalars(select(Voter.pseudonym).where(Voter.quarantined.is_(True))))
            self.known_voters = set(db.scalars(select(Voter.pseudonym)))

    # --- request identity
    def client_ip(self, request: Request) -> str:
        if self.settings.trust_forwarded_for:
            fwd = request.headers.get("x-forwarded-for")
            if fwd:
                return fwd.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    def voter(self, request: Request) -> str:
        vid = self.keys.voter_id(request.cookies.get(VOTER_COOKIE))
        if vid is None:
            raise HTTPException(403, "no voter session: load the page or GET /api/session first")
        return vid

    def check_csrf(self, request: Request, vid: str) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                raise HTTPException(403, "cross-site request refused (Origin does not match Host)")
        if not self.keys.check_csrf(vid, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")

    def limit(self, name: str, key: str) -> None:
        wait = self.limits[name].hit(key)
        if wait > 0:
            raise HTTPException(429, f"rate limit ({name.replace('_', ' ')}); retry in {wait:.1f} s",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def min_listen(self, clip_id: str) -> float:
        return round(min(self.settings.min_listen_s, 0.9 * self.clips[clip_id][1]), 3)

    # --- board
    def maybe_refit(self) -> None:
        """Refit in the background after ``refit_every`` new votes, at most once per ``refit_min_interval_s``, so
        the sampler's uncertainties follow the votes even when nobody opens the board."""
        s = self.settings
        if (self._votes_since_fit >= s.refit_every and time.time() - self._fit_time >= s.refit_min_interval_s
                and not self._refitting):
            self._refitting = True
            self._votes_since_fit, self._fit_time = 0, time.time()

            def work():
                try:
                    # Only the main fit without bootstrap: cheap enough not to stall the voters.
                    counted, _, _ = rating.counting_votes(load_votes(self.store))
                    if len(counted):
                        self._feed_sampler(rating.board(counted, n_boot=0))
                finally:
                    self._refitting = False

            threading.Thread(target=work, name="arena-refit", daemon=True).start()

    def board(self, force: bool = False) -> dict:
        with self._board_lock:
            stale = (self._board is None or self._votes_since >= self.settings.refit_every
                     or time.time() - self._board_time > self.settings.refit_max_age_s)
            if force or stale:
                votes = load_votes(self.store)
                lb = rating.leaderboard(votes, n_boot=self.settings.n_boot,
                                        provisional_votes=self.settings.provisional_votes)
                lb["updated"] = time.time()
                self._board, self._board_time, self._votes_since = lb, time.time(), 0
                self._feed_sampler(lb.get("main", {}))
            return self._board

    def _feed_sampler(self, main: dict) -> None:
        """Var(s_i) from the sandwich intervals (cross-covariances ignored) → the sampler's pair uncertainty."""
        import numpy as np

        rows = main.get("models", [])
        if rows:
            se = [(r["ci_sandwich"][1] - r["ci_sandwich"][0]) / (2 * rating.Z95 * rating.POINTS) for r in rows]
            self.sampler.update_uncertainty([r["model"] for r in rows], np.diag(np.square(se)))


def create_app(settings: Settings) -> FastAPI:
    arena = Arena(settings)
    templates = _templates()
    extra = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:  # FastAPI ≥ 0.165: no per-request tracing
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="mova-eval arena", version="1",
                  description="Side-by-side voting between anonymous video+audio clips; Bradley–Terry ratings.", **extra)
    app.state.arena = arena
    app.mount("/static", StaticFiles(directory=str(resources.files("mova_eval.arena").joinpath("static"))),
              name="static")

    def voter_session(request: Request) -> tuple[str, str | None]:
        """(voter id, new cookie to set or None)."""
        vid = arena.keys.voter_id(request.cookies.get(VOTER_COOKIE))
        if vid is not None:
            return vid, None
        cookie = arena.keys.new_voter_cookie()
        return arena.keys.voter_id(cookie), cookie

    def set_voter_cookie(response: Response, cookie: str | None) -> None:
        if cookie:
            response.set_cookie(VOTER_COOKIE, cookie, max_age=365 * 86400, httponly=True, samesite="strict",
                                secure=settings.secure_cookies)

    def require_admin(authorization: str | None = Header(default=None)) -> None:
        if not arena.admin_token:
            raise HTTPException(403, f"admin endpoints are disabled (set {ADMIN_ENV})")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), arena.admin_token.encode()):
            raise HTTPException(401, "admin token required (Authorization: Bearer …)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request):
        vid, cookie = voter_session(request)
        resp = templates.TemplateResponse(request, "battle.html", {"csrf": arena.keys.csrf_token(vid)})
        set_voter_cookie(resp, cookie)
        return resp

    @app.get("/leaderboard", response_class=HTMLResponse, include_in_schema=False)
    def leaderboard_page(request: Request):
        return templates.TemplateResponse(request, "leaderboard.html", {"lb": arena.board()})

    @app.get("/api/session", summary="Start a voter session: sets the voter cookie, returns the CSRF token")
    def session(request: Request, response: Response) -> dict:
        vid, cookie = voter_session(request)
        set_voter_cookie(response, cookie)
        return {"csrf": arena.keys.csrf_token(vid)}

    @app.post("/api/battles", response_model=BattleOut, summary="Issue a battle: a prompt, two anonymous clips, "
              "and a signed single-use token")
    async def new_battle(request: Request, _: BattleRequest | None = None):
        vid = arena.voter(request)
        arena.check_csrf(request, vid)
        voter = arena.keys.pseudonym(vid, "voter")
        ip = arena.keys.pseudonym(arena.client_ip(request), "ip")
        arena.limit("battle_limit_voter", voter)
        arena.limit("battle_limit_ip", ip)
        if not arena.sampler.ready:
            raise HTTPException(503, "the battle pool is empty: run `mova-eval arena import RUN_DIR...` with at least "
                                     "two generators that share prompts")
        d = arena.sampler.draw()
        bid = secrets.token_hex(16)
        now = time.time()
        row = dict(id=bid, kind=d.kind, prompt_id=d.prompt_id, clip_a=d.clip_a, clip_b=d.clip_b, model_a=d.model_a,
                   model_b=d.model_b, gold_answer=d.gold_answer, pair_prob=d.pair_prob, prompt_prob=d.prompt_prob,
                   side_prob=d.side_prob, sampler=d.sampler, voter=voter, ip_hash=ip, created_at=now,
                   expires_at=now + settings.token_ttl_s, voted=False)
        new_voter = voter not in arena.known_voters

        def op(conn):
            if new_voter and conn.execute(SQL_FIND_VOTER, {"p": voter}).first() is None:
                conn.execute(SQL_ADD_VOTER, {"pseudonym": voter, "created_at": now, "quarantined": False})
            conn.execute(SQL_ADD_BATTLE, row)

        await asyncio.wrap_future(arena.store.submit(op))
        arena.known_voters.add(voter)
        p = arena.prompts[d.prompt_id]
        # Built by hand (the response_model documents it): validating our own output costs more than the insert.
        return JSONResponse({
            "battle_id": bid, "token": arena.keys.battle_token(bid, voter),
            "prompt": {"text": p.text, "category": p.category, "language": p.language},
            "a": {"url": f"/media/{bid}/a", "duration": arena.clips[d.clip_a][1]},
            "b": {"url": f"/media/{bid}/b", "duration": arena.clips[d.clip_b][1]},
            "min_listen_s": {"a": arena.min_listen(d.clip_a), "b": arena.min_listen(d.clip_b)},
            "expires_at": now + settings.token_ttl_s})

    @app.post("/api/votes", response_model=Reveal, summary="Vote with a battle token; returns the reveal")
    async def vote(request: Request, body: VoteIn):
        vid = arena.voter(request)
        arena.check_csrf(request, vid)
        voter = arena.keys.pseudonym(vid, "voter")
        ip = arena.keys.pseudonym(arena.client_ip(request), "ip")
        try:
            tok = arena.keys.read_battle_token(body.token, settings.token_ttl_s)
        except TokenError as e:
            raise HTTPException(e.status, e.detail) from None
        if tok["v"] != voter:
            raise HTTPException(403, "this battle was issued to another voter")
        arena.limit("vote_limit_voter", voter)
        arena.limit("vote_limit_ip", ip)
        now = time.time()
        quarantined = voter in arena.quarantined

        def op(conn):
            # One statement claims the battle (single use) and reads it back.
            b = conn.execute(SQL_CLAIM_BATTLE, {"bid": tok["b"]}).mappings().first()
            if b is None:
                if conn.execute(SQL_GET_BATTLE, {"bid": tok["b"]}).first() is None:
                    return 403, "invalid battle token", None
                return 409, "this battle was already voted on", None
            need_a, need_b = arena.min_listen(b["clip_a"]), arena.min_listen(b["clip_b"])
            elapsed = now - b["created_at"]
            flags = []
            if body.heard_a_s < need_a or body.heard_b_s < need_b:
                flags.append("listen_short")
            if elapsed < max(need_a, need_b):
                flags.append("too_fast")
            if quarantined:
                flags.append("quarantined")
            p = arena.prompts[b["prompt_id"]]
            res = conn.execute(SQL_ADD_VOTE, dict(
                battle_id=b["id"], kind=b["kind"], choice=body.choice, model_a=b["model_a"], model_b=b["model_b"],
                item_id=p.item_id, category=p.category, language=p.language, pair_prob=b["pair_prob"],
                gold_answer=b["gold_answer"], heard_a_s=body.heard_a_s, heard_b_s=body.heard_b_s, elapsed_s=elapsed,
                tags_a=list(body.tags.a), tags_b=list(body.tags.b), voter=voter, ip_hash=ip, flags=flags,
                created_at=now))
            return 200, int(res.inserted_primary_key[0]), dict(b)

        status, detail, b = await asyncio.wrap_future(arena.store.submit(op))
        if status != 200:
            raise HTTPException(status, detail)
        arena._votes_since += 1
        arena._votes_since_fit += 1
        arena.maybe_refit()
        if b["kind"] == "gold":
            late = "gold: sound 500 ms late"
            names = {s: "gold: in sync" if b["gold_answer"] == s else late for s in ("a", "b")}
        else:
            names = {"a": b["model_a"], "b": b["model_b"]}
        return JSONResponse({"vote_id": detail, "choice": body.choice, "a": names["a"], "b": names["b"],
                             "gold": b["kind"] == "gold"})

    @app.get("/api/leaderboard", summary="The board as JSON (main, no-ties, per category and language, matrices)")
    def leaderboard() -> JSONResponse:
        return JSONResponse(arena.board())

    @app.get("/media/{battle_id}/{side}", include_in_schema=False)
    def media(battle_id: str, side: Literal["a", "b"]):
        # Media is addressed by battle and side only: no file paths, and no stable clip id that a voter could
        # link to a model after a reveal.
        if len(battle_id) != 32 or any(c not in "0123456789abcdef" for c in battle_id):
            raise HTTPException(404, "no such battle")
        with arena.store.read() as s:
            b = s.get(Battle, battle_id)
        if b is None:
            raise HTTPException(404, "no such battle")
        fname = arena.clips[b.clip_a if side == "a" else b.clip_b][0]
        return AnonymousFileResponse(arena.media_dir / fname, media_type="video/mp4",
                                     headers={"Cache-Control": "private, no-store"})

    @app.get("/api/health", include_in_schema=False)
    def health() -> dict:
        return {"ok": True, "pairs": len(arena.sampler.pool.pairs), "models": arena.sampler.pool.models}

    # --- admin
    @app.get("/api/admin/stats", dependencies=[Depends(require_admin)], summary="Counts: votes, flags, voters")
    def admin_stats() -> dict:
        lb = arena.board(force=True)
        _, _, rel = rating.counting_votes(load_votes(arena.store))
        return {"counts": lb["counts"], "pairs": {f"{a} vs {b}": n for (a, b), n in arena.sampler.issued.items()},
                "gold_pairs": len(arena.sampler.pool.gold),
                "voter_reliability": [{"voter": r.voter, "gold_n": int(r.gold_n), "gold_correct": int(r.gold_correct),
                                       "accuracy": float(r.accuracy), "reliable": bool(r.reliable)}
                                      for r in rel.itertuples()]}

    @app.post("/api/admin/votes/{vote_id}/flag", dependencies=[Depends(require_admin)],
              summary="Exclude one vote (kept in the data with the reason)")
    def admin_flag(vote_id: int, body: FlagIn) -> dict:
        with arena.store.write() as s:
            v = s.get(Vote, vote_id)
            if v is None:
                raise HTTPException(404, "no such vote")
            if body.reason not in v.flags:
                v.flags = [*v.flags, body.reason]
            flags = list(v.flags)
        arena._votes_since = settings.refit_every
        return {"vote_id": vote_id, "flags": flags}

    @app.post("/api/admin/voters/{pseudonym}/quarantine", dependencies=[Depends(require_admin)],
              summary="Exclude every past and future vote of a voter")
    def admin_quarantine(pseudonym: str) -> dict:
        with arena.store.write() as s:
            voter = s.get(Voter, pseudonym)
            if voter is None:
                raise HTTPException(404, "no such voter")
            voter.quarantined = True
            n = 0
            for v in s.scalars(select(Vote).where(Vote.voter == pseudonym)):
                if "quarantined" not in v.flags:
                    v.flags = [*v.flags, "quarantined"]
                    n += 1
        arena.quarantined.add(pseudonym)
        arena._votes_since = settings.refit_every
        return {"voter": pseudonym, "votes_flagged": n}

    @app.post("/api/admin/reload", dependencies=[Depends(require_admin)], summary="Re-read the pool after an import")
    def admin_reload() -> dict:
        arena.reload()
        return {"pairs": len(arena.sampler.pool.pairs), "gold_pairs": len(arena.sampler.pool.gold)}

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
