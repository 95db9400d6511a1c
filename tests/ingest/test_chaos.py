"""Every process of the stack killed with SIGKILL in the middle of a stream of webhooks, each started
again as a supervisor would (docker-compose's restart policy): every webhook the provider sent is
processed and its action's effect happens once.

Real processes (`hub serve`, two `hub worker`, `hub scheduler`), real PostgreSQL and Redis, a real
HTTP server standing in for Klaviyo. The sender behaves like a provider: it resends a webhook until
it gets a 200 (a connection refused or reset while the server is down is retried)."""

from __future__ import annotations

import http.client
import signal
import threading
import time

from hub.store import Action, Delivery
from tests.helpers import count, spawn, stripe_headers
from tests.ingest.test_recovery import FAST, _kill, finished, payment_failed
from tests.mockapi import wait_for
from tests.services import _free_port

N = 45


def _send_until_acknowledged(port: int, body: bytes, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/webhooks/stripe", body=body, headers=stripe_headers(body))
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:  # refused or reset while the server is down: the provider tries again
            pass
        time.sleep(0.1)
    raise AssertionError("a webhook was never acknowledged")


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def test_sigkill_of_each_process_mid_stream_loses_nothing_and_doubles_nothing(make_hub, api):
    hub = make_hub(HUB_KLAVIYO_API_URL=api.url, **FAST)
    port = _free_port()
    serve = ["serve", "--port", str(port), "--workers", "1", "--threads", "4"]
    procs = {"serve": spawn(hub, *serve), "worker-1": spawn(hub, "worker"), "worker-2": spawn(hub, "worker"),
             "scheduler": spawn(hub, "scheduler")}
    commands = {"serve": serve, "worker-1": ["worker"], "worker-2": ["worker"], "scheduler": ["scheduler"]}
    acknowledged: list[int] = []
    failures: list[BaseException] = []

    def provider() -> None:
        try:
            deadline = time.monotonic() + 240
            for n in range(N):
                _send_until_acknowledged(port, payment_failed(2000 + n), deadline)
                acknowledged.append(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    try:
        wait_for(lambda: _healthy(port), timeout=60)
        sender = threading.Thread(target=provider)
        sender.start()
        for after, name in ((8, "worker-1"), (16, "serve"), (24, "scheduler"), (32, "worker-2")):
            wait_for(lambda after=after: len(acknowledged) >= after or failures, timeout=120)
            _kill(procs[name], signal.SIGKILL)  # the whole process group: a server's workers too
            procs[name] = spawn(hub, *commands[name])
        sender.join(240)
        assert not failures and len(acknowledged) == N
        wait_for(lambda: len(finished(hub)) == N, timeout=180)
    finally:
        for proc in procs.values():
            _kill(proc, signal.SIGTERM)

    assert count(hub, Delivery) == N and count(hub, Delivery, Delivery.status == "processed") == N
    assert count(hub, Action) == N and count(hub, Action, Action.status == "done") == N
    keys = [r.json()["data"]["attributes"]["unique_id"] for r in api.requests]
    assert len(set(keys)) == N  # every action reached the vendor; a repeat carries its key (one effect)
