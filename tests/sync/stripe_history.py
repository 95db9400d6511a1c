"""A Stripe account's history, built from the fixture objects, for the backfill and gap tests."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from tests.conftest import FIXTURES
from tests.fakeproviders import FakeStripe

DAY = 86400


def fixture_object(type_: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / "stripe" / f"{type_}.json").read_text())["data"]["object"])


def event(event_id: str, type_: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "api_version": "2026-06-24.dahlia", "created": created,
            "livemode": False, "type": type_, "data": {"object": obj}}


def customer(n: int, created: int) -> dict[str, Any]:
    return {**fixture_object("customer.created"), "id": f"cus_{n}", "email": f"person{n}@example.com",
            "name": f"Person {n}", "phone": None, "created": created}


def subscription(n: int, created: int, **changes: Any) -> dict[str, Any]:
    sub = fixture_object("customer.subscription.created")
    sub.update({"id": f"sub_{n}", "customer": f"cus_{n}", "status": "active", "created": created,
                "start_date": created, "trial_start": None, "trial_end": None, "latest_invoice": None, **changes})
    return sub


def paid_invoice(invoice_id: str, n: int, paid_at: int) -> dict[str, Any]:
    inv = fixture_object("invoice.paid")
    inv.update({"id": invoice_id, "customer": f"cus_{n}", "customer_email": f"person{n}@example.com",
                "created": paid_at - 3600, "status_transitions": {"paid_at": paid_at}})
    return inv


def failed_invoice(invoice_id: str, n: int, charge: str, created: int) -> dict[str, Any]:
    inv = fixture_object("invoice.payment_failed")
    inv.update({"id": invoice_id, "customer": f"cus_{n}", "customer_email": f"person{n}@example.com",
                "created": created, "charge": charge,
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": f"sub_{n}"}}})
    return inv


def failed_charge(charge_id: str, n: int, created: int) -> dict[str, Any]:
    ch = fixture_object("charge.failed")
    ch.update({"id": charge_id, "customer": f"cus_{n}", "created": created,
               "billing_details": {"email": f"person{n}@example.com", "name": f"Person {n}"}})
    return ch


def seed(fake: FakeStripe, now: int | None = None) -> dict[str, Any]:
    """Five customers from two months ago (list endpoints only: older than the event log) and a
    month of events: an invoice paid 20 days ago, a customer and subscription from 10 days ago, and
    a payment that failed 2 hours ago (inside the 24 h horizon: its actions are meant to run).

    Returns what a full backfill must end with."""
    now = now or int(time.time())
    old = now - 60 * DAY
    for n in range(1, 6):
        fake.lists["customers"].append(customer(n, old + n))
        ended = {"status": "canceled", "ended_at": now - 45 * DAY, "canceled_at": now - 45 * DAY} if n == 5 else {}
        fake.lists["subscriptions"].append(subscription(n, old + 60 + n, **ended))
        fake.lists["invoices"].append(paid_invoice(f"in_{n}", n, old + DAY + n))
    fake.lists["charges"].append(failed_charge("ch_old", 2, now - 50 * DAY))
    # objects the event log also announces (a list read of them is cut off at the log's reach)
    fake.lists["customers"].append(customer(6, now - 10 * DAY))
    fake.lists["invoices"].append(paid_invoice("in_1b", 1, now - 20 * DAY))
    fake.events += [
        event("evt_paid_1b", "invoice.paid", paid_invoice("in_1b", 1, now - 20 * DAY), now - 20 * DAY),
        event("evt_cus_6", "customer.created", customer(6, now - 10 * DAY), now - 10 * DAY),
        event("evt_sub_6", "customer.subscription.created", subscription(6, now - 10 * DAY + 5), now - 10 * DAY + 5),
        event("evt_fail_2", "invoice.payment_failed", failed_invoice("in_2b", 2, "ch_recent", now - 7200), now - 7200),
        event("evt_unmapped", "balance.available", {"id": "bal_1", "object": "balance"}, now - 3 * DAY),
    ]
    return {
        # 5 customers + 5 subscriptions + 1 end + 5 paid invoices + 1 failed charge; 4 mapped events
        "records": 17 + 4,
        "subscribers": 6,
        "subscriptions": 6,
        "recent_event": "evt_fail_2",
    }
