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
from tests.mockapi import sequence, wait_for

FAST = {"HUB_RULES_PATH": str(FIXTURES / "rules" / "payment_failed_only.yaml"),
        "HUB_SCHEDULER_INTERVAL_SECONDS": "0.2", "HUB_SWEEP_INTERVAL_SECONDS": "1",
        "HUB_STRANDED_AFTER_SECONDS": "2", "HUB_LEASE_SECONDS": "3", "HUB_RETRY_BASE_SECONDS": "0.5"}


def payment_failed(n: int) -> bytes:
    return stripe_event("invoice.payment_failed", {
        "id": f"in_{n}", "object": "invoice", "customer": f"cus_{n}", "customer_email": f"p{n}@example.com",
        "currency": "usd", "amount_due": 1000 + n, "attempt_count": 1, "status": "open",
    }, event_id=f"evt_{n}")


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
    # the first request hangs past the test (the worker is killed while waiting); later ones answer at once
    api.script = lambda seen, n: (202, {}, b"", 120.0 if n == 0 else 0.0)
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


SLOW_SWEEP = {"HUB_STRANDED_AFTER_SECONDS": "600", "HUB_SWEEP_INTERVAL_SECONDS": "600"}


def _job_status(hub, job_id: str):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        return Job.fetch(job_id, connection=hub.redis, serializer=JSONSerializer).get_status()
    except Exception:
        return None


def test_worker_killed_mid_ingest_job_has_its_job_rerun_without_waiting_for_the_stranded_age(make_hub, api):
    """The killed worker stops beating; the scheduler re-runs its started job (the age-based sweep
    is set to ten minutes here, so only the dead-worker check can recover it)."""
    from sqlalchemy import text

    from hub.store import Delivery

    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, **{**FAST, **SLOW_SWEEP})
    post(hub, payment_failed(40))
    assert hub.relay.flush(timeout=60)
    [delivery] = rows(hub, Delivery)
    job_id = f"d{delivery.id}-1"
    first = second = scheduler = None
    with hub.store.engine.connect() as blocker:  # holds the delivery's row: the ingest job waits on it
        blocker.execute(text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE"), {"id": delivery.id})
        try:
            first = spawn(hub, "worker", "--queues", "ingest")
            wait_for(lambda: _job_status(hub, job_id) == "started", timeout=180)
            _kill(first)
            blocker.rollback()
            scheduler = spawn(hub, "scheduler")
            second = spawn(hub, "worker")
            wait_for(lambda: finished(hub), timeout=90)
        finally:
            blocker.rollback()
            for proc in (first, second, scheduler):
                if proc is not None:
                    _kill(proc, signal.SIGTERM)
    [delivery] = rows(hub, Delivery)
    assert delivery.status == "processed" and delivery.enqueued == 2  # re-enqueued once
    [action] = rows(hub, Action)
    assert action.status == "done"
    assert len(api.requests) == 1


def _redis_server(port: int, workdir: str) -> subprocess.Popen:
    import shutil

    return subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_workers_and_scheduler_stay_up_through_a_redis_restart_and_lose_nothing(make_hub, api, tmp_path):
    import redis as redis_lib

    from tests.services import _free_port

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port, str(tmp_path))
    wait_for(lambda: _pings(redis_lib, url))
    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, HUB_REDIS_URL=url, **FAST)
    procs = [spawn(hub, "worker"), spawn(hub, "worker"), spawn(hub, "scheduler")]
    try:
        post(hub, payment_failed(50))
        wait_for(lambda: len(finished(hub)) == 1, timeout=60)
        server.terminate()
        server.wait(10)
        post(hub, payment_failed(51))  # stored; its job cannot reach Redis
        time.sleep(2)  # the outage lasts a while (the processes meet it in every loop)
        server = _redis_server(port, str(tmp_path))  # back, empty: as after a restart or a flush
        wait_for(lambda: _pings(redis_lib, url))
        post(hub, payment_failed(52))
        wait_for(lambda: len(finished(hub)) == 3, timeout=90)
        assert [p.poll() for p in procs] == [None, None, None]  # nobody exited
    finally:
        for proc in procs:
            _kill(proc, signal.SIGTERM)
        server.terminate()
        server.wait(10)
    assert count(hub, Action, Action.status == "done") == 3
    sent = [r.json()["data"]["attributes"]["unique_id"] for r in api.requests]
    assert len(sent) == len(set(sent)) == 3


def _pings(redis_lib, url: str) -> bool:
    try:
        return bool(redis_lib.Redis.from_url(url).ping())
    except Exception:
        return False


def test_jobs_meeting_a_stopped_database_wait_for_it_instead_of_failing(make_hub, api):
    """PostgreSQL stopped under queued work: the worker's jobs wait and finish once it is back, none
    lands in RQ's failed registry, and nothing waits for the (here ten-minute) stranded sweep."""
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from hub.config import load_settings
    from hub.runtime import Hub
    from hub.store.migrate import upgrade
    from tests import services
    from tests.conftest import BASE_ENV

    base = make_hub()  # the session's Redis, cleaned
    with services.throwaway_postgres_server() as server:
        env = {**BASE_ENV, **FAST, **SLOW_SWEEP, "HUB_DATABASE_URL": server.url,
               "HUB_REDIS_URL": base.settings["HUB_REDIS_URL"], "HUB_KLAVIYO_API_URL": api.url}
        hub = Hub(load_settings(environ=env))
        upgrade(hub.store)
        procs = []
        try:
            for n in range(60, 63):
                post(hub, payment_failed(n))
            assert hub.relay.flush(timeout=60)
            server.stop()
            procs.append(spawn(hub, "worker"))
            started = StartedJobRegistry("ingest", connection=hub.redis)
            wait_for(lambda: started.count, timeout=60)  # a job met the database away ...
            time.sleep(1)  # ... and keeps meeting it a while
            server.start()
            hub.store.dispose()  # this test process's own pooled connections died with the server
            procs.append(spawn(hub, "scheduler"))
            wait_for(lambda: len(finished(hub)) == 3, timeout=120)
            assert FailedJobRegistry("ingest", connection=hub.redis).count == 0
        finally:
            for proc in procs:
                _kill(proc, signal.SIGTERM)
            hub.close()
        assert count(hub, Action, Action.status == "done") == 3
    sent = [r.json()["data"]["attributes"]["unique_id"] for r in api.requests]
    assert len(sent) == len(set(sent)) == 3
