"""hub backfill chargebee, end to end against a Chargebee list API served on 127.0.0.1."""

from __future__ import annotations

import base64
import copy
import json
import time
from datetime import timedelta
from typing import Any, Callable, Iterator

import pytest

import connectors
from connectors.chargebee import backfill as cb_backfill
from hub import backfill
from hub.runtime import Hub
from hub.store import Event, Subscriber, Subscription, utcnow
from hub.web import create_app
from tests.conftest import FIXTURES
from tests.fakeproviders import FakeChargebee
from tests.helpers import count, drain, rows

DAY = 86400


def content(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / "chargebee" / f"{name}.json").read_text())["content"])


@pytest.fixture
def chargebee() -> Iterator[FakeChargebee]:
    fake = FakeChargebee()
    yield fake
    fake.close()


@pytest.fixture
def cb_hub(make_hub: Callable[..., Hub], chargebee: FakeChargebee, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setattr(cb_backfill, "PAGE_SIZE", 2)
    return make_hub(HUB_CHARGEBEE_API_KEY="cb_key", HUB_CHARGEBEE_API_URL=chargebee.url,
                    HUB_CHARGEBEE_WEBHOOK_USERNAME="hub", HUB_CHARGEBEE_WEBHOOK_PASSWORD="pw-secret")


def seed(fake: FakeChargebee) -> dict[str, Any]:
    """Three customers with subscriptions and a paid invoice from 200 days ago (lists: older than
    the 90 days of events), and the log's last events: a new customer and a payment."""
    now = int(time.time())
    old = now - 200 * DAY
    for n in range(1, 4):
        c = content("subscription_created")
        customer = {**content("customer_created")["customer"], "id": f"cb_c{n}", "email": f"cb{n}@example.com",
                    "created_at": old + n}
        sub = {**c["subscription"], "id": f"cb_s{n}", "customer_id": f"cb_c{n}", "status": "active",
               "created_at": old + 10 + n}
        fake.lists["customers"].append({"customer": customer})
        fake.lists["subscriptions"].append({"subscription": sub, "customer": customer})
        inv = {**content("payment_succeeded")["invoice"], "id": f"cb_i{n}", "customer_id": f"cb_c{n}",
               "subscription_id": f"cb_s{n}", "date": old + DAY, "paid_at": old + DAY,
               "linked_payments": [{"txn_id": f"txn_{n}", "txn_status": "success", "txn_amount": 3900,
                                    "txn_date": old + DAY}]}
        fake.lists["invoices"].append({"invoice": inv})
    newcomer = {**content("customer_created")["customer"], "id": "cb_c9", "email": "cb9@example.com",
                "created_at": now - 5 * DAY}
    fake.lists["events"].append({"event": {"id": "ev_c9", "object": "event", "event_type": "customer_created",
                                           "occurred_at": now - 5 * DAY, "content": {"customer": newcomer}}})
    pay = content("payment_succeeded")
    pay["transaction"].update({"id": "txn_9", "customer_id": "cb_c1", "date": now - 3 * DAY})
    pay["customer"].update({"id": "cb_c1", "email": "cb1@example.com"})
    fake.lists["events"].append({"event": {"id": "ev_pay9", "object": "event", "event_type": "payment_succeeded",
                                           "occurred_at": now - 3 * DAY, "content": pay}})
    # 3 customers + 3 subscriptions + 3 invoices + 3 payments; 2 events
    return {"records": 12 + 2, "subscribers": 4, "webhook": pay}


def test_a_chargebee_backfill_records_events_and_lists_once_and_a_later_webhook_adds_nothing(
        cb_hub: Hub, chargebee: FakeChargebee) -> None:
    expected = seed(chargebee)
    chargebee_connector = connectors.get("chargebee")
    counts = backfill.Run(cb_hub, chargebee_connector).start(utcnow() - timedelta(days=365))
    assert counts.fetched == counts.recorded == expected["records"]
    assert count(cb_hub, Subscriber) == expected["subscribers"]
    assert {s.external_id for s in rows(cb_hub, Subscription)} == {"cb_s1", "cb_s2", "cb_s3"}
    ids = {(e.provider_event_id, e.type) for e in rows(cb_hub, Event, Event.origin == "backfill")}
    assert {("txn_1", "payment.succeeded"), ("cb_c2", "subscriber.created"), ("txn_9", "payment.succeeded")} <= ids
    again = backfill.Run(cb_hub, chargebee_connector).start(utcnow() - timedelta(days=365))
    assert again.recorded == 0 and again.present == expected["records"]
    # Chargebee redelivers the same payment under a new event id: keyed on the transaction, nothing new
    events = count(cb_hub, Event)
    body = json.dumps({"id": "ev_redelivered", "object": "event", "event_type": "payment_succeeded",
                       "occurred_at": int(time.time()) - 3 * DAY, "content": expected["webhook"]}).encode()
    auth = "Basic " + base64.b64encode(b"hub:pw-secret").decode()
    answer = create_app(cb_hub).test_client().post("/webhooks/chargebee", data=body, headers={"Authorization": auth,
                                                                    "Content-Type": "application/json"})
    assert answer.status_code == 200
    drain(cb_hub)
    assert count(cb_hub, Event) == events
