"""Schema migrations match the ORM (SQLite and, when its binaries are present, a throwaway PostgreSQL server),
and the whole battle/vote/export flow runs on PostgreSQL."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _schema_diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from mova_eval.arena.storage import Base, normalize_url

    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_sqlite_migrations_create_exactly_the_orm_schema(tmp_path):
    from mova_eval.arena.storage import Store, upgrade

    db = str(tmp_path / "m.db")
    upgrade(db)
    assert _schema_diff(db) == []
    store = Store(db)  # upgrading an up-to-date database is a no-op
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("select version_num from alembic_version").scalar() == "0002"
    store.dispose()


def test_database_of_revision_0001_opens_and_gains_the_rate_limit_table(tmp_path):
    """A database written before the rate limits were stored (revision 0001) opens: the server upgrades it on start
    and keeps what it held."""
    import sqlite3

    from mova_eval.arena.storage import Store, upgrade

    db = str(tmp_path / "old.db")
    upgrade(db, "0001")
    con = sqlite3.connect(db)
    con.execute("insert into settings values ('token_secret', 'kept')")
    con.commit()
    assert "rate_limits" not in {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()
    store = Store(db)
    try:
        assert store.setting("token_secret") == "kept"
        assert _schema_diff(db) == []
        with store.engine.connect() as c:
            assert c.exec_driver_sql("select version_num from alembic_version").scalar() == "0002"
            assert c.exec_driver_sql("select count(*) from rate_limits").scalar() == 0
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def postgres_url():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries are absent ({PG_BIN}); apt-get install postgresql")
    pytest.importorskip("psycopg")
    from mova_eval.arena.loadgen import free_port

    root = Path(tempfile.mkdtemp(prefix="arena-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    data = root / "data"
    try:
        subprocess.run(prefix + [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o",
                                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "-w",
                                 "-l", str(root / "log"), "start"], check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a throwaway PostgreSQL: {e.stderr.decode(errors='replace')[-500:]}")
    subprocess.run(prefix + [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "arena"], check=True,
                   capture_output=True, timeout=60)
    yield f"postgresql://postgres@127.0.0.1:{port}/arena"
    subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True,
                   timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_flow(postgres_url, pool_template, tmp_path):
    from fastapi.testclient import TestClient

    from mova_eval.arena import rating
    from mova_eval.arena.app import Settings, create_app
    from mova_eval.arena.export import export, load_votes, read_export
    from mova_eval.arena.pool import import_runs
    from mova_eval.arena.storage import Store

    store = Store(postgres_url)
    assert _schema_diff(postgres_url) == []
    runs = [(pool_template["runs"] / "synth-wide", None), (pool_template["runs"] / "synth-small", None)]
    rep = import_runs(store, runs, tmp_path / "media")
    assert rep.models == {"synth-wide": 3, "synth-small": 3}
    store.dispose()
    app = create_app(Settings(db_url=postgres_url, media_dir=str(tmp_path / "media"), min_listen_s=0.0, seed=1))
    c = TestClient(app)
    c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
    for ch in ("a", "b", "tie", "both_bad", "a", "a"):
        b = c.post("/api/battles", json={}).json()
        r = c.post("/api/votes", json={"token": b["token"], "choice": ch, "heard_a_s": 1, "heard_b_s": 1})
        assert r.status_code == 200, r.text
    assert c.post("/api/votes", json={"token": b["token"], "choice": "a", "heard_a_s": 1,
                                      "heard_b_s": 1}).status_code == 409
    assert c.get(b["a"]["url"]).status_code == 200
    store = app.state.arena.store
    with store.engine.connect() as conn:  # the session limit's bucket is kept in PostgreSQL too
        assert conn.exec_driver_sql("select name, tokens from rate_limits").all() == [("session_limit_ip", 19.0)]
    votes = load_votes(store)
    assert list(votes["choice"]) == ["a", "b", "tie", "both_bad", "a", "a"]
    export(store, tmp_path / "dump")
    a = rating.leaderboard(votes, n_boot=20)
    b2 = rating.leaderboard(read_export(tmp_path / "dump"), n_boot=20)
    assert a == b2
    store.dispose()
