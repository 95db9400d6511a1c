"""Stripe and Chargebee deliveries through the real endpoint and ingest worker (PostgreSQL + Redis)."""

from __future__ import annotations

from pathlib import Path

from connectors.chargebee.verify import header as basic_header
from hub.store import Delivery, Event
from tests.conftest import FIXTURES
from tests.helpers import count, drain, rows, stripe_headers


def _post_stripe(client, name: str) -> None:  # type: ignore[no-untyped-def]
    body = (FIXTURES / "stripe" / f"{name}.json").read_bytes()
    assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200


def test_invoice_paid_and_payment_succeeded_make_one_payment_event(make_hub, tmp_path: Path) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_RULES_PATH=str(tmp_path))  # no rules: this is about events only
    client = create_app(hub).test_client()
    _post_stripe(client, "invoice.paid")
    _post_stripe(client, "invoice.payment_succeeded")
    drain(hub)
    assert count(hub, Delivery) == 2  # two Stripe events, both stored
    assert [d.status for d in rows(hub, Delivery)] == ["processed", "processed"]
    [event] = rows(hub, Event)
    assert event.type == "payment.succeeded" and event.provider_event_id == "in_1QAnnJan"


def test_pause_announced_twice_is_recorded_once(make_hub, tmp_path: Path) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_RULES_PATH=str(tmp_path))
    client = create_app(hub).test_client()
    _post_stripe(client, "customer.subscription.updated@paused")
    _post_stripe(client, "customer.subscription.paused")
    drain(hub)
    assert [e.type for e in rows(hub, Event)] == ["subscription.paused"]


def test_malformed_verified_stripe_payload_is_stored_failed_with_reason(make_hub, tmp_path: Path) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_RULES_PATH=str(tmp_path))
    body = b'{"id": "evt_bad", "object": "event", "type": "customer.subscription.created", "created": 1767225600,' \
           b' "data": {"object": {"id": "sub_1"}}}'
    assert create_app(hub).test_client().post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    drain(hub)
    [delivery] = rows(hub, Delivery)
    assert delivery.status == "failed"
    assert "required field 'data.object.customer'" in delivery.error
    assert count(hub, Event) == 0


def test_chargebee_delivery_becomes_events(make_hub, tmp_path: Path) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_RULES_PATH=str(tmp_path), HUB_CHARGEBEE_WEBHOOK_USERNAME="cb",
                   HUB_CHARGEBEE_WEBHOOK_PASSWORD="pw:with:colons")
    client = create_app(hub).test_client()
    for name in ("subscription_created", "payment_failed"):
        body = (FIXTURES / "chargebee" / f"{name}.json").read_bytes()
        answer = client.post("/webhooks/chargebee", data=body, headers={
            "Authorization": basic_header("cb", "pw:with:colons"), "Content-Type": "application/json"})
        assert answer.status_code == 200
    drain(hub)
    [delivery_a, delivery_b] = rows(hub, Delivery)
    assert {delivery_a.dedup_key, delivery_b.dedup_key} == {"ev_subCreated", "ev_payFailed"}
    assert "authorization" not in delivery_a.headers  # the password is never stored
    assert sorted(e.type for e in rows(hub, Event)) == ["payment.failed", "subscription.created"]
