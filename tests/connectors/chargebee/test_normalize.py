"""Chargebee fixtures -> canonical events, field by field (fixtures: tests/fixtures/chargebee/)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import connectors
from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent, event_id
from tests.conftest import FIXTURES

CHARGEBEE = connectors.get("chargebee")

CHARGEBEE_TYPES = [
    "customer_created", "customer_changed", "customer_deleted",
    "subscription_created", "subscription_started", "subscription_activated", "subscription_renewed",
    "subscription_changed", "subscription_cancelled", "subscription_paused", "subscription_resumed",
    "subscription_reactivated", "subscription_cancellation_scheduled", "subscription_renewal_reminder",
    "subscription_trial_end_reminder", "payment_succeeded", "payment_failed", "payment_refunded", "invoice_generated",
    "invoice_updated",
]
EXPECTED_TYPE = {
    "customer_created": "subscriber.created", "customer_changed": "subscriber.updated",
    "customer_deleted": "subscriber.deleted", "subscription_created": "subscription.created",
    "subscription_started": "subscription.activated", "subscription_activated": "subscription.activated",
    "subscription_renewed": "subscription.renewed", "subscription_changed": "subscription.changed",
    "subscription_cancelled": "subscription.cancelled", "subscription_paused": "subscription.paused",
    "subscription_resumed": "subscription.resumed", "subscription_reactivated": "subscription.reactivated",
    "subscription_cancellation_scheduled": "subscription.cancellation_scheduled",
    "subscription_renewal_reminder": "subscription.renewal_upcoming",
    "subscription_trial_end_reminder": "subscription.trial_ending", "payment_succeeded": "payment.succeeded",
    "payment_failed": "payment.failed", "payment_refunded": "payment.refunded", "invoice_generated": "invoice.created",
    "invoice_updated": "invoice.updated",
}


def run(payload: dict) -> list[CanonicalEvent]:
    return CHARGEBEE.normalize(RawDelivery(3, "chargebee", {}, json.dumps(payload).encode(), datetime.now(timezone.utc)))


def load(name: str) -> dict:
    return json.loads((FIXTURES / "chargebee" / f"{name}.json").read_text())


def one(name: str) -> CanonicalEvent:
    events = run(load(name))
    assert len(events) == 1
    return events[0]


def usd(minor: int) -> dict:
    return {"minor": minor, "currency": "USD"}


def test_every_event_type_has_a_fixture_with_a_source_note() -> None:
    files = sorted((FIXTURES / "chargebee").glob("*.json"))
    assert {json.loads(f.read_text())["event_type"] for f in files} == set(CHARGEBEE_TYPES)
    for f in files:
        assert json.loads(f.read_text())["_source"].strip(), f.name


@pytest.mark.parametrize("name", CHARGEBEE_TYPES)
def test_event_type_mapping(name: str) -> None:
    e = one(name)
    assert e.type == EXPECTED_TYPE[name]
    assert e.provider == "chargebee" and e.providertype == name
    assert e.subject == "cb_cus_Ann"
    assert e.time == datetime.fromtimestamp(load(name)["occurred_at"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_customer_created() -> None:
    e = one("customer_created")
    # a customer is created once: keyed on the customer, so a backfilled one gets the same id
    assert e.providereventid == "cb_cus_Ann"
    assert e.id == event_id("chargebee", "cb_cus_Ann", "subscriber.created")
    assert e.time == "2025-12-01T00:00:00Z"
    s = e.data["subscriber"]
    assert s["email"] == "ann@example.com"
    assert s["first_name"] == "Ann" and s["last_name"] == "Lee"
    assert s["phone"] == "+15555550100"
    assert s["external_ids"] == {"chargebee": "cb_cus_Ann"}
    assert s["version"] == 1767225600123  # resource_version orders state updates


def test_customer_changed_carries_the_newer_resource_version() -> None:
    s = one("customer_changed").data["subscriber"]
    assert s["email"] == "ann.lee@example.com"
    assert s["version"] == 1767225660000


def test_subscription_created_in_trial_product_catalog_2() -> None:
    e = one("subscription_created")
    sub = e.data["subscription"]
    assert sub["id"] == "cb_sub_Ann" and sub["customer_id"] == "cb_cus_Ann"
    assert sub["status"] == "trialing" and sub["provider_status"] == "in_trial"
    # the plan item is found among the addon listed before it and the one-off charge after it
    assert sub["plan"] == {"id": "pro-USD-Monthly", "interval": "month", "interval_count": 1}
    assert sub["quantity"] == 1
    assert sub["amount"] == usd(2900)
    assert sub["mrr"] == usd(3900)  # plan 2900 + addon 2 x 500; the setup charge is not recurring
    assert sub["trial_end"] == "2026-01-01T00:00:00Z"
    assert sub["current_period_end"] == "2026-02-01T00:00:00Z"
    assert sub["version"] == 1767225600456
    assert e.data["subscriber"]["email"] == "ann@example.com"


def test_subscription_created_product_catalog_1_yearly_plan_with_addon() -> None:
    sub = one("subscription_created@pc1").data["subscription"]
    assert sub["plan"] == {"id": "pro-annual", "interval": "year", "interval_count": 1}
    assert sub["amount"] == usd(24000)
    assert sub["mrr"] == usd(3000)  # (24000 + 2 x 6000) / 12


def test_started_paid_is_one_activation_with_activated() -> None:
    started, activated = one("subscription_started"), one("subscription_activated")
    assert started.type == activated.type == "subscription.activated"
    assert started.id == activated.id


def test_started_into_a_trial_is_not_an_activation() -> None:
    payload = load("subscription_started")
    payload["content"]["subscription"]["status"] = "in_trial"
    [e] = run(payload)
    assert e.type == "subscription.updated"
    assert e.data["subscription"]["status"] == "trialing"


def test_changed_reports_the_new_plan_and_mrr() -> None:
    e = one("subscription_changed")
    assert e.data["subscription"]["plan"]["id"] == "plus-USD-Monthly"
    assert e.data["subscription"]["quantity"] == 2
    assert e.data["subscription"]["mrr"] == usd(10800)  # 2 x 4900 + addon 1000
    assert e.data["invoice"]["total"] == usd(4450)


def test_cancellation_scheduled_reads_cancelled_at_as_the_future_end() -> None:
    sub = one("subscription_cancellation_scheduled").data["subscription"]
    assert sub["provider_status"] == "non_renewing" and sub["status"] == "active"
    assert sub["cancel_at"] == "2026-02-01T00:00:00Z"
    assert sub["cancel_at_period_end"] is True
    assert "cancelled_at" not in sub
    assert sub["cancel_reason"] == "Not using it"


def test_cancelled() -> None:
    sub = one("subscription_cancelled").data["subscription"]
    assert sub["status"] == "cancelled"
    assert sub["cancelled_at"] == "2026-02-01T00:00:00Z"
    assert sub["cancel_reason"] == "Too expensive"
    assert sub["mrr"] == usd(0)
    assert sub["version"] == 1769904000222


def test_paused_with_its_dates() -> None:
    sub = one("subscription_paused").data["subscription"]
    assert sub["status"] == "paused"
    assert sub["pause_date"] == "2026-01-02T00:00:00Z"
    assert sub["resume_date"] == "2026-03-01T00:00:00Z"


def test_renewed_moves_the_term() -> None:
    e = one("subscription_renewed")
    assert e.data["subscription"]["current_period_start"] == "2026-02-01T00:00:00Z"
    assert e.data["subscription"]["current_period_end"] == "2026-03-01T00:00:00Z"
    assert e.data["invoice"]["id"] == "cb_inv_2"


def test_payment_failed() -> None:
    e = one("payment_failed")
    assert e.providereventid == "ev_payFailed"
    p = e.data["payment"]
    assert p["transaction_id"] == "txn_Ann2"
    assert p["amount"] == usd(3900)  # minor units kept
    assert p["failure_code"] == "card_declined"
    assert p["failure_message"] == "Insufficient funds"
    assert p["next_retry_at"] == "2026-01-04T00:00:00Z"
    assert p["invoice_id"] == "cb_inv_1"
    assert p["subscription_id"] == "cb_sub_Ann"
    assert p["card_last4"] == "4242"
    assert e.data["invoice"]["dunning_status"] == "in_progress"
    assert e.data["subscription"] == {"id": "cb_sub_Ann"}
    assert e.data["subscriber"]["external_ids"] == {"chargebee": "cb_cus_Ann"}


def test_zero_decimal_currency_is_not_multiplied() -> None:
    e = one("payment_failed@jpy")
    assert e.data["payment"]["amount"] == {"minor": 1000, "currency": "JPY"}
    assert e.subject == "cb_cus_Ken"
    assert "next_retry_at" not in e.data["payment"]


def test_payment_succeeded() -> None:
    p = one("payment_succeeded").data["payment"]
    assert p["amount"] == usd(3900) and p["status"] == "success"
    assert p["invoice_id"] == "cb_inv_1"


def test_payment_refunded_with_credit_note() -> None:
    e = one("payment_refunded")
    assert e.data["payment"]["amount"] == usd(1500)
    assert e.data["credit_note"] == {"id": "cb_cn_1", "reason": "product_unsatisfactory", "total": usd(1500)}


def test_invoice_generated() -> None:
    e = one("invoice_generated")
    inv = e.data["invoice"]
    assert inv["id"] == "cb_inv_4" and inv["status"] == "open" and inv["provider_status"] == "payment_due"
    assert inv["amount_due"] == usd(3900)
    assert inv["due_at"] == "2026-02-01T00:00:00Z"
    assert e.data["subscription"] == {"id": "cb_sub_Ann"}
    assert e.data["subscriber"] == {"external_ids": {"chargebee": "cb_cus_Ann"}}


def test_unknown_event_type_is_kept_as_unmapped() -> None:
    [e] = run({"id": "ev_x", "occurred_at": 1767225600, "event_type": "coupon_created", "content": {"coupon": {"id": "c"}}})
    assert e.type == "provider.unmapped" and e.providertype == "coupon_created"
    assert e.data["raw"]["content"] == {"coupon": {"id": "c"}}


@pytest.mark.parametrize("payload, reason", [
    ([], "not a Chargebee event"),
    ({"id": "ev", "occurred_at": 1, "event_type": "payment_failed"}, "without a content object"),
    ({"id": "ev", "occurred_at": 1, "event_type": "payment_failed", "content": {}}, "required field"),
    ({"id": "ev", "event_type": "customer_created", "content": {"customer": {"id": "c"}}}, "no event time"),
    ({"id": "ev", "occurred_at": 1, "event_type": "subscription_created",
      "content": {"subscription": {"id": "s", "status": "active", "currency_code": "USD", "billing_period_unit": "fortnight",
                                   "plan_unit_price": 100}}}, "unexpected field value"),
])
def test_malformed_payloads_raise_payload_error(payload: object, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        run(payload)  # type: ignore[arg-type]
