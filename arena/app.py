"""The arena web service (FastAPI): battle page, battle/vote API, leaderboard, media by battle, admin endpoints.

Routes are thin: each turns the request into a ``service.Caller`` (cookie, headers, peer address), calls one
``ArenaService`` method and returns its typed result, which FastAPI validates against the declared response model.
The logic and the in-memory state live in ``service.py``. Run one process per database (``mova-eval arena serve``):
the sampler's counters and the per-minute rate limiters live in memory (the session limit is in the database). Every write commits before the response is sent, so an
acknowledged vote is on disk.
"""
from __future__ import annotations

import inspect
from importlib import resources
from typing import Literal

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mova_eval.arena.integrity import BodyLimit, SecurityHeaders
from mova_eval.arena.schemas import (
    AdminStats,
    BattleOut,
    BattleRequest,
    FlagIn,
    FlagOut,
    Health,
    PublicLeaderboard,
    QuarantineOut,
    ReloadOut,
    Reveal,
    SessionOut,
    VoteIn,
)
from mova_eval.arena.service import ADMIN_ENV, ArenaError, ArenaService, Caller, Session, Settings

__all__ = ["ADMIN_ENV", "VOTER_COOKIE", "Settings", "create_app"]

VOTER_COOKIE = "mova_voter"


class AnonymousFileResponse(FileResponse):
    """A file response without Last-Modified/ETag: file times would tell which clips were imported together,
    i.e. came from the same model."""

    def set_stat_headers(self, stat_result) -> None:
        self.headers.setdefault("content-length", str(stat_result.st_size))


def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(resources.files("mova_eval.arena").joinpath("templates")))


def caller(request: Request) -> Caller:
    """The parts of a request the service looks at."""
    h = request.headers
    return Caller(cookie=request.cookies.get(VOTER_COOKIE), csrf=h.get("x-csrf-token"), origin=h.get("origin"),
                  host=h.get("host", ""), peer=request.client.host if request.client else None,
                  forwarded_for=h.get("x-forwarded-for"))


def create_app(settings: Settings) -> FastAPI:
    arena = ArenaService(settings)
    templates = _templates()
    extra = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:  # FastAPI ≥ 0.165: no per-request tracing
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="mova-eval arena", version="1",
                  description="Side-by-side voting between anonymous video+audio clips; Bradley–Terry ratings.", **extra)
    app.state.arena = arena
    app.mount("/static", StaticFiles(directory=str(resources.files("mova_eval.arena").joinpath("static"))),
              name="static")

    @app.exception_handler(ArenaError)
    async def refused(_request: Request, e: ArenaError) -> JSONResponse:
        return JSONResponse({"detail": e.detail}, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        # The default handler echoes the offending input, which cannot be written as JSON when it is NaN or
        # Infinity (that made such a vote a 500): report where and why, not the value.
        errors = [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
                  for err in e.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    def set_voter_cookie(response: Response, session: Session) -> None:
        if session.new_cookie:
            response.set_cookie(VOTER_COOKIE, session.new_cookie, max_age=365 * 86400, httponly=True,
                                samesite="strict", secure=settings.secure_cookies)

    def require_admin(authorization: str | None = Header(default=None)) -> None:
        arena.check_admin(authorization)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request):
        session = arena.session(caller(request))
        resp = templates.TemplateResponse(request, "battle.html", {"csrf": session.out.csrf})
        set_voter_cookie(resp, session)
        return resp

    @app.get("/leaderboard", response_class=HTMLResponse, include_in_schema=False)
    def leaderboard_page(request: Request):
        return templates.TemplateResponse(request, "leaderboard.html", {"lb": arena.public_board()})

    @app.get("/api/session", response_model=SessionOut,
             summary="Start a voter session: sets the voter cookie, returns the CSRF token")
    def session(request: Request, response: Response) -> SessionOut:
        s = arena.session(caller(request))
        set_voter_cookie(response, s)
        return s.out

    @app.post("/api/battles", response_model=BattleOut, summary="Issue a battle: a prompt, two anonymous clips, "
              "and a signed single-use token")
    async def new_battle(request: Request, _: BattleRequest | None = None) -> BattleOut:
        return await arena.new_battle(caller(request))

    @app.post("/api/votes", response_model=Reveal, summary="Vote with a battle token; returns the reveal")
    async def vote(request: Request, body: VoteIn) -> Reveal:
        return await arena.vote(caller(request), body)

    @app.get("/api/leaderboard", response_model=PublicLeaderboard,
             summary="The board as JSON (main, no-ties, per category and language, matrices, flip robustness)")
    def leaderboard() -> PublicLeaderboard:
        return arena.public_board()

    @app.get("/media/{battle_id}/{side}", include_in_schema=False)
    def media(request: Request, battle_id: str, side: Literal["a", "b"]):
        return AnonymousFileResponse(arena.media_file(caller(request), battle_id, side), media_type="video/mp4",
                                     headers={"Cache-Control": "private, no-store"})

    @app.get("/api/health", response_model=Health, include_in_schema=False)
    def health() -> Health:
        return arena.health()

    # --- admin
    @app.get("/api/admin/stats", response_model=AdminStats, dependencies=[Depends(require_admin)],
             summary="Counts: votes, flags, voters")
    def admin_stats() -> AdminStats:
        return arena.admin_stats()

    @app.post("/api/admin/votes/{vote_id}/flag", response_model=FlagOut, dependencies=[Depends(require_admin)],
              summary="Exclude one vote (kept in the data with the reason)")
    def admin_flag(vote_id: int, body: FlagIn) -> FlagOut:
        return arena.flag_vote(vote_id, body.reason)

    @app.post("/api/admin/voters/{pseudonym}/quarantine", response_model=QuarantineOut,
              dependencies=[Depends(require_admin)], summary="Exclude every past and future vote of a voter")
    def admin_quarantine(pseudonym: str) -> QuarantineOut:
        return arena.quarantine(pseudonym)

    @app.post("/api/admin/reload", response_model=ReloadOut, dependencies=[Depends(require_admin)],
              summary="Re-read the pool after an import")
    def admin_reload() -> ReloadOut:
        return arena.reload()

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
