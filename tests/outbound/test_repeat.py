"""A send whose answer is lost (the destination hangs past the client timeout) is retried; the effect
still happens once. Real HTTP servers on 127.0.0.1 stand in for ActiveCampaign's tracking endpoint
(no idempotency key: the retry reads the tracking log first) and a merchant's webhook receiver
(drops a repeated ``webhook-id``, as Standard Webhooks asks). docs/delivery.md's table of what a
repeat does is generated from the connector registry and checked here."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook

import connectors
from hub.outbound.deliver import deliver
from hub.store import Action, Attempt
from tests.conftest import ROOT
from tests.helpers import rows
from tests.outbound.support import add_actions

TIMEOUT = 1.0  # the hub's client timeout in these tests
HANG = 4.0  # the first request is answered only after this long: past the timeout
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CDT = timezone(timedelta(hours=-5))  # ActiveCampaign answers times in the account's zone, with its offset


def test_the_docs_say_for_every_action_what_a_repeat_after_a_timeout_does():
    table = connectors.repeat_table()
    text = (ROOT / "docs" / "delivery.md").read_text()
    documented = re.search(r"<!-- repeat-table.*?-->\n(.*?)<!-- /repeat-table -->", text, re.S)
    assert documented and documented.group(1) == table, "regenerate docs/delivery.md's table:\n" + table
    undocumented = [f"{name}.{action}" for name, c in connectors.REGISTRY.items() for action in c.actions
                    if connectors.on_repeat(c, action) is None]
    assert undocumented == []


class Server:
    """A threaded HTTP server on 127.0.0.1 running ``handle(handler, body)`` for every request."""

    def __init__(self, handle: Any):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply = handle(self, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the hub gave up waiting

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeActiveCampaign:
    """The tracking endpoint (form POST, no key) and the API's contact lookup and tracking log.

    ``first``: what the first tracking request does before hanging: ``record`` (it arrives, only its
    answer is lost) or ``drop`` (it never takes effect)."""

    def __init__(self, first: str):
        self.first = first
        self.posts = 0
        self.log: list[dict[str, Any]] = []  # the tracking log: the effect
        self.lock = threading.Lock()
        self.server = Server(self.handle)

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        url = urlparse(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if request.command == "POST" and url.path == "/event":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with self.lock:
                self.posts += 1
                first = self.posts == 1
            if not (first and self.first == "drop"):
                self.record(form["event"], form.get("eventdata", ""), datetime.now(CDT))
            if first:
                time.sleep(HANG)
            return 200, b'{"success":1,"message":"Event spawned"}'
        if url.path == "/api/3/contacts":
            return 200, json.dumps({"contacts": [{"id": "7", "email": query.get("email")}]}).encode()
        if url.path == "/api/3/trackingLogs":
            found = [e for e in self.log if e["subscriberid"] == query.get("filters[subscriberid]")
                     and query.get("filters[type]", "") in e["type"]]
            found.sort(key=lambda e: e["tstamp"], reverse=query.get("orders[tstamp]") == "DESC")
            return 200, json.dumps({"trackingLogs": found, "meta": {"total": str(len(found))}}).encode()
        return 404, b'{"message":"No Result found"}'

    def record(self, event: str, data: str, at: datetime) -> None:
        with self.lock:
            self.log.append({"id": str(len(self.log) + 1), "subscriberid": "7", "contact": "7", "type": event,
                             "value": data, "tstamp": at.isoformat(timespec="seconds")})


@pytest.fixture
def activecampaign(make_hub: Any, request: Any) -> Iterator[tuple[Any, FakeActiveCampaign]]:
    fake = FakeActiveCampaign(request.param)
    hub = make_hub(HUB_ACTIVECAMPAIGN_API_URL=fake.server.url, HUB_ACTIVECAMPAIGN_API_TOKEN="token",
                   HUB_ACTIVECAMPAIGN_TRACK_URL=f"{fake.server.url}/event", HUB_ACTIVECAMPAIGN_ACCOUNT_ID="123",
                   HUB_ACTIVECAMPAIGN_EVENT_KEY="event-key", HUB_HTTP_TIMEOUT_SECONDS=str(TIMEOUT))
    yield hub, fake
    fake.server.close()


def _deliver_until_finished(hub: Any, action_id: int, rounds: int = 4) -> str | None:
    """Deliver; after a retriable outcome make the retry due at once (no waiting out the backoff)."""
    status = None
    for _ in range(rounds):
        status = deliver(hub, action_id)
        if status != "scheduled":
            return status
        with hub.store.session() as s:
            s.execute(update(Action).where(Action.id == action_id).values(due_at=datetime.now(timezone.utc)))
    return status


PARAMS = {"event": "invoice_paid", "eventdata": "in_1001", "email": "ann@example.com"}


@pytest.mark.parametrize("activecampaign", ["record"], indirect=True)
def test_track_event_whose_answer_was_lost_is_not_tracked_again(activecampaign):
    hub, fake = activecampaign
    [action_id] = add_actions(hub, "activecampaign", "track_event", [PARAMS])
    assert _deliver_until_finished(hub, action_id) == "done"
    assert [(e["type"], e["value"]) for e in fake.log] == [("invoice_paid", "in_1001")]  # once
    assert fake.posts == 1  # the retry looked, found it, and sent nothing
    first, second = rows(hub, Attempt, Attempt.action_id == action_id)
    assert first.outcome == "retry" and "timed out" in first.error
    assert second.outcome == "ok" and "/api/3/trackingLogs" in second.request["url"]


@pytest.mark.parametrize("activecampaign", ["drop"], indirect=True)
def test_track_event_that_never_arrived_is_sent_again_once(activecampaign):
    """The lookup finds nothing newer than the first try (an identical event from yesterday does not
    count), so the retry sends: nothing lost, nothing doubled."""
    hub, fake = activecampaign
    fake.record("invoice_paid", "in_1001", datetime.now(CDT) - timedelta(days=1))
    [action_id] = add_actions(hub, "activecampaign", "track_event", [PARAMS])
    assert _deliver_until_finished(hub, action_id) == "done"
    assert fake.posts == 2
    assert len(fake.log) == 2  # yesterday's, and this action's once


class Receiver:
    """A merchant endpoint that verifies the signature and processes each ``webhook-id`` once."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.processed: list[Any] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.server = Server(self.handle)

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        payload = Webhook(SECRET).verify(body, headers)
        with self.lock:
            self.requests.append(headers)
            first, repeat = len(self.requests) == 1, headers["webhook-id"] in self.seen
            self.seen.add(headers["webhook-id"])
            if not repeat:
                self.processed.append(payload)
        if first:
            time.sleep(HANG)
        return 200, b"{}"


def test_webhook_post_whose_answer_was_lost_is_processed_once_by_a_receiver_that_dedupes(make_hub):
    receiver = Receiver()
    try:
        hub = make_hub(HUB_WEBHOOK_SECRET=SECRET, HUB_WEBHOOK_ALLOW_HTTP="true", HUB_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
                       HUB_HTTP_TIMEOUT_SECONDS=str(TIMEOUT))
        [action_id] = add_actions(hub, "webhook", "post", [{"url": f"{receiver.server.url}/in",
                                                            "payload": {"id": "evt_1", "type": "payment.failed"}}])
        assert _deliver_until_finished(hub, action_id) == "done"
    finally:
        receiver.server.close()
    assert len(receiver.requests) == 2 and receiver.processed == [{"id": "evt_1", "type": "payment.failed"}]
    first, second = receiver.requests
    [key] = {first["webhook-id"], second["webhook-id"], first["idempotency-key"], second["idempotency-key"]}
    with hub.store.session() as s:
        assert s.get(Action, action_id).key == key  # the action key, the same on every try
