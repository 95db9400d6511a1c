"""``hub serve`` as a real process against slow and greedy clients (issue 13, rows 1 and 6).

Timing figures are in benchmarks/slow_clients.py; these tests assert outcomes only (each probe
gets a generous socket timeout, so a stalled server fails the test instead of hanging it).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from typing import Any, Callable, Iterator

import pytest

from hub.store import Delivery
from tests.helpers import count, rows, spawn, stripe_headers

pytestmark = pytest.mark.slow

SECRET = "whsec_slow_clients"
PROBE_TIMEOUT = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def _post_webhook(port: int, n: int) -> int:
    body = f'{{"id": "evt_slow_{n}", "type": "customer.created", "data": {{"object": {{}}}}}}'.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    conn.request("POST", "/webhooks/stripe", body, stripe_headers(body, SECRET))
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def serve(make_hub: Callable[..., Any]) -> Iterator[Callable[..., tuple[Any, int]]]:
    """Start ``hub serve`` on a free port with extra settings; stopped after the test."""
    procs: list[subprocess.Popen] = []

    def start(**settings: Any) -> tuple[Any, int]:
        hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET=SECRET, **settings)
        port = _free_port()
        procs.append(spawn(hub, "serve", "--port", str(port), "--threads", "4"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz") == 200:
                    return hub, port
            except OSError:
                pass
            assert procs[-1].poll() is None, "hub serve exited"
            assert time.monotonic() < deadline, "hub serve did not start"
            time.sleep(0.2)

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _slow_sockets(port: int, count_: int) -> list[socket.socket]:
    """Half send headers that never end, half a declared body that never comes."""
    socks = []
    for i in range(count_):
        s = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
        head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
        s.sendall(head + (b"Content-Length: 65536\r\n\r\n" if i % 2 else b""))
        socks.append(s)
    return socks


def test_200_slow_sockets_held_for_20_seconds_do_not_stop_health_or_webhooks(serve) -> None:
    hub, port = serve()
    socks = _slow_sockets(port, 200)
    try:
        sent = 0
        until = time.monotonic() + 20
        while time.monotonic() < until:
            for s in socks:  # one more byte each: never idle, never complete
                s.send(b"a")
            assert _get(port, "/healthz") == 200
            assert _post_webhook(port, sent) == 200
            sent += 1
            time.sleep(1.0)
        assert sent >= 5
        assert count(hub, Delivery) == sent
    finally:
        for s in socks:
            s.close()


def _closed_by_server(s: socket.socket, within: float) -> bool:
    """Keep dribbling on ``s`` until the server closes it (True) or ``within`` seconds pass."""
    s.settimeout(0.5)
    until = time.monotonic() + within
    while time.monotonic() < until:
        try:
            s.send(b"a")
            if s.recv(1024) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:  # reset, broken pipe: closed
            return True
    return False


def test_a_request_still_arriving_after_the_deadline_is_cut_off(serve) -> None:
    _, port = serve(HUB_SERVE_REQUEST_TIMEOUT_SECONDS="2")
    header_dribbler, body_dribbler = _slow_sockets(port, 2)
    assert _closed_by_server(header_dribbler, within=30)
    assert _closed_by_server(body_dribbler, within=30)
    assert _get(port, "/healthz") == 200


def _raw_post(port: int, head: bytes, body: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as s:
        s.sendall(head + body)
        answer = http.client.HTTPResponse(s)
        answer.begin()
        return answer.status


def _chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_bodies_over_the_cap_are_refused_with_413_chunked_or_not(serve) -> None:
    hub, port = serve(HUB_MAX_BODY_BYTES="100000")
    big = b'{"id": "evt_big", "pad": "' + b"x" * 150_000 + b'"}'
    auth = "".join(f"{k}: {v}\r\n" for k, v in stripe_headers(big, SECRET).items()).encode()
    head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n" + auth
    assert _raw_post(port, head + b"Content-Length: %d\r\n\r\n" % len(big), big) == 413
    assert _raw_post(port, head + b"Transfer-Encoding: chunked\r\n\r\n", _chunked(big)) == 413
    assert count(hub, Delivery) == 0


def test_a_chunked_body_under_the_cap_is_stored_whole(serve) -> None:
    hub, port = serve(HUB_MAX_BODY_BYTES="100000")
    body = b'{"id": "evt_chunked", "type": "customer.created", "pad": "' + b"y" * 80_000 + b'"}'
    auth = "".join(f"{k}: {v}\r\n" for k, v in stripe_headers(body, SECRET).items()).encode()
    head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _raw_post(port, head, _chunked(body, 10_000)) == 200
    assert [bytes(d.body) for d in rows(hub, Delivery)] == [body]
