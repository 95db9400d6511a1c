"""webhook.post: Standard Webhooks signatures (checked by the official package as an oracle) and
the SSRF guard (refusals happen before anything is sent)."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import requests
import responses
from standardwebhooks import Webhook

from connectors.webhook import guard, signature
from hub.kernel.errors import PermanentError, VerificationError
from tests.connectors.actions import KEY, ActionContract, ctx, run, settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="
URL = "https://hooks.example.com/subscriber-events?token=t0k"
PUBLIC_IP = "93.184.216.34"
EVENT = {"specversion": "1.0", "id": "e1", "type": "payment.failed", "data": {"amount": {"minor": 2900}},
         "note": "café ☕"}


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo for the names given (others resolve normally); return the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            asked.append(host)
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 443))
                    for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return fake_dns(monkeypatch, {"hooks.example.com": [PUBLIC_IP]})


# -- signatures --------------------------------------------------------------------------------
def test_our_signature_is_accepted_by_the_official_package():
    body = json.dumps(EVENT).encode()
    headers = signature.sign(body, "msg_1", [SECRET])
    assert Webhook(SECRET).verify(body, headers) == EVENT


def test_during_rotation_every_secret_signs_and_either_one_verifies():
    body = b'{"id":"e1"}'
    headers = signature.sign(body, "msg_1", [SECRET, NEW_SECRET])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, NEW_SECRET):
        Webhook(secret).verify(body, headers)
        assert signature.verify(body, headers, [secret])


def test_our_verify_accepts_the_official_packages_signature():
    now = datetime.now(timezone.utc)
    body = '{"id":"e1"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(SECRET).sign("msg_1", now, body)}
    assert signature.verify(body.encode(), headers, [SECRET]) == int(now.timestamp())


def test_the_signature_matches_the_package_byte_for_byte():
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ours = signature.signature(signature.secret_key(SECRET), "msg_1", int(moment.timestamp()), b"{}")
    assert ours == Webhook(SECRET).sign("msg_1", moment, "{}")


@pytest.mark.parametrize("change,message", [
    (lambda b, h: (b + b" ", h), "no signature matches"),
    (lambda b, h: (b, {**h, "webhook-id": "msg_2"}), "no signature matches"),
    (lambda b, h: (b, {**h, "webhook-timestamp": str(int(time.time()) - 301)}), "tolerance"),
    (lambda b, h: (b, {**h, "webhook-timestamp": str(int(time.time()) + 301)}), "tolerance"),
    (lambda b, h: (b, {**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}), "scheme v1"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-id"}), "missing"),
])
def test_verify_refuses_anything_altered(change, message):
    body, headers = change(b'{"id":"e1"}', signature.sign(b'{"id":"e1"}', "msg_1", [SECRET]))
    with pytest.raises(VerificationError, match=message):
        signature.verify(body, headers, [SECRET])


def test_a_malformed_secret_is_refused_without_showing_it():
    with pytest.raises(PermanentError, match="HUB_WEBHOOK_SECRET") as caught:
        run("webhook.post", {"url": URL, "payload": {}}, settings(HUB_WEBHOOK_SECRET="whsec_not*base64!"))
    assert "not*base64" not in str(caught.value)


# -- sending ---------------------------------------------------------------------------------
@responses.activate
def test_post_sends_the_exact_signed_body(public_dns):
    responses.post(URL, status=204)
    run("webhook.post", {"url": URL, "payload": EVENT}, settings(HUB_WEBHOOK_SECRET=f"{SECRET},{NEW_SECRET}"))
    request = responses.calls[0].request
    assert request.headers["webhook-id"] == KEY
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Host"] == "hooks.example.com"
    assert json.loads(request.body) == EVENT
    for secret in (SECRET, NEW_SECRET):
        assert Webhook(secret).verify(request.body, dict(request.headers)) == EVENT
    assert public_dns == ["hooks.example.com"]


class TestWebhookActions(ActionContract):
    connector, api, secret = "webhook", "", SECRET
    config, dry_config = dict(HUB_WEBHOOK_SECRET=SECRET), {}
    cases = [("webhook.post", {"url": URL, "payload": EVENT}, "POST", URL)]
    error_body = {"error": "nope"}

    @pytest.fixture(autouse=True)
    def _public(self, public_dns):
        """hooks.example.com resolves to a public address (the SSRF guard allows it)."""


@responses.activate
def test_without_a_secret_nothing_is_sent_and_the_exact_request_is_recorded(public_dns):
    outcome = run("webhook.post", {"url": URL, "payload": {"id": "e1"}}, settings())
    assert len(responses.calls) == 0 and outcome.dry_run
    timestamp = outcome.request["headers"]["webhook-timestamp"]
    assert outcome.request == {"method": "POST", "url": URL, "body": '{"id":"e1"}', "headers": {
        "Content-Type": "application/json", "User-Agent": "subscriber-hub-webhooks",
        "webhook-id": KEY, "webhook-timestamp": timestamp, "Idempotency-Key": KEY}}


# -- SSRF guard ------------------------------------------------------------------------------
@pytest.mark.parametrize("url,reason", [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost.localdomain.invalid/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10:8443/hook", "private"),
    ("https://100.64.0.7/hook", "carrier-grade NAT"),
    ("https://169.254.10.1/hook", "link-local"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://internal.example.com/hook", "private"),
])
@responses.activate
def test_private_and_metadata_destinations_are_refused(monkeypatch, url, reason):
    fake_dns(monkeypatch, {"internal.example.com": [PUBLIC_IP, "10.0.0.8"],  # every address is checked
                           "localhost.localdomain.invalid": ["127.0.0.1"]})
    with pytest.raises(PermanentError, match=f"a {reason} address") as caught:
        run("webhook.post", {"url": url, "payload": EVENT}, settings(HUB_WEBHOOK_SECRET=SECRET))
    assert "SSRF" in str(caught.value)
    assert len(responses.calls) == 0


def test_a_name_resolving_to_a_private_address_is_refused_and_named(monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["192.168.1.20"]})
    with pytest.raises(PermanentError, match=r"hooks\.example\.com resolves to 192\.168\.1\.20"):
        guard.resolve(URL)


def test_plain_http_is_refused_unless_allowed():
    with pytest.raises(PermanentError, match="only https"):
        run("webhook.post", {"url": "http://hooks.example.com/x", "payload": {}}, settings(HUB_WEBHOOK_SECRET=SECRET))


def test_the_refusal_message_never_shows_the_query_string(monkeypatch):
    with pytest.raises(PermanentError) as caught:
        guard.resolve("https://10.0.0.1/hook?token=s3cret")
    assert "s3cret" not in str(caught.value)


@responses.activate
def test_a_redirect_is_refused_not_followed(public_dns):
    responses.post(URL, status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(PermanentError, match="redirects are not followed"):
        run("webhook.post", {"url": URL, "payload": EVENT}, settings(HUB_WEBHOOK_SECRET=SECRET))
    assert len(responses.calls) == 1


def test_https_connections_go_to_the_checked_address_with_the_name_for_tls():
    target = guard.Target(url=URL, scheme="https", host="hooks.example.com", port=443, address=PUBLIC_IP)
    adapter = guard.PinnedAdapter(target)
    prepared = requests.Request("POST", URL).prepare()
    pool = adapter.get_connection_with_tls_context(prepared, verify=True)
    assert (pool.host, pool.port) == (PUBLIC_IP, 443)
    assert pool.conn_kw.get("server_hostname") == "hooks.example.com"
    assert pool.assert_hostname == "hooks.example.com"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[ThreadingHTTPServer, list]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Receiver.received
    server.shutdown()
    server.server_close()


def test_the_connection_uses_the_one_address_resolved(monkeypatch, receiver):
    """Against a real server: the allow-listed name is resolved once, the request reaches the
    address checked, with the name in Host, and the receiver can verify the signature."""
    server, received = receiver
    port = server.server_address[1]
    asked = fake_dns(monkeypatch, {"hooks.test": ["127.0.0.1"]})
    config = settings(HUB_WEBHOOK_SECRET=SECRET, HUB_WEBHOOK_ALLOW_HTTP="true", HUB_WEBHOOK_ALLOW_HOSTS="hooks.test")
    outcome = run("webhook.post", {"url": f"http://hooks.test:{port}/in", "payload": EVENT}, config, ctx("msg_9"))
    assert outcome.status_code == 200 and asked == ["hooks.test"]
    headers, body = received[0]
    assert headers["Host"] == f"hooks.test:{port}"
    assert Webhook(SECRET).verify(body, headers) == EVENT
    assert headers["webhook-id"] == "msg_9"


def test_the_allow_list_does_not_open_other_hosts(monkeypatch):
    fake_dns(monkeypatch, {"other.test": ["127.0.0.1"]})
    with pytest.raises(PermanentError, match="loopback"):
        guard.resolve("http://other.test/in", allow_http=True, allow_hosts=["hooks.test"])
