"""Retries and recovery against a real HTTP server, real Redis, real PostgreSQL and real processes.

- a destination answering 500 then 200; 429 with Retry-After: 2; 400: retried, retried no sooner
  than 2 s, failed without retry, each outcome visible in `hub actions`;
- a worker killed with SIGKILL mid-delivery, and Redis flushed mid-run: every action completes,
  and its effect happens once (the retry carries the same idempotency key).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.cli.processes import start_background
from hub.store import Action, Attempt
from tests.conftest import FIXTURES
from tests.helpers import count, rows, spawn, stripe_event, stripe_headers
from tests.mockapi import MockApi, always, sequence, wait_for

FAST = {"HUB_RULES_PATH": str(FIXTURES / "rules" / "payment_failed_only.yaml"),
        "HUB_SCHEDULER_INTERVAL_SECONDS": "0.2", "HUB_SWEEP_INTERVAL_SECONDS": "1",
        "HUB_STRANDED_AFTER_SECONDS": "2", "HUB_LEASE_SECONDS": "3", "HUB_RETRY_BASE_SECONDS": "0.5"}


def payment_failed(n: int) -> bytes:
    return stripe_event("invoice.payment_failed", {
        "id": f"in_{n}", "object": "invoice", "customer": f"cus_{n}", "customer_email": f"p{n}@example.com",
        "currency": "usd", "amount_due": 1000 + n, "attempt_count": 1, "status": "open",
    }, event_id=f"evt_{n}")


@pytest.fixture
def api():
    server = MockApi(always())
    yield server
    server.close()


@pytest.fixture
def running(make_hub, api):
    """A hub with worker and scheduler threads, its Klaviyo URL pointing at the mock API."""
    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, **FAST)
    stop = threading.Event()
    threads = start_background(hub, stop, workers=2)
    yield hub
    stop_all(stop, threads)


def stop_all(stop: threading.Event, threads: list[threading.Thread]) -> None:
    """Stop and wait: a worker thread left running would take the next test's jobs."""
    stop.set()
    for t in threads:
        t.join(30)


def post(hub, body: bytes) -> None:
    from hub.web import create_app

    answer = create_app(hub).test_client().post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert answer.status_code == 200


def actions_json(hub) -> list[dict]:
    result = CliRunner().invoke(cli, ["actions", "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def finished(hub):
    return rows(hub, Action, Action.status.in_(["done", "failed", "dead"]))


def test_500_then_200_is_retried_and_done(running, api):
    api.script = sequence((500, {}, b'{"errors":[]}', 0), (202, {}, b"", 0))
    post(running, payment_failed(1))
    wait_for(lambda: finished(running))
    [action] = actions_json(running)
    assert action["status"] == "done"
    assert [a["outcome"] for a in action["attempt_log"]] == ["retry", "ok"]
    assert action["attempt_log"][0]["status_code"] == 500
    assert len(api.requests) == 2


def test_429_with_retry_after_waits_at_least_that_long(running, api):
    api.script = sequence((429, {"Retry-After": "2"}, b"", 0), (202, {}, b"", 0))
    post(running, payment_failed(2))
    wait_for(lambda: finished(running), timeout=20)
    first, second = api.requests
    assert second.at - first.at >= 2.0
    [action] = actions_json(running)
    assert [a["outcome"] for a in action["attempt_log"]] == ["retry", "ok"]
    assert action["attempt_log"][0]["status_code"] == 429


def test_400_fails_without_retry_and_keeps_the_response(running, api):
    api.script = lambda seen, n: (400, {"Content-Type": "application/json"},
                                  b'{"errors":[{"code":"invalid","detail":"bad metric"}]}', 0)
    post(running, payment_failed(3))
    wait_for(lambda: finished(running))
    time.sleep(1.0)  # give a wrong retry the chance to happen
    [action] = actions_json(running)
    assert action["status"] == "failed"
    assert len(api.requests) == 1
    assert action["attempt_log"][0]["response"]["body"]["errors"][0]["detail"] == "bad metric"
    listing = CliRunner().invoke(cli, ["actions", "--status", "failed"])
    assert "klaviyo.track_event" in listing.output and "failed" in listing.output


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)  # the worker and its work horse
    except ProcessLookupError:
        pass
    proc.wait(10)


def test_worker_killed_mid_delivery_is_recovered_once(make_hub, api):
    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, **FAST)
    # the first request hangs (the worker is killed while waiting); later ones answer at once
    api.script = lambda seen, n: (202, {}, b"", 8.0 if n == 0 else 0.0)
    post(hub, payment_failed(4))
    first = spawn(hub, "worker")
    second = scheduler = None
    try:
        wait_for(lambda: api.requests, timeout=30)
        _kill(first)
        scheduler = spawn(hub, "scheduler")
        second = spawn(hub, "worker")
        wait_for(lambda: finished(hub), timeout=30)
    finally:
        for proc in (first, second, scheduler):
            if proc is not None:
                _kill(proc, signal.SIGTERM)
    [action] = rows(hub, Action)
    assert action.status == "done"
    outcomes = [a.outcome for a in rows(hub, Attempt)]
    assert outcomes.count("lost") == 1 and outcomes[-1] == "ok"
    keys = {r.json()["data"]["attributes"]["unique_id"] for r in api.requests}
    assert keys == {action.key}  # the retry carried the same idempotency key: one effect at Klaviyo


def test_redis_flushed_mid_run_loses_nothing(make_hub, api):
    from rq import SimpleWorker

    from hub.jobs import make_worker

    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, **FAST)
    for n in range(10, 15):
        post(hub, payment_failed(n))
    make_worker(hub.redis, ["ingest"], SimpleWorker).work(burst=True)  # planned and queued, not yet sent
    assert count(hub, Action, Action.status == "queued") == 5
    hub.redis.flushdb()
    for n in range(15, 20):
        post(hub, payment_failed(n))  # stored, ingest jobs enqueued ...
    hub.redis.flushdb()  # ... and lost
    stop = threading.Event()
    threads = start_background(hub, stop, workers=2)
    try:
        wait_for(lambda: len(finished(hub)) == 10, timeout=30)
    finally:
        stop_all(stop, threads)
    assert count(hub, Action, Action.status == "done") == 10
    sent = [r.json()["data"]["attributes"]["unique_id"] for r in api.requests]
    assert len(sent) == len(set(sent)) == 10
