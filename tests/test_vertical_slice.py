"""The whole path: a signed Stripe webhook ends as exactly one Klaviyo request."""

from __future__ import annotations

import json
import threading

import responses
from sqlalchemy import select

from hub.store import Action, Delivery, Event

from .conftest import FIXTURES
from .helpers import count, drain, stripe_headers

PAYMENT_FAILED = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()


@responses.activate
def test_payment_failed_reaches_klaviyo_once(hub, client):
    responses.post("https://klaviyo.test/api/events", status=202)
    answer = client.post("/webhooks/stripe", data=PAYMENT_FAILED, headers=stripe_headers(PAYMENT_FAILED))
    assert answer.status_code == 200
    drain(hub)

    assert len(responses.calls) == 1
    request = responses.calls[0].request
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
    assert attrs["time"] == "2026-01-01T00:00:00Z"
    assert attrs["properties"]["attempt"] == 1
    assert attrs["properties"]["invoice_id"] == "in_1Qfail"
    assert attrs["properties"]["subscription_id"] == "sub_Ann"
    with hub.store.session() as s:
        action = s.execute(select(Action)).scalar_one()
    assert attrs["unique_id"] == action.key
    assert action.status == "done"


@responses.activate
def test_five_concurrent_copies_make_one_event_and_one_request(hub):
    from hub.web import create_app

    responses.post("https://klaviyo.test/api/events", status=202)
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
    assert count(hub, Event) == 1
    assert len(responses.calls) == 1
