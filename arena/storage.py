"""Arena storage: SQLAlchemy 2 tables, engine set-up (SQLite in WAL mode, or PostgreSQL by URL), Alembic upgrade.

The schema is created only by the Alembic migrations in ``migrations/`` (``upgrade()``); the ORM tables below must
match them, which a test checks with Alembic's autogenerate comparison.

Durability: a vote is acknowledged only after its transaction committed. SQLite runs with
``journal_mode=WAL`` and ``synchronous=FULL`` by default (every commit is fsync'd to the WAL), so neither a killed
server nor a power cut loses an acknowledged vote; ``synchronous=NORMAL`` (``--sqlite-sync normal``) survives a
killed process but may lose the last commits on a power cut.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

CHOICES = ("a", "b", "tie", "both_bad")
SIDE_TAGS = ("visual", "audio", "sync", "prompt")


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Server secrets (token key, pseudonym salt) and facts such as the media folder, kept across restarts."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)


class Prompt(Base):
    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(200), unique=True)
    suite: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    language: Mapped[str] = mapped_column(String(16), default="none")
    text: Mapped[str] = mapped_column(Text, default="")


class Clip(Base):
    """A playback copy. ``model_id`` is NULL for gold clips (synthetic pairs with a known answer)."""

    __tablename__ = "clips"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex, reveals nothing
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True, index=True)
    run_id: Mapped[str] = mapped_column(String(200), default="")
    source_path: Mapped[str] = mapped_column(Text, default="")
    source_hash: Mapped[str] = mapped_column(String(64), default="")
    playback_file: Mapped[str] = mapped_column(String(200))  # file name inside the media folder
    playback_sha256: Mapped[str] = mapped_column(String(64), default="")
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    loudness_in: Mapped[float | None] = mapped_column(Float, nullable=True)  # LUFS before normalisation
    gold_group: Mapped[str | None] = mapped_column(String(64), nullable=True)  # twin clips share a group
    gold_role: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "good" | "bad"


class Voter(Base):
    __tablename__ = "voters"
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)  # salted hash of the voter cookie
    created_at: Mapped[float] = mapped_column(Float)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)


class Battle(Base):
    __tablename__ = "battles"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "model" | "gold"
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    clip_a: Mapped[str] = mapped_column(ForeignKey("clips.id"))
    clip_b: Mapped[str] = mapped_column(ForeignKey("clips.id"))
    model_a: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_b: Mapped[str | None] = mapped_column(String(200), nullable=True)
    gold_answer: Mapped[str | None] = mapped_column(String(8), nullable=True)
    pair_prob: Mapped[float] = mapped_column(Float)     # P(this unordered model pair | sampler state)
    prompt_prob: Mapped[float] = mapped_column(Float)   # P(this prompt | pair)
    side_prob: Mapped[float] = mapped_column(Float)     # P(this side assignment) = 0.5
    sampler: Mapped[str] = mapped_column(String(32))    # "coverage" | "uncertainty" | "gold"
    voter: Mapped[str] = mapped_column(String(32), index=True)
    ip_hash: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    voted: Mapped[bool] = mapped_column(Boolean, default=False)


class Vote(Base):
    __tablename__ = "votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    battle_id: Mapped[str] = mapped_column(ForeignKey("battles.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    choice: Mapped[str] = mapped_column(String(8))
    model_a: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_b: Mapped[str | None] = mapped_column(String(200), nullable=True)
    item_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(16))
    pair_prob: Mapped[float] = mapped_column(Float)
    gold_answer: Mapped[str | None] = mapped_column(String(8), nullable=True)
    heard_a_s: Mapped[float] = mapped_column(Float)
    heard_b_s: Mapped[float] = mapped_column(Float)
    elapsed_s: Mapped[float] = mapped_column(Float)  # server-side time between battle issue and vote
    tags_a: Mapped[list] = mapped_column(JSON, default=list)
    tags_b: Mapped[list] = mapped_column(JSON, default=list)
    voter: Mapped[str] = mapped_column(String(32), index=True)
    ip_hash: Mapped[str] = mapped_column(String(32))
    flags: Mapped[list] = mapped_column(JSON, default=list)  # reasons to exclude; empty list = counts
    created_at: Mapped[float] = mapped_column(Float)


class RateBucket(Base):
    """A rate limiter's token bucket (``integrity.StoredRateLimiter``): kept here so limits survive a restart.
    ``key`` is a pseudonym (salted hash), never a raw IP address. Added in revision 0002."""

    __tablename__ = "rate_limits"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)   # the limit, e.g. "session_limit_ip"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, index=True)      # wall-clock seconds of the last hit


# ----------------------------------------------------------------------------------------------- engine


def normalize_url(url: str) -> str:
    """Accept a bare file path as a SQLite database; use psycopg 3 for ``postgresql://`` URLs."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(url: str) -> bool:
    return normalize_url(url).startswith("sqlite")


def make_engine(url: str, *, sqlite_sync: str = "full") -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        if sqlite_sync.lower() not in ("full", "normal", "extra"):
            raise ValueError(f"sqlite_sync must be full, normal or extra, not {sqlite_sync!r}")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                               max_overflow=16)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_sync.upper()}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("mova_eval.arena").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` with the packaged Alembic migrations (creates a new database)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


class Store:
    """An engine, a session factory and (for SQLite) one in-process write lock.

    SQLite allows one writer at a time; serialising writers in Python avoids the busy-wait back-off inside SQLite,
    which otherwise dominates tail latency under concurrent votes.
    """

    def __init__(self, url: str, *, sqlite_sync: str = "full", migrate: bool = True):
        self.url = normalize_url(url)
        if migrate:
            upgrade(self.url)
        self.engine = make_engine(self.url, sqlite_sync=sqlite_sync)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.Lock() if self.sqlite else None
        self.writer = GroupCommit(self.engine, self._write_lock)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on exit (or rolls back on error); returns only after the commit."""
        if self._write_lock is not None:
            self._write_lock.acquire()
        try:
            with self.sessions() as s, s.begin():
                yield s
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    def submit(self, op: Callable[[Connection], Any]) -> Future:
        """Run ``op(connection)`` in the next group commit; the future resolves only after the commit."""
        return self.writer.submit(op)

    def setting(self, key: str, default: str | None = None) -> str | None:
        with self.read() as s:
            row = s.get(Setting, key)
            return row.value if row is not None else default

    def set_setting(self, key: str, value: str) -> None:
        with self.write() as s:
            row = s.get(Setting, key)
            if row is None:
                s.add(Setting(key=key, value=value))
            else:
                row.value = value

    def ensure_secret(self, key: str) -> str:
        """A random secret created once and kept in the database, so tokens survive a restart."""
        import secrets

        with self.write() as s:
            row = s.get(Setting, key)
            if row is None:
                row = Setting(key=key, value=secrets.token_hex(32))
                s.add(row)
            return row.value

    def get_or_create_model(self, s: Session, name: str, meta: dict[str, Any] | None = None) -> Model:
        m = s.scalar(select(Model).where(Model.name == name))
        if m is None:
            m = Model(name=name, meta=meta or {})
            s.add(m)
            s.flush()
        return m

    def get_or_create_prompt(self, s: Session, item_id: str, **fields: Any) -> Prompt:
        p = s.scalar(select(Prompt).where(Prompt.item_id == item_id))
        if p is None:
            p = Prompt(item_id=item_id, **fields)
            s.add(p)
            s.flush()
        return p

    def dispose(self) -> None:
        self.writer.close()
        self.engine.dispose()


class GroupCommit:
    """One writer thread that runs the pending operations of concurrent requests in one transaction.

    Each vote or battle must be committed before it is acknowledged; committing them one by one costs an fsync
    each. Here every operation queued while the previous commit ran goes into the next transaction, and all their
    futures resolve after that single commit. Operations signal expected refusals through their return value; an
    exception rolls the batch back and the operations are retried one by one, so one bad request cannot sink the
    others.
    """

    def __init__(self, engine: Engine, lock: threading.Lock | None, max_batch: int = 256):
        self.engine, self.lock, self.max_batch = engine, lock, max_batch
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="arena-group-commit", daemon=True)
        self.thread.start()

    def submit(self, op: Callable[[Connection], Any]) -> Future:
        fut: Future = Future()
        self.q.put((op, fut))
        return fut

    def close(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                batch.append(nxt)
            try:
                results = self._run(batch)
            except Exception:
                results = []
                for one in batch:
                    try:
                        results += self._run([one])
                    except Exception as e:  # noqa: BLE001 - handed to the waiting request
                        results.append((one[1], None, e))
            for fut, value, err in results:
                if err is not None:
                    fut.set_exception(err)
                else:
                    fut.set_result(value)

    def _run(self, batch):
        if self.lock is not None:
            self.lock.acquire()
        try:
            with self.engine.begin() as conn:
                out = [(fut, op(conn), None) for op, fut in batch]
            return out
        finally:
            if self.lock is not None:
                self.lock.release()
