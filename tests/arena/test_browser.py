"""Real-browser tests: Debian's Chromium, headless, driven by Playwright (no `playwright install`).

The page is served by the real app in a uvicorn thread on 127.0.0.1. Minimum listening time is 1 s per side.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--mute-audio"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def server(arena_db, tmp_path):
    pytest.importorskip("playwright")
    import uvicorn

    from mova_eval.arena.app import Settings, create_app
    from mova_eval.arena.loadgen import free_port, wait_ready
    from mova_eval.arena.rating import OPEN

    # OPEN: the board test casts five votes from one voter, which probation would hold back.
    app = create_app(Settings(db_url=arena_db, min_listen_s=1.0, gold_rate=0.0, seed=3, policy=OPEN))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    wait_ready(port)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)
    app.state.arena.store.dispose()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright gives every launch a new empty profile (the --user-data-dir the flags ask for).
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP (no eval) forbids;
        # test_page_runs_under_its_csp checks the page itself without the bypass.
        pg = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        yield pg
        browser.close()


def test_page_runs_under_its_csp(server):
    """The page's own scripts and styles load under its Content-Security-Policy (no violation reported); an inline
    script, which the policy forbids, is reported — so the listener does see violations."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        pg = browser.new_page()
        messages = []
        pg.on("console", lambda m: messages.append(m.text))
        pg.goto(server + "/")
        pg.wait_for_selector("#video-a")
        pg.wait_for_timeout(1500)
        assert not [m for m in messages if "Content Security Policy" in m], messages
        try:
            pg.add_script_tag(content="window.injected = 1;")
        except Exception:  # noqa: BLE001 - Playwright may raise on the refused tag; the console message is the check
            pass
        pg.wait_for_timeout(300)
        browser.close()
    assert [m for m in messages if "Content Security Policy" in m]


def _votes(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("select choice, heard_a_s, heard_b_s, flags from votes").fetchall()
    finally:
        con.close()


def _ready(page):
    page.wait_for_function("window.arenaState && window.arenaState.battle !== null", timeout=10_000)
    page.wait_for_function("document.getElementById('video-a').readyState >= 2 && "
                           "document.getElementById('video-b').readyState >= 2", timeout=10_000)


def test_voting_is_locked_before_playback(server, page, arena_db):
    page.goto(server + "/")
    _ready(page)
    buttons = page.locator("button.vote")
    assert buttons.count() == 4
    for i in range(4):
        assert buttons.nth(i).is_disabled()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("a")
    time.sleep(0.3)
    assert "Voting opens after" in page.locator("#status").inner_text()
    assert page.locator("#reveal").is_hidden()
    assert _votes(arena_db) == []


def test_play_listen_vote_by_keyboard_and_see_reveal(server, page, arena_db):
    page.goto(server + "/")
    _ready(page)
    page.keyboard.press(" ")                      # play both, A audible
    page.wait_for_function("window.arenaState.heard.a >= 1.05", timeout=10_000)
    assert page.locator("button.vote").first.is_disabled()  # B not heard yet
    assert page.evaluate("window.arenaState.heard.b") == 0
    page.keyboard.press("2")                      # B audible
    page.wait_for_function("window.arenaState.heard.b >= 1.05", timeout=10_000)
    page.wait_for_function("!document.querySelector('button.vote').disabled", timeout=5_000)
    page.keyboard.press("ArrowRight")             # B is better
    page.wait_for_selector("#reveal:not([hidden])", timeout=5_000)
    names = {page.locator("#name-a").inner_text(), page.locator("#name-b").inner_text()}
    assert names == {"synth-wide", "synth-small"}
    (choice, ha, hb, flags), = _votes(arena_db)
    assert choice == "b" and ha >= 1.0 and hb >= 1.0 and json.loads(flags) == []
    page.keyboard.press("n")                      # next battle loads, voting locked again
    page.wait_for_function("window.arenaState.battle !== null && !window.arenaState.voted", timeout=10_000)
    assert page.locator("#reveal").is_hidden() and page.locator("button.vote").first.is_disabled()


def test_sequential_mode_and_phone_layout(server, page, arena_db):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server + "/")
    _ready(page)
    box_a = page.locator("#side-a").bounding_box()
    box_b = page.locator("#side-b").bounding_box()
    assert box_b["y"] >= box_a["y"] + box_a["height"] - 1   # stacked, not side by side
    assert box_a["width"] <= 390
    page.keyboard.press("m")                      # A then B
    page.keyboard.press(" ")
    page.wait_for_function("window.arenaState.heard.a >= 1.0 && window.arenaState.heard.b >= 1.0", timeout=15_000)
    page.keyboard.press("t")
    page.wait_for_selector("#reveal:not([hidden])", timeout=5_000)
    assert _votes(arena_db)[0][0] == "tie"


def test_leaderboard_page_shows_board_with_intervals(server, page, arena_db):
    import httpx

    with httpx.Client(base_url=server) as c:
        csrf = c.get("/api/session").json()["csrf"]
        con = sqlite3.connect(arena_db)
        for ch in ("a", "b", "a", "tie", "a"):
            b = c.post("/api/battles", json={}, headers={"X-CSRF-Token": csrf}).json()
            con.execute("update battles set created_at = created_at - 10 where id = ?", (b["battle_id"],))
            con.commit()
            r = c.post("/api/votes", headers={"X-CSRF-Token": csrf},
                       json={"token": b["token"], "choice": ch, "heard_a_s": 2, "heard_b_s": 2})
            assert r.status_code == 200
        con.close()
    page.goto(server + "/leaderboard")
    rows = page.locator("#board-main tbody tr")
    assert rows.count() == 2
    text = page.locator("#board-main").inner_text()
    assert "synth-wide" in text and "synth-small" in text and "–" in text and "provisional" in text
    assert "Side A advantage" in page.content()
