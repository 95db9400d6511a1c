"""Stripe fixtures -> canonical events, field by field (fixtures: tests/fixtures/stripe/, one per type)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import connectors
from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent, event_id
from tests.conftest import FIXTURES

STRIPE = connectors.get("stripe")
USD = "USD"


def normalize(name: str) -> list[CanonicalEvent]:
    body = (FIXTURES / "stripe" / f"{name}.json").read_bytes()
    return STRIPE.normalize(RawDelivery(7, "stripe", {}, body, datetime.now(timezone.utc)))


def one(name: str) -> CanonicalEvent:
    events = normalize(name)
    assert len(events) == 1
    return events[0]


def usd(minor: int) -> dict:
    return {"minor": minor, "currency": USD}


def test_every_fixture_has_a_source_note_and_a_mapped_type() -> None:
    files = sorted((FIXTURES / "stripe").glob("*.json"))
    types = {json.loads(f.read_text())["type"] for f in files}
    assert types == set(STRIPE_TYPES)
    for f in files:
        assert json.loads(f.read_text())["_source"].strip(), f.name
        assert one(f.stem).type != "provider.unmapped", f.name


STRIPE_TYPES = [
    "customer.created", "customer.updated", "customer.deleted",
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
    "invoice.upcoming", "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
    "charge.failed", "charge.refunded",
    "invoice.created", "invoice.finalized", "invoice.updated", "invoice.voided", "invoice.marked_uncollectible",
    "invoice.overdue", "invoice.will_be_due",
]


# -- customers ---------------------------------------------------------------------------------
def test_customer_created() -> None:
    e = one("customer.created")
    assert e.type == "subscriber.created"
    assert e.provider == "stripe" and e.providertype == "customer.created"
    # a customer is created once: keyed on the customer, so a backfilled one gets the same id
    assert e.providereventid == "cus_Ann"
    assert e.id == event_id("stripe", "cus_Ann", "subscriber.created")
    assert e.source == "/connectors/stripe" and e.specversion == "1.0"
    assert e.time == "2026-01-01T00:00:00Z"
    assert e.subject == "cus_Ann"
    s = e.data["subscriber"]
    assert s["email"] == "ann@example.com"  # case-folded
    assert s["name"] == "Ann Lee"
    assert s["phone"] == "+15555550100"
    assert s["external_ids"] == {"stripe": "cus_Ann"}
    assert s["version"] == 1767225600  # event.created orders state updates


def test_customer_updated_carries_the_old_email() -> None:
    e = one("customer.updated")
    assert e.type == "subscriber.updated"
    assert e.data["subscriber"]["email"] == "ann.lee@example.com"
    assert e.data["previous"] == {"email": "ann@example.com"}
    assert e.time == "2026-01-01T00:01:00Z"


def test_customer_deleted() -> None:
    e = one("customer.deleted")
    assert e.type == "subscriber.deleted"
    assert e.subject == "cus_Ann"
    assert e.data["subscriber"]["external_ids"] == {"stripe": "cus_Ann"}


# -- subscriptions -----------------------------------------------------------------------------
def test_subscription_created_basil_shape_reads_periods_from_items() -> None:
    e = one("customer.subscription.created")
    assert e.type == "subscription.created"
    assert e.subject == "cus_Ann"
    assert e.data["subscriber"] == {"external_ids": {"stripe": "cus_Ann"}}
    sub = e.data["subscription"]
    assert sub["id"] == "sub_Ann"
    assert sub["customer_id"] == "cus_Ann"
    assert sub["status"] == "trialing" and sub["provider_status"] == "trialing"
    assert sub["plan"] == {"id": "price_Pro", "name": "Pro monthly", "product": "prod_Coffee", "interval": "month",
                           "interval_count": 1}
    assert sub["quantity"] == 1
    assert sub["amount"] == usd(2900)
    assert sub["mrr"] == usd(2900)
    assert sub["current_period_start"] == "2025-12-01T00:00:00Z"
    assert sub["current_period_end"] == "2026-01-01T00:00:00Z"
    assert sub["trial_start"] == "2025-12-01T00:00:00Z"
    assert sub["trial_end"] == "2026-01-01T00:00:00Z"
    assert sub["cancel_at_period_end"] is False
    assert "cancel_at" not in sub and "cancelled_at" not in sub
    assert sub["version"] == 1764547200


def test_subscription_created_pre_basil_shape_reads_periods_from_the_subscription() -> None:
    sub = one("customer.subscription.created@pre-basil").data["subscription"]
    assert sub["current_period_start"] == "2026-01-01T00:00:00Z"
    assert sub["current_period_end"] == "2026-02-01T00:00:00Z"
    assert sub["plan"]["id"] == "plan_Pro"
    assert sub["quantity"] == 2
    assert sub["amount"] == usd(2900)
    assert sub["mrr"] == usd(5800)  # amount x quantity


def test_upgrade_tells_direction_and_previous_plan() -> None:
    e = one("customer.subscription.updated")
    assert e.type == "subscription.changed"
    assert e.data["subscription"]["plan"]["id"] == "price_Plus"
    assert e.data["subscription"]["quantity"] == 2
    assert e.data["subscription"]["mrr"] == usd(9800)
    assert e.data["previous"]["plan"]["id"] == "price_Pro"
    assert e.data["previous"]["quantity"] == 1
    assert e.data["previous"]["mrr"] == usd(2900)
    assert e.data["change"] == {"direction": "upgrade", "mrr_delta": usd(6900)}
    assert e.id == event_id("stripe", "evt_1QsubUpgrade", "subscription.changed")


def test_downgrade_to_a_yearly_price_compares_monthly_values() -> None:
    e = one("customer.subscription.updated@downgrade")
    assert e.type == "subscription.changed"
    assert e.data["subscription"]["plan"]["interval"] == "year"
    assert e.data["subscription"]["mrr"] == usd(2417)  # 29000 / 12, rounded
    assert e.data["previous"]["mrr"] == usd(9800)
    assert e.data["change"] == {"direction": "downgrade", "mrr_delta": usd(2417 - 9800)}


def test_cancellation_scheduled() -> None:
    e = one("customer.subscription.updated@cancellation_scheduled")
    assert e.type == "subscription.cancellation_scheduled"
    sub = e.data["subscription"]
    assert sub["cancel_at_period_end"] is True
    assert sub["cancel_at"] == "2026-02-01T00:00:00Z"
    assert sub["cancel_reason"] == "cancellation_requested"
    assert sub["cancel_feedback"] == "too_expensive"
    assert sub["status"] == "active"
    assert e.data["previous"]["cancel_at_period_end"] is False


def test_reactivation_when_the_scheduled_cancellation_is_withdrawn() -> None:
    e = one("customer.subscription.updated@reactivated")
    assert e.type == "subscription.reactivated"
    assert e.data["subscription"]["cancel_at_period_end"] is False
    assert e.data["previous"]["cancel_at"] == "2026-02-01T00:00:00Z"


@pytest.mark.parametrize("name", ["customer.subscription.updated@renewed",
                                  "customer.subscription.updated@renewed-pre-basil"])
def test_renewal_in_both_api_shapes(name: str) -> None:
    e = one(name)
    assert e.type == "subscription.renewed"
    assert e.data["subscription"]["current_period_start"] == "2026-02-01T00:00:00Z"
    assert e.data["subscription"]["current_period_end"] == "2026-03-01T00:00:00Z"
    assert e.data["previous"]["current_period_end"] == "2026-02-01T00:00:00Z"
    assert "change" not in e.data


def test_trial_conversion_is_an_activation() -> None:
    e = one("customer.subscription.updated@activated")
    assert e.type == "subscription.activated"
    assert e.data["subscription"]["status"] == "active"
    assert e.data["previous"]["status"] == "trialing"


def test_status_move_without_lifecycle_meaning_is_a_plain_update() -> None:
    e = one("customer.subscription.updated@past_due")
    assert e.type == "subscription.updated"  # the dunning story is told by payment.failed
    assert e.data["subscription"]["status"] == "past_due"
    assert e.data["previous"]["status"] == "active"


def test_collection_pause_is_a_pause_with_its_resume_date() -> None:
    e = one("customer.subscription.updated@collection_paused")
    assert e.type == "subscription.paused"
    assert e.data["subscription"]["status"] == "active"
    assert e.data["subscription"]["pause_collection"] == {"behavior": "void", "resumes_at": "2026-03-01T00:00:00Z"}


def test_pause_announced_twice_collapses_to_one_event() -> None:
    by_update = one("customer.subscription.updated@paused")
    dedicated = one("customer.subscription.paused")
    assert by_update.type == dedicated.type == "subscription.paused"
    assert by_update.id == dedicated.id
    assert dedicated.data["subscription"]["status"] == "paused"


def test_resumed() -> None:
    e = one("customer.subscription.resumed")
    assert e.type == "subscription.resumed"
    assert e.data["subscription"]["status"] == "active"
    assert e.data["subscription"]["current_period_start"] == "2026-01-06T00:00:00Z"
    assert e.providereventid == "sub_Ann:resumed:req_resume"


def test_subscription_deleted_is_cancelled_with_zero_mrr() -> None:
    e = one("customer.subscription.deleted")
    assert e.type == "subscription.cancelled"
    sub = e.data["subscription"]
    assert sub["status"] == "cancelled" and sub["provider_status"] == "canceled"
    assert sub["cancelled_at"] == "2026-02-01T00:00:00Z"
    assert sub["cancel_reason"] == "cancellation_requested"
    assert sub["mrr"] == usd(0)
    assert sub["amount"] == usd(2900)  # the price stays visible


def test_cancellation_seen_as_update_collapses_with_deleted() -> None:
    deleted = json.loads((FIXTURES / "stripe" / "customer.subscription.deleted.json").read_text())
    as_update = {**deleted, "id": "evt_other", "type": "customer.subscription.updated",
                 "data": {**deleted["data"], "previous_attributes": {"status": "active"}}}
    event = STRIPE.normalize(RawDelivery(8, "stripe", {}, json.dumps(as_update).encode(), datetime.now(timezone.utc)))
    assert [e.id for e in event] == [one("customer.subscription.deleted").id]


def test_trial_will_end() -> None:
    e = one("customer.subscription.trial_will_end")
    assert e.type == "subscription.trial_ending"
    assert e.time == "2025-12-29T00:00:00Z"  # three days before the trial end
    assert e.data["subscription"]["trial_end"] == "2026-01-01T00:00:00Z"
    assert e.data["subscription"]["mrr"] == usd(2900)


# -- invoices, charges --------------------------------------------------------------------------
def test_invoice_upcoming_is_keyed_on_the_event_not_the_missing_invoice_id() -> None:
    e = one("invoice.upcoming")
    assert e.type == "subscription.renewal_upcoming"
    assert e.providereventid == "evt_1QinvUpcoming"
    assert "id" not in e.data["invoice"]
    assert e.data["invoice"]["amount_due"] == usd(2900)
    assert e.data["invoice"]["period_end"] == "2026-02-01T00:00:00Z"
    assert e.data["subscription"] == {"id": "sub_Ann"}
    assert e.data["subscriber"]["email"] == "ann@example.com"


def test_invoice_paid() -> None:
    e = one("invoice.paid")
    assert e.type == "payment.succeeded"
    assert e.subject == "cus_Ann"
    assert e.data["payment"] == {"invoice_id": "in_1QAnnJan", "amount": usd(2900), "attempt": 1,
                                 "subscription_id": "sub_Ann"}
    assert e.data["invoice"]["number"] == "ANN-0002"
    assert e.data["invoice"]["hosted_url"] == "https://invoice.stripe.com/i/acct_1/test_in_1QAnnJan"
    assert e.data["subscription"] == {"id": "sub_Ann"}
    assert e.data["subscriber"] == {"email": "ann@example.com", "name": "Ann Lee", "external_ids": {"stripe": "cus_Ann"}}


def test_invoice_paid_and_payment_succeeded_are_one_payment() -> None:
    assert one("invoice.paid").id == one("invoice.payment_succeeded").id


def test_invoice_payment_failed_basil_shape() -> None:
    e = one("invoice.payment_failed")
    assert e.type == "payment.failed"
    assert e.providereventid == "evt_1QpayFailed"
    assert e.data["payment"] == {"invoice_id": "in_1Qfail", "amount": usd(2900), "attempt": 1,
                                 "next_retry_at": "2026-01-04T00:00:00Z", "subscription_id": "sub_Ann"}
    assert e.data["subscription"] == {"id": "sub_Ann"}  # from parent.subscription_details


def test_invoice_payment_failed_pre_basil_shape_and_its_charge_collapse() -> None:
    e = one("invoice.payment_failed@pre-basil")
    assert e.data["subscription"] == {"id": "sub_Ann"}  # from invoice.subscription
    assert e.data["payment"]["charge_id"] == "ch_1QAnn"
    assert e.id == one("charge.failed@pre-basil").id  # one failed attempt, one dunning message


def test_charge_failed() -> None:
    e = one("charge.failed")
    assert e.type == "payment.failed"
    assert e.subject == "cus_Ann"
    p = e.data["payment"]
    assert p["charge_id"] == "ch_1QAnn"
    assert p["amount"] == usd(2900)
    assert p["failure_code"] == "card_declined"
    assert p["decline_code"] == "insufficient_funds"
    assert p["failure_message"] == "Your card has insufficient funds."
    assert p["payment_intent"] == "pi_1QAnn"
    assert e.data["subscriber"]["email"] == "ann@example.com"  # billing_details.email, case-folded


def test_charge_refunded_reports_this_refund_and_the_running_total() -> None:
    e = one("charge.refunded")
    assert e.type == "payment.refunded"
    p = e.data["payment"]
    assert p["amount"] == usd(1900)  # 2900 refunded so far, 1000 before this event
    assert p["refunded_total"] == usd(2900)
    assert p["charged"] == usd(2900)
    assert p["fully_refunded"] is True


# -- robustness ---------------------------------------------------------------------------------
def test_unknown_type_is_kept_as_unmapped() -> None:
    body = json.dumps({"id": "evt_x", "object": "event", "created": 1767225600, "type": "radar.early_fraud_warning.created",
                       "data": {"object": {"id": "issfr_1"}}}).encode()
    [e] = STRIPE.normalize(RawDelivery(1, "stripe", {}, body, datetime.now(timezone.utc)))
    assert e.type == "provider.unmapped"
    assert e.providertype == "radar.early_fraud_warning.created"
    assert e.data["raw"]["data"]["object"]["id"] == "issfr_1"


@pytest.mark.parametrize("body, reason", [
    (b"not json", "not valid JSON"),
    (b"[]", "not a Stripe event"),
    (b'{"object": "event", "type": "customer.created", "created": 1}', "without data.object"),
    (b'{"id": "e", "type": "customer.subscription.created", "created": 1, "data": {"object": {"id": "sub_1"}}}',
     "required field"),
    (b'{"id": "e", "type": "customer.subscription.created", "created": 1, "data": {"object": {"id": "s",'
     b' "customer": "c", "currency": "usd", "items": {"data": [{"price": {"unit_amount": 100}, "quantity": "many"}]}}}}',
     "unexpected field value"),
    (b'{"id": "e", "type": "customer.created", "data": {"object": {"id": "c"}}}', "no event time"),
])
def test_malformed_payloads_raise_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        STRIPE.normalize(RawDelivery(1, "stripe", {}, body, datetime.now(timezone.utc)))
