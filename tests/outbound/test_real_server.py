"""Against real HTTP servers on 127.0.0.1, RQ worker threads, PostgreSQL and Redis.

- a destination enforcing 5 requests per second (429 beyond it): four worker threads delivering 200 ActiveCampaign actions stay within it and lose nothing (the rate achieved is printed;
  `benchmarks/ratelimit.py` measures it);
- a destination that is down does not hold up deliveries to another one.
"""

from __future__ import annotations

import collections
import threading

import pytest

from hub import scheduler
from hub.jobs import ThreadWorker, make_worker
from hub.store import Action
from tests.helpers import count, rows
from tests.mockapi import MockApi, PerSecond, always, wait_for
from tests.outbound.support import FakeConnector, add_actions, register


def five_per_second() -> PerSecond:
    """An ActiveCampaign stand-in's script: at most 5 requests per wall-clock second, 429 beyond it."""
    return PerSecond(5, lambda seen: (201, {}, b'{"contact":{"id":"1"}}', 0.0),
                     (429, {"Retry-After": "1"}, b'{"message":"slow down"}', 0.0),
                     lambda seen: seen.json()["contact"]["email"])


def _run_workers(hub, stop: threading.Event, queues: list[str], workers: int) -> list[threading.Thread]:
    """The scheduler and ``workers`` RQ worker threads, each waiting on its queues like `hub worker`
    (a blocking dequeue; it returns after a second idle so the loop can see ``stop``)."""
    threads = [threading.Thread(target=scheduler.run, args=(hub, stop), daemon=True)]
    for _ in range(workers):
        worker = make_worker(hub.redis, queues, ThreadWorker)

        def loop(w=worker) -> None:
            while not stop.is_set():
                w.work(max_idle_time=1, logging_level="WARNING")

        threads.append(threading.Thread(target=loop, daemon=True))
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_four_workers_behind_a_5_per_second_limit_send_everything_once(make_hub):
    limiter = five_per_second()
    api = MockApi(limiter)
    # the default scheduler interval (1 s): returns are timed by the scheduler's wake-ups, not polling
    hub = make_hub(HUB_ACTIVECAMPAIGN_API_TOKEN="ac-token", HUB_ACTIVECAMPAIGN_API_URL=api.url)
    ids = add_actions(hub, "activecampaign", "sync_contact", [{"email": f"p{i}@example.com"} for i in range(200)])
    stop = threading.Event()
    threads = _run_workers(hub, stop, ["deliver-activecampaign"], workers=4)
    try:
        wait_for(lambda: count(hub, Action, Action.id.in_(ids), Action.status == "done") == 200, timeout=120,
                 interval=0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        api.close()
    # the outcome: every action accepted exactly once, nothing lost. Whether a request ever met a 429
    # depends on the machine's timing (a busy CI machine delays requests across second boundaries);
    # the figures (429s, busiest second, share of the allowance) are benchmarks/ratelimit.py's.
    accepted = collections.Counter(email for _, status, email in limiter.log if status == 201)
    assert accepted == {f"p{i}@example.com": 1 for i in range(200)}
    refused = sum(1 for _, status, _ in limiter.log if status == 429)
    per_second = collections.Counter(int(at) for at, _, _ in limiter.log)
    times = sorted(at for at, status, _ in limiter.log if status == 201)
    rate = (len(times) - 1) / (times[-1] - times[0])
    gaps = sorted(round(b - a, 3) for a, b in zip(times, times[5:]))  # each request vs the 5th before it
    print(f"\nrate {rate:.2f}/s ({rate / 5:.0%} of the 5/s allowance) over {times[-1] - times[0]:.1f}s; 5-apart gaps median {gaps[len(gaps) // 2]}, "
          f"p90 {gaps[int(len(gaps) * 0.9)]}, max {gaps[-1]}; busiest second {max(per_second.values())} requests, "
          f"{refused} x 429")


def test_a_destination_that_is_down_does_not_hold_up_another(make_hub, monkeypatch):
    up = MockApi(always(201))
    hub = make_hub()
    register(monkeypatch, FakeConnector("down", "http://127.0.0.1:9", failures=3, cooldown=60))  # refused
    register(monkeypatch, FakeConnector("up", up.url))
    # more down actions than one job sends at once (16 calls in flight): when the circuit opens,
    # the calls already in flight finish, and every later one must wait instead of being tried
    down_ids = add_actions(hub, "down", "note", [{"text": f"d{i}"} for i in range(60)])
    up_ids = add_actions(hub, "up", "note", [{"text": f"u{i}"} for i in range(30)])
    stop = threading.Event()
    # a worker takes the down destination's queue first
    threads = _run_workers(hub, stop, ["deliver-down", "deliver-up"], workers=2)
    try:
        wait_for(lambda: count(hub, Action, Action.id.in_(up_ids), Action.status == "done") == 30, timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        up.close()
    assert len(up.requests) == 30
    assert all(a.attempts == 1 for a in rows(hub, Action, Action.id.in_(up_ids)))
    down = rows(hub, Action, Action.id.in_(down_ids))
    assert all(a.status == "scheduled" for a in down)
    tried = sum(a.attempts for a in down)
    assert tried < 60  # the circuit opened: the rest were never tried
    assert any("circuit open" in (a.last_error or "") and a.attempts == 0 for a in down)
