"""Typed requests and responses of the arena API, including the leaderboard.

Every route declares one of these as its response model and returns an instance, so FastAPI validates what
goes out as well as what comes in (a field renamed in ``rating.leaderboard`` fails the board's validation instead of
silently reaching the page). Request models forbid unknown fields and non-finite numbers.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SideTag = Literal["visual", "audio", "sync", "prompt"]
N_TAGS = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ----------------------------------------------------------------------------------------------- requests


class BattleRequest(_Strict):
    pass


class Tags(_Strict):
    a: list[SideTag] = Field(default_factory=list, max_length=N_TAGS)
    b: list[SideTag] = Field(default_factory=list, max_length=N_TAGS)


class VoteIn(_Strict):
    token: str = Field(max_length=512)
    choice: Literal["a", "b", "tie", "both_bad"]
    heard_a_s: float = Field(ge=0, le=3600)
    heard_b_s: float = Field(ge=0, le=3600)
    tags: Tags = Field(default_factory=Tags)


class FlagIn(_Strict):
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")


# ----------------------------------------------------------------------------------------------- responses


class SessionOut(BaseModel):
    csrf: str


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


class Reveal(BaseModel):
    vote_id: int
    choice: str
    a: str
    b: str
    gold: bool


class Health(BaseModel):
    ok: bool
    pairs: int
    models: list[str]


class FlagOut(BaseModel):
    vote_id: int
    flags: list[str]


class QuarantineOut(BaseModel):
    voter: str
    votes_flagged: int


class ReloadOut(BaseModel):
    pairs: int
    gold_pairs: int


class VoterReliability(BaseModel):
    voter: str
    gold_n: int
    gold_correct: int
    accuracy: float
    reliable: bool
    trusted: bool  # off probation


# ----------------------------------------------------------------------------------------------- the board


class _Open(BaseModel):
    """Board parts: extra keys are refused too, so the model and ``rating.leaderboard`` cannot drift apart."""

    model_config = ConfigDict(extra="forbid")


class Method(_Open):
    model: str
    base: float
    scale: float
    center: float
    anchoring: str
    ties: str
    ci: str
    bootstrap_rounds: int
    seed: int
    rank: str
    provisional_under_votes: int
    reweighted: bool
    gold_rule: str
    counting_policy: dict[str, float | int]


class Counts(_Open):
    votes: int
    model_votes: int
    counted: int
    excluded: int
    excluded_by_reason: dict[str, int]
    effective_votes: float
    gold_votes: int
    voters: int
    unreliable_voters: int
    biased_voters: int
    biased_ips: int


class PublicCounts(_Open):
    counted: int


class ModelRow(_Open):
    model: str
    rating: float
    ci_sandwich: list[float]
    ci_bootstrap: list[float] | None
    rank: int
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    both_bad_rate: float | None
    provisional: bool


class SideTerm(_Open):
    points: float
    ci_sandwich: list[float]
    p_a_wins_at_parity: float
    ci_bootstrap: list[float] | None = None


class FlipPair(_Open):
    upper: str
    lower: str
    gap_points: float
    votes_to_flip: int | None
    share_of_votes: float | None


class Robustness(_Open):
    method: str
    n_votes: int
    top: int | None
    pairs: list[FlipPair]


class Board(_Open):
    models: list[ModelRow]
    n_votes: int
    note: str | None = None
    ties: str | None = None
    ci_method: str | None = None
    side_term: bool | None = None
    reweighted: bool | None = None
    side: SideTerm | None = None
    identifiable: bool | None = None
    ridge: float | None = None
    bootstrap_rounds: int | None = None
    bootstrap_degenerate: int | None = None
    seed: int | None = None
    provisional_votes: int | None = None
    robustness: Robustness | None = None


class Matrices(_Open):
    models: list[str]
    battle_count: list[list[int]]
    win_rate: list[list[float | None]]


class Leaderboard(_Open):
    method: Method
    counts: Counts
    main: Board
    no_ties: Board | None = None
    matrices: Matrices | None = None
    elo_online_diagnostic: dict[str, float] | None = None
    categories: dict[str, Board] | None = None
    languages: dict[str, Board] | None = None
    updated: float | None = None


class PublicLeaderboard(Leaderboard):
    counts: PublicCounts  # type: ignore[assignment]


class AdminStats(BaseModel):
    counts: Counts
    pairs: dict[str, int]
    gold_pairs: int
    voter_reliability: list[VoterReliability]
