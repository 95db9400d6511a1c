"""A real HTTP server on 127.0.0.1 for timing and failure behaviour (what `responses` cannot show).

The test gives a ``script``: a function from the request (method, path, headers, body) and how many
requests came before it to (status, headers, body, delay). Every request is logged with its arrival
time; ``effects`` records Klaviyo-style idempotent effects (first ``unique_id`` wins).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Seen:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes, float]
Script = Callable[[Seen, int], Reply]


def always(status: int = 202) -> Script:
    return lambda seen, n: (status, {}, b"", 0.0)


def sequence(*replies: Reply) -> Script:
    """The n-th request gets the n-th reply; later ones get the last."""
    return lambda seen, n: replies[min(n, len(replies) - 1)]


class PerSecond:
    """A script answering ``ok(request)`` to at most ``limit`` requests per wall-clock second and
    ``refused`` (a 429) beyond it, as a vendor's rate limiter does (``limit = None``: no limit).
    ``log`` keeps (arrival, status, ``label(request)``) for every request."""

    def __init__(self, limit: int | None, ok: Callable[[Seen], Reply], refused: Reply,
                 label: Callable[[Seen], str]):
        self.limit, self.ok, self.refused, self.label = limit, ok, refused, label
        self.log: list[tuple[float, int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, seen: Seen, n: int) -> Reply:
        second = int(seen.at)
        with self._lock:
            accepted = 0
            for at, status, _ in reversed(self.log):  # arrivals may be logged a little out of order
                if at < second - 1:
                    break
                accepted += int(at) == second and status != self.refused[0]
            reply = self.refused if self.limit is not None and accepted >= self.limit else self.ok(seen)
            self.log.append((seen.at, reply[0], self.label(seen)))
        return reply


@dataclass
class MockApi:
    script: Script
    requests: list[Seen] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        api = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(time.time(), self.command, self.path, dict(self.headers.items()),
                            self.rfile.read(length))
                with api._lock:
                    n = len(api.requests)
                    api.requests.append(seen)
                status, headers, body, delay = api.script(seen, n)
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    api._record_effect(seen)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client went away (e.g. a killed worker)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record_effect(self, seen: Seen) -> None:
        try:
            key = seen.json()["data"]["attributes"]["unique_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.effects[key] = self.effects.get(key, 0) + 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``check()`` is truthy; fail the test with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
