"""The shared limiter on real Redis: windows, the waiting line, reservations, 429 pauses."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib

from hub.ratelimit import LINE_SLACK, MARGIN, RateLimiter


@pytest.fixture
def limiter(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    for key in client.scan_iter("test-rl:*"):
        client.delete(key)
    yield RateLimiter(client, prefix="test-rl")
    client.close()


def test_grants_the_window_then_gives_each_waiter_its_own_slot(limiter):
    granted = [limiter.acquire("ac", [(5, 1.0)], f"t{i}") for i in range(8)]
    assert [d.granted for d in granted] == [True] * 5 + [False] * 3
    waits = [d.wait for d in granted[5:]]
    # the line: the first waiter when the window frees, the next ones a fifth of a window apart
    assert 0.9 < waits[0] <= 1.0 * (1 + MARGIN)
    spacing = 0.2 * (1 + MARGIN) * (1 + LINE_SLACK)
    assert waits[1] - waits[0] == pytest.approx(spacing, abs=0.01)
    assert waits[2] - waits[1] == pytest.approx(spacing, abs=0.01)


def test_a_newcomer_queues_behind_waiters_and_a_waiter_gets_its_slot(limiter):
    for i in range(5):
        assert limiter.acquire("ac", [(5, 1.0)], f"t{i}").granted
    first = limiter.acquire("ac", [(5, 1.0)], "waiter")
    time.sleep(first.wait)
    later = limiter.acquire("ac", [(5, 1.0)], "newcomer")  # the line is not empty: behind it
    assert not later.granted
    assert limiter.acquire("ac", [(5, 1.0)], "waiter").granted  # came back for its slot


def test_every_window_must_have_room(limiter):
    assert limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "a").granted
    assert limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "b").granted
    third = limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "c")
    assert not third.granted and third.wait > 55


def test_a_pause_holds_everyone_for_retry_after(limiter):
    limiter.pause("ac", 30)
    decision = limiter.acquire("ac", [(5, 1.0)], "x")
    assert not decision.granted and 29 < decision.wait <= 30
    assert 29 < limiter.paused_for("ac") <= 30


def test_buckets_and_accounts_are_independent(limiter):
    for i in range(5):
        assert limiter.acquire("ac:one:default", [(5, 1.0)], f"a{i}").granted
    assert not limiter.acquire("ac:one:default", [(5, 1.0)], "a5").granted
    assert limiter.acquire("ac:two:default", [(5, 1.0)], "b0").granted


def test_concurrent_callers_that_honour_their_waits_never_exceed_the_window(limiter):
    """Four threads, each coming back exactly when told: grants per sliding second stay <= 5."""
    grants: list[float] = []
    lock = threading.Lock()
    todo = list(range(16))

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            while True:
                decision = limiter.acquire("sim", [(5, 1.0)], f"job{n}")
                if decision.granted:
                    with lock:
                        grants.append(time.monotonic())
                    break
                time.sleep(decision.wait)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 16
    grants.sort()
    assert all(grants[i + 5] - grants[i] >= 1.0 for i in range(len(grants) - 5))
