"""Pages are read through the shared rate limiter; a 429 pauses the bucket for everyone."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

import pytest
import responses

import connectors
from connectors.stripe import backfill as st
from hub import backfill
from hub.kernel.errors import RetriableError
from hub.outbound.ratelimit import MARGIN, RateLimiter
from hub.runtime import Hub

START = datetime(2026, 8, 1, tzinfo=timezone.utc)
END = datetime(2026, 10, 1, tzinfo=timezone.utc)
EVENTS = "https://api.stripe.test/v1/events"


@pytest.fixture
def reader(make_hub: Callable[..., Hub]) -> tuple[backfill.Reader, list[float]]:
    hub = make_hub(HUB_STRIPE_API_KEY="sk_test_reader", HUB_STRIPE_API_URL="https://api.stripe.test",
                   HUB_STRIPE_RATE_LIMIT="3/1s")
    slept: list[float] = []
    return backfill.Reader(hub, connectors.get("stripe"), sleep=slept.append), slept


def events_phase() -> backfill.Phase:
    return st.SOURCE.phases[0]


@responses.activate
def test_a_429_pauses_the_shared_bucket_for_retry_after_and_the_page_is_asked_again(
        reader: tuple[backfill.Reader, list[float]]) -> None:
    r, slept = reader
    r.sleep = lambda seconds: (slept.append(seconds), time.sleep(seconds))  # type: ignore[func-returns-value]
    responses.get(EVENTS, status=429, headers={"Retry-After": "1"}, json={"error": {}})
    responses.get(EVENTS, json={"object": "list", "has_more": False, "data": []})
    page = r.page(events_phase(), START, END, None)
    assert page.records == [] and len(responses.calls) == 2 and r.throttled == 1
    # the retry waited out the pause the 429 put on the bucket every process (deliveries too) shares
    assert sum(slept) >= 0.9 and RateLimiter(r.limiter.redis).paused_for(r.key) == 0
    assert r.key.startswith("stripe:") and r.key.endswith(":default")  # the bucket deliveries use


@responses.activate
def test_requests_beyond_the_limit_wait_for_a_room_instead_of_being_sent(
        reader: tuple[backfill.Reader, list[float]]) -> None:
    r, slept = reader
    responses.get(EVENTS, json={"object": "list", "has_more": False, "data": []})
    for _ in range(3):
        r.page(events_phase(), START, END, None)
    assert slept == []  # three rooms a second: no wait yet

    def stop(seconds: float) -> None:
        raise TimeoutError(f"would wait {seconds:.2f}s")

    r.sleep = stop
    with pytest.raises(TimeoutError):  # the fourth waits for the next room rather than being sent
        r.page(events_phase(), START, END, None)
    assert len(responses.calls) == 3


@responses.activate
def test_server_errors_are_retried_with_backoff_then_reported(reader: tuple[backfill.Reader, list[float]]) -> None:
    r, slept = reader
    r.windows = ((1000, 1.0),)  # room enough: only the retries are under test
    responses.get(EVENTS, status=503, json={})
    with pytest.raises(RetriableError, match="503"):
        r.page(events_phase(), START, END, None)
    assert len(responses.calls) == r.attempts
    assert slept[:3] == [0.5, 1.0, 2.0] and max(slept) == 30.0


def test_the_reader_keeps_its_own_sends_a_window_apart_and_wider_after_a_429(
        reader: tuple[backfill.Reader, list[float]]) -> None:
    r, slept = reader
    r._sent = {(2, 1.0): deque(maxlen=2)}
    r._space()
    r._space()
    assert slept == []  # two sends fit a window of two
    r._space()  # the third leaves a window (plus the margin) after the first, whatever the grants said
    assert 0.9 < slept[-1] <= 1.0 * (1 + MARGIN)
    r.slack = 0.05  # as after a 429
    r._sent[(2, 1.0)].clear()
    r._space()
    r._space()
    r._space()
    assert slept[-1] > 1.0 * (1 + MARGIN) and slept[-1] <= 1.0 * (1 + MARGIN + 0.05)


@responses.activate
def test_a_429_widens_the_readers_spacing_up_to_a_tenth(reader: tuple[backfill.Reader, list[float]]) -> None:
    r, _ = reader
    r.sleep = lambda seconds: None  # the pause itself is shown above
    r.windows = ((1000, 1.0),)
    r._sent = {(1000, 1.0): deque(maxlen=1000)}
    for _ in range(8):
        responses.get(EVENTS, status=429, headers={"Retry-After": "0"}, json={"error": {}})
    responses.get(EVENTS, json={"object": "list", "has_more": False, "data": []})
    r.page(events_phase(), START, END, None)
    assert r.throttled == 8 and r.slack == pytest.approx(0.1)
