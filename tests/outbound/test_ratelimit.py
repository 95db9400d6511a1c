"""The shared limiter on real Redis: windows, booked rooms, the full line, 429 pauses."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib

from hub.outbound.ratelimit import MARGIN, RateLimiter


@pytest.fixture
def limiter(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    for key in client.scan_iter("test-rl:*"):
        client.delete(key)
    yield RateLimiter(client, prefix="test-rl")
    client.close()


def test_grants_the_window_then_books_the_rooms_the_sends_free_then_is_full(limiter):
    decisions = [limiter.acquire("ac", [(5, 1.0)], f"t{i}") for i in range(12)]
    assert [d.state for d in decisions] == ["granted"] * 5 + ["booked"] * 5 + ["full"] * 2
    # each booking is the room one of the five sends frees: one (margin-widened) window after it
    for d in decisions[5:10]:
        assert 0.95 < d.wait <= 1.0 * (1 + MARGIN)
    assert limiter.open_rooms("ac", [(5, 1.0)]) == 0
    assert limiter.open_rooms("other", [(5, 1.0)]) == 5
    assert limiter.open_rooms("ac", []) is None  # no limit


def test_booked_callers_get_their_rooms_and_a_newcomer_cannot_take_them(limiter):
    for i in range(5):
        assert limiter.acquire("ac", [(5, 1.0)], f"t{i}").granted
    booked = [limiter.acquire("ac", [(5, 1.0)], f"w{i}") for i in range(5)]
    assert all(d.booked for d in booked) and limiter.has_booking("ac", "w0")
    early = limiter.acquire("ac", [(5, 1.0)], "w0")  # back too early: keeps its booking
    assert early.booked and early.wait <= booked[0].wait
    time.sleep(max(d.wait for d in booked))
    newcomer = limiter.acquire("ac", [(5, 1.0)], "newcomer")  # every free room is booked: not for it
    assert not newcomer.granted
    assert all(limiter.acquire("ac", [(5, 1.0)], f"w{i}").granted for i in range(5))
    assert not limiter.has_booking("ac", "w0")


def test_a_late_caller_takes_any_free_room(limiter):
    for i in range(5):
        assert limiter.acquire("ac", [(5, 1.0)], f"t{i}").granted
    first = limiter.acquire("ac", [(5, 1.0)], "first")
    second = limiter.acquire("ac", [(5, 1.0)], "second")
    assert first.booked and second.booked
    time.sleep(max(first.wait, second.wait) + 0.05)
    # "second" comes back first: it takes the earliest free room, "first" still finds one
    assert limiter.acquire("ac", [(5, 1.0)], "second").granted
    assert limiter.acquire("ac", [(5, 1.0)], "first").granted


def test_every_window_must_have_room(limiter):
    assert limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "a").granted
    assert limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "b").granted
    third = limiter.acquire("kl", [(10, 1.0), (2, 60.0)], "c")
    assert third.booked and third.wait > 55  # the per-second window has room, the per-minute one not


def test_a_pause_holds_everyone_for_retry_after(limiter):
    limiter.pause("ac", 30)
    decision = limiter.acquire("ac", [(5, 1.0)], "x")
    assert decision.booked and 29 < decision.wait <= 30
    assert 29 < limiter.paused_for("ac") <= 30


def test_buckets_and_accounts_are_independent(limiter):
    for i in range(5):
        assert limiter.acquire("ac:one:default", [(5, 1.0)], f"a{i}").granted
    assert not limiter.acquire("ac:one:default", [(5, 1.0)], "a5").granted
    assert limiter.acquire("ac:two:default", [(5, 1.0)], "b0").granted


def test_concurrent_callers_that_honour_their_waits_never_exceed_the_window(limiter):
    """Four threads, each coming back when told (booked or full): grants per sliding second stay <= 5."""
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
