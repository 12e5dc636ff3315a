"""Arena fixtures: one small pool (two synthetic generators × 3 prompts + 1 gold pair) built once per session
through the real pipeline (runner → run dirs → import), copied per test so tests never share votes."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")


@pytest.fixture(scope="session")
def pool_template(tmp_path_factory):
    from mova_eval.arena.demo import make_pool

    work = tmp_path_factory.mktemp("arena-pool")
    db = work / "template.db"
    media = make_pool(str(db), work, models=2, items=3, gold=1, media_dir=work / "media")
    return {"db": db, "media": media, "runs": work / "runs"}


@pytest.fixture
def arena_db(pool_template, tmp_path) -> str:
    """A private copy of the pool database (the media folder is shared read-only)."""
    dst = tmp_path / "arena.db"
    shutil.copy(pool_template["db"], dst)
    return str(dst)


@pytest.fixture
def make_client(arena_db):
    """make_client(**settings) → (TestClient with a voter session and CSRF header set, app)."""
    from fastapi.testclient import TestClient

    from mova_eval.arena.app import Settings, create_app

    apps = []

    def make(**kw):
        kw.setdefault("min_listen_s", 0.0)
        kw.setdefault("gold_rate", 0.0)
        kw.setdefault("seed", 0)
        kw.setdefault("variant_stock", 0)  # variants made on request: no background encoding between tests
        app = create_app(Settings(db_url=arena_db, **kw))
        apps.append(app)
        return app

    def client(app, *, session: bool = True):
        c = TestClient(app)
        if session:
            c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
        return c

    make.client = client
    yield make
    for app in apps:
        app.state.arena.store.dispose()
