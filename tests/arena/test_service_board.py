"""ArenaService.board(): one fit at a time, and a caller that waited for a fit is served that fit's board.

Before the fix the fitting thread cleared ``_fitting_board`` and woke the waiters *before* storing the new board, so
a waiter that got the lock in between still saw no board and fitted a second time (mypy's "may return None where a
Leaderboard is declared" at the same spot, issue 11). The lock here yields after every release, which makes that
interleaving happen every time instead of now and then."""
from __future__ import annotations

import threading
import time

import pytest


class YieldingLock:
    """A Lock that sleeps briefly after each release, so a thread waiting for it gets it first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        time.sleep(0.02)

    def __enter__(self) -> YieldingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_caller_that_waited_for_a_fit_gets_its_board_without_fitting_again(make_client, monkeypatch):
    from mova_eval.arena import service as service_mod

    svc = make_client(n_boot=0).state.arena
    svc.lock = YieldingLock()
    svc._board_busy = threading.Condition(svc.lock)
    real = service_mod.rating.leaderboard
    fitting, second_caller_started = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_leaderboard(*a, **kw):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            fitting.set()
            assert second_caller_started.wait(10)
            time.sleep(0.3)  # the second caller is now waiting for this fit
        return real(*a, **kw)

    monkeypatch.setattr(service_mod.rating, "leaderboard", slow_leaderboard)
    boards: dict[str, object] = {}
    errors: list[BaseException] = []

    def call(name: str) -> None:
        try:
            boards[name] = svc.board()
        except BaseException as e:  # noqa: BLE001 — reported by the assertion below
            errors.append(e)

    first = threading.Thread(target=call, args=("first",), name="first")
    first.start()
    assert fitting.wait(10)
    second = threading.Thread(target=call, args=("second",), name="second")
    second.start()
    second_caller_started.set()
    first.join(20)
    second.join(20)
    assert not errors, errors
    assert calls == ["first"], f"the board was fitted by {calls}"
    assert boards["second"] is boards["first"]
    assert svc.board() is boards["first"]  # fresh: served without another fit
    assert calls == ["first"]


def test_a_failed_fit_wakes_the_waiters_and_the_next_call_fits_again(make_client, monkeypatch):
    from mova_eval.arena import service as service_mod

    svc = make_client(n_boot=0).state.arena
    real = service_mod.rating.leaderboard
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("fit failed")
        return real(*a, **kw)

    monkeypatch.setattr(service_mod.rating, "leaderboard", flaky)
    with pytest.raises(RuntimeError, match="fit failed"):
        svc.board()
    assert not svc._fitting_board and svc._board is None
    board = svc.board()
    assert len(calls) == 2 and svc._board is board
