"""``hub serve`` restarts without refusing a connection (issue 10): while clients post signed webhooks
without pause, the master replaces its workers (``kill -HUP``), then hands over to a new master on the
same socket (``kill -USR2``, then ``kill -TERM`` of the old one). Every post is answered 200 and
stored. Outcomes only: how long each step takes is not asserted."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from hub.store import Delivery
from tests.helpers import rows, spawn, stripe_headers

pytestmark = pytest.mark.slow

SECRET = "whsec_restart"
PATIENCE = 120.0  # bound for each wait below, so a broken restart fails the test instead of hanging it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    done = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in done.stdout.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + PATIENCE
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)
    return value


class Poster:
    """Posts signed Stripe webhooks without pause, each with a new event id, and keeps every outcome.

    ``keep_alive``: one connection reused for as long as the server keeps it open (reconnecting when
    an answer says ``Connection: close``), else a new connection per post."""

    def __init__(self, port: int, name: str, keep_alive: bool):
        self.port, self.name, self.keep_alive = port, name, keep_alive
        self.answered: list[str] = []  # event ids answered 200
        self.failed: list[str] = []  # anything else: refused, reset, timed out, not 200
        self.times: list[float] = []  # when each answer came (benchmarks/restart.py: the longest gap)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while not self.stop.is_set():
            n += 1
            event_id = f"evt_{self.name}_{n}"
            body = (f'{{"id": "{event_id}", "type": "customer.created", "created": {int(time.time())}, '
                    f'"data": {{"object": {{"id": "cus_{self.name}_{n}"}}}}}}').encode()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/webhooks/stripe", body, stripe_headers(body, SECRET))
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.answered.append(event_id)
                else:
                    self.failed.append(f"{event_id} at {time.time():.3f}: HTTP {response.status}")
                self.times.append(time.monotonic())
                if not self.keep_alive or response.will_close:
                    conn.close()
                    conn = None
            except OSError as exc:
                self.failed.append(f"{event_id} at {time.time():.3f}: {type(exc).__name__}: {exc}")
                conn = None
                time.sleep(0.01)  # a sender retrying at once, not spinning

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)


def test_workers_replaced_and_master_handed_over_while_clients_post_lose_and_refuse_nothing(make_hub, tmp_path):
    hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET=SECRET)
    port = _free_port()
    pidfile = tmp_path / "hub.pid"
    proc = spawn(hub, "serve", "--port", str(port), "--workers", "2", "--threads", "4", "--pid", str(pidfile))
    posters: list[Poster] = []
    try:
        master = _until(lambda: pidfile.exists() and pidfile.read_text().strip() and int(pidfile.read_text()),
                        "the master's pid file")
        assert master == proc.pid
        first_workers = _until(lambda: len(_children(master)) == 2 and _children(master), "two workers")
        _until(lambda: _get_health(port), "hub serve answering")
        posters = [Poster(port, "fresh", keep_alive=False), Poster(port, "kept", keep_alive=True)]

        def progress(more: int) -> None:
            target = sum(len(p.answered) for p in posters) + more
            _until(lambda: sum(len(p.answered) for p in posters) >= target, f"{more} more answers")

        progress(20)
        # 1. HUP: new workers, the old ones drain and leave; the master keeps the socket
        os.kill(master, signal.SIGHUP)
        _until(lambda: len(_children(master)) == 2 and not _children(master) & first_workers,
               "the workers replaced")
        progress(20)
        # 2. USR2: a new master (new code) on the same socket; then TERM the old one
        os.kill(master, signal.SIGUSR2)
        second = pidfile.with_name(pidfile.name + ".2")  # the new master's until the old one leaves
        new_master = _until(lambda: second.exists() and second.read_text().strip() and int(second.read_text()),
                            "the new master's pid file")
        _until(lambda: len(_children(new_master)) == 2, "the new master's workers")
        progress(20)
        os.kill(master, signal.SIGTERM)
        proc.wait(PATIENCE)
        _until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_master), "the new master promoted")
        assert len(_children(new_master)) == 2
        progress(20)
    finally:
        for poster in posters:
            poster.finish()
        os.killpg(proc.pid, signal.SIGTERM)  # the new master is in the same process group
        _until(lambda: not any(_alive(p) for p in [proc.pid, *_pids_in_group(proc.pid)]), "everything stopped")
    failed = [f for p in posters for f in p.failed]
    assert failed == []  # no refused, reset or timed-out connection, no error answer
    answered = {e for p in posters for e in p.answered}
    stored = [d.dedup_key for d in rows(hub, Delivery, Delivery.connector == "stripe")]
    assert len(answered) >= 80
    assert answered <= set(stored) and len(stored) == len(set(stored))  # every acknowledged post stored, once


def _get_health(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _pids_in_group(pgid: int) -> list[int]:
    done = subprocess.run(["ps", "-o", "pid=", "-s", str(pgid)], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]

