"""The whole path: a signed Stripe webhook ends as exactly one Klaviyo request."""

from __future__ import annotations

import json
import threading
import time

import responses
from sqlalchemy import select

from hub.store import Action, Delivery, Event
from tests.conftest import FIXTURES
from tests.helpers import count, drain, recent, stripe_headers

PAYMENT_FAILED = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")


def metric_calls(name: str) -> list:
    """Klaviyo event requests for one metric (the default playbook sends others too, e.g. loyalty)."""
    out = []
    for call in responses.calls:
        if call.request.url.endswith("/api/events"):
            attrs = json.loads(call.request.body)["data"]["attributes"]
            if attrs["metric"]["data"]["attributes"]["name"] == name:
                out.append(call)
    return out


def accept_everything() -> None:
    for method in (responses.GET, responses.POST, responses.PATCH, responses.PUT, responses.DELETE):
        responses.add(method, __import__("re").compile(r"https://.*"), status=202, json={})


@responses.activate
def test_payment_failed_reaches_klaviyo_once(hub, client):
    accept_everything()
    answer = client.post("/webhooks/stripe", data=PAYMENT_FAILED, headers=stripe_headers(PAYMENT_FAILED))
    assert answer.status_code == 200
    drain(hub)

    [call] = metric_calls("Payment Failed")
    request = call.request
    assert request.headers["Authorization"] == "Klaviyo-API-Key pk_test_klaviyo"
    assert request.headers["revision"] == "2026-07-15"
    assert request.headers["Content-Type"] == "application/vnd.api+json"
    assert request.headers["Accept"] == "application/vnd.api+json"
    body = json.loads(request.body)
    attrs = body["data"]["attributes"]
    assert body["data"]["type"] == "event"
    assert attrs["metric"] == {"data": {"type": "metric", "attributes": {"name": "Payment Failed"}}}
    assert attrs["profile"]["data"]["attributes"]["email"] == "ann@example.com"
    assert attrs["value"] == 29.0 and attrs["value_currency"] == "USD"
    created = json.loads(PAYMENT_FAILED)["created"]  # the failure's own time, not the time it was sent
    assert attrs["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    assert attrs["properties"]["attempt"] == 1
    assert attrs["properties"]["invoice_id"] == "in_1Qfail"
    assert attrs["properties"]["subscription_id"] == "sub_Ann"
    with hub.store.session() as s:
        action = s.execute(select(Action).where(Action.rule_id == "payment-failed-notify")).scalar_one()
    assert attrs["unique_id"] == action.key
    assert action.status == "done"


@responses.activate
def test_five_concurrent_copies_make_one_event_and_one_request(hub):
    from hub.web import create_app

    accept_everything()
    app = create_app(hub)
    answers: list[int] = []

    def post() -> None:
        with app.test_client() as c:
            answers.append(c.post("/webhooks/stripe", data=PAYMENT_FAILED,
                                  headers=stripe_headers(PAYMENT_FAILED)).status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain(hub)
    assert answers == [200] * 5
    assert count(hub, Delivery) == 1
    assert count(hub, Event, Event.origin == "provider") == 1
    assert len(metric_calls("Payment Failed")) == 1
    sent_keys = [json.loads(c.request.body)["data"]["attributes"].get("unique_id") for c in responses.calls
                 if c.request.url.endswith("/api/events")]
    assert len(sent_keys) == len(set(sent_keys))  # no action was sent twice
