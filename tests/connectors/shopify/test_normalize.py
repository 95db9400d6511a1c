"""Shopify payloads -> canonical events, field by field, from the recorded fixtures; then the same
deliveries through the real pipeline (event-id collapse, identity by customer id, ordering)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner

import connectors
from connectors.base import RawDelivery
from hub.cli import cli
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.store import Delivery, Event, ExternalId, Subscriber, Subscription
from tests.conftest import FIXTURES
from tests.connectors.shopify.test_verify import shopify_headers
from tests.helpers import count, drain, rows

SHOPIFY = FIXTURES / "shopify"
RECEIVED = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
SHOP = connectors.get("shopify")


def fixture(name: str) -> bytes:
    return (SHOPIFY / name).read_bytes()


def normalize(name: str | bytes, topic: str, *, event_id: str | None = "evt-1", webhook_id: str = "wh-1",
              triggered_at: str | None = "2026-01-02T15:15:00Z", prefix: str = "x-shopify-") -> list[CanonicalEvent]:
    headers = {f"{prefix}topic": topic, f"{prefix}webhook-id": webhook_id,
               f"{prefix}shop-domain": "tea-house.myshopify.com", f"{prefix}api-version": "2025-07"}
    if event_id:
        headers[f"{prefix}event-id"] = event_id
    if triggered_at:
        headers[f"{prefix}triggered-at"] = triggered_at
    body = fixture(name) if isinstance(name, str) else name
    return SHOP.normalize(RawDelivery(7, "shopify", headers, body, RECEIVED))


# -- orders -----------------------------------------------------------------------------------
def test_orders_create_becomes_order_placed_with_money_in_minor_units() -> None:
    [event] = normalize("orders.create.json", "orders/create")
    assert event.type == "order.placed"
    assert event.provider == "shopify" and event.providertype == "orders/create"
    assert event.providereventid == "5813467463858"  # an order is placed once: keyed on the order
    assert event.time == "2026-01-02T15:15:00Z"  # X-Shopify-Triggered-At
    assert event.subject == "7062102134962"
    subscriber = event.data["subscriber"]
    assert subscriber["email"] == "maya.lin@example.com"
    assert subscriber["first_name"] == "Maya" and subscriber["last_name"] == "Lin"
    assert subscriber["external_ids"] == {"shopify": "7062102134962"}
    order = event.data["order"]
    assert order["id"] == "5813467463858" and order["name"] == "#1042" and order["number"] == 1042
    assert order["total"] == {"minor": 5847, "currency": "USD"}
    assert order["subtotal"] == {"minor": 5498, "currency": "USD"}
    assert order["tax"] == {"minor": 349, "currency": "USD"}
    assert order["discounts"] == {"minor": 500, "currency": "USD"}
    assert order["financial_status"] == "pending"
    assert order["created_at"] == "2026-01-02T15:14:03Z"  # -05:00 offset to UTC
    assert order["buyer_accepts_marketing"] is True
    assert order["items"][0] == {"id": "13467934916786", "product_id": "7912345678001",
                                 "variant_id": "43219876543210", "sku": "TEA-GRN-250", "title": "Green tea 250 g",
                                 "quantity": 2, "price": {"minor": 1999, "currency": "USD"}}
    assert len(order["items"]) == 2
    assert event.data["meta"] == {"topic": "orders/create", "shop_domain": "tea-house.myshopify.com",
                                  "api_version": "2025-07", "webhook_id": "wh-1", "event_id": "evt-1",
                                  "triggered_at": "2026-01-02T15:15:00Z"}


def test_orders_paid_in_yen_has_no_minor_unit() -> None:
    [event] = normalize("orders.paid.json", "orders/paid", triggered_at=None)
    assert event.type == "order.paid"
    assert event.time == "2026-01-03T00:02:10Z"  # no Triggered-At: updated_at (+09:00) in UTC
    assert event.data["order"]["total"] == {"minor": 4980, "currency": "JPY"}
    assert event.data["order"]["items"][0]["price"] == {"minor": 4528, "currency": "JPY"}
    assert event.data["order"]["financial_status"] == "paid"
    assert event.data["subscriber"]["external_ids"] == {"shopify": "7062102135001"}


def test_three_decimal_currency_and_a_guest_checkout() -> None:
    body = json.dumps({"id": 1, "email": "Guest@Example.com", "currency": "KWD", "total_price": "12.345",
                       "created_at": "2026-01-01T00:00:00Z"}).encode()
    [event] = normalize(body, "orders/create")
    assert event.data["order"]["total"] == {"minor": 12345, "currency": "KWD"}
    assert event.data["subscriber"] == {"email": "guest@example.com"}  # no customer: identified by e-mail
    assert event.subject is None


# -- customers and consent ------------------------------------------------------------------------
def test_customers_create_gives_the_subscriber_and_its_email_consent() -> None:
    created, consent = normalize("customers.create.json", "customers/create")
    assert created.type == "subscriber.created"
    assert created.subject == "7062102134962"
    assert created.data["subscriber"] == {"email": "maya.lin@example.com", "phone": "+14155550142",
                                          "first_name": "Maya", "last_name": "Lin", "state": "enabled",
                                          "verified_email": True, "tags": "newsletter", "currency": "USD",
                                          "external_ids": {"shopify": "7062102134962"}}
    assert consent.type == "subscriber.consent_changed"
    assert consent.providertype == "customers/create"
    assert consent.time == "2026-01-02T15:15:00Z"  # consent_updated_at, not the delivery
    assert consent.data["consent"] == {"channel": "email", "state": "subscribed", "provider_state": "subscribed",
                                       "opt_in_level": "single_opt_in", "updated_at": "2026-01-02T15:15:00Z"}
    assert consent.data["subscriber"]["external_ids"] == {"shopify": "7062102134962"}


def test_a_customer_update_that_repeats_the_consent_adds_no_new_consent_event() -> None:
    _, create_consent = normalize("customers.create.json", "customers/create", event_id="evt-create")
    updated, email_consent, sms_consent = normalize("customers.update.json", "customers/update",
                                                    event_id="evt-update")
    assert updated.type == "subscriber.updated" and updated.data["subscriber"]["tags"] == "newsletter, vip"
    assert updated.id != create_consent.id
    assert email_consent.id == create_consent.id  # same consent, same canonical id: stored once
    assert sms_consent.type == "subscriber.consent_changed"
    assert sms_consent.data["consent"]["channel"] == "sms"
    assert sms_consent.data["consent"]["state"] == "subscribed"
    assert sms_consent.data["consent"]["collected_from"] == "SHOPIFY"
    assert sms_consent.data["subscriber"] == {"phone": "+14155550142", "external_ids": {"shopify": "7062102134962"}}
    assert sms_consent.time == "2026-02-10T08:00:00Z"


def test_email_marketing_consent_topic() -> None:
    [event] = normalize("customers_email_marketing_consent.update.json", "customers_email_marketing_consent/update",
                        triggered_at=None)
    assert event.type == "subscriber.consent_changed"
    assert event.subject == "7062102134962"
    assert event.time == "2026-03-01T12:00:00Z"  # "2026-03-01 12:00:00.000Z"
    assert event.data["subscriber"] == {"email": "maya.lin@example.com", "external_ids": {"shopify": "7062102134962"}}
    assert event.data["consent"]["channel"] == "email"
    assert event.data["consent"]["state"] == "unsubscribed"
    assert event.data["consent"]["updated_at"] == "2026-03-01T12:00:00Z"


def test_the_consent_topic_and_a_customer_update_reporting_one_change_give_one_event() -> None:
    [from_topic] = normalize("customers_email_marketing_consent.update.json",
                             "customers_email_marketing_consent/update", event_id="evt-consent")
    customer = json.loads(fixture("customers.update.json"))
    customer["email_marketing_consent"] = {"state": "unsubscribed", "opt_in_level": "single_opt_in",
                                           "consent_updated_at": "2026-03-01T07:00:00-05:00"}  # same instant
    _, from_customer, _ = normalize(json.dumps(customer).encode(), "customers/update", event_id="evt-update")
    assert from_customer.id == from_topic.id
    assert from_topic.providereventid == "customer/7062102134962/email-consent/unsubscribed/2026-03-01T12:00:00Z"


def test_sms_marketing_consent_topic() -> None:
    [event] = normalize("customers_marketing_consent.update.json", "customers_marketing_consent/update")
    assert event.type == "subscriber.consent_changed"
    assert event.data["consent"]["channel"] == "sms"
    assert event.data["consent"]["state"] == "unsubscribed"
    assert event.data["consent"]["collected_from"] == "OTHER"
    assert event.data["subscriber"]["external_ids"] == {"shopify": "7062102134962"}


# -- subscription contracts and billing attempts ------------------------------------------------------
@pytest.mark.parametrize("topic, canonical, status", [
    ("create", "subscription.created", "active"),
    ("update", "subscription.changed", "active"),
    ("activate", "subscription.resumed", "active"),
    ("pause", "subscription.paused", "paused"),
    ("cancel", "subscription.cancelled", "cancelled"),
    ("expire", "subscription.cancelled", "expired"),
    ("fail", "subscription.changed", "past_due"),
])
def test_subscription_contract_topics(topic: str, canonical: str, status: str) -> None:
    [event] = normalize(f"subscription_contracts.{topic}.json", f"subscription_contracts/{topic}")
    assert event.type == canonical
    assert event.subject == "7062102134962"
    # the contract carries only a customer id: state.py attaches it to that customer's subscriber
    assert event.data["subscriber"] == {"external_ids": {"shopify": "7062102134962"}}
    sub = event.data["subscription"]
    assert sub["id"] == "24398905522" and sub["customer_id"] == "7062102134962"
    assert sub["status"] == status
    assert sub["plan"] == {"interval": "month", "interval_count": 1}
    assert sub["currency"] == "USD"
    assert sub["version"].isdigit()  # revision_id, for ordering
    assert sub["origin_order_id"] == "5813467463858"
    assert "amount" not in sub and "mrr" not in sub  # contracts carry no money (GraphQL lookup needed)


def test_billing_attempt_success_and_failure() -> None:
    [ok] = normalize("subscription_billing_attempts.success.json", "subscription_billing_attempts/success")
    assert ok.type == "payment.succeeded"
    assert ok.data["subscription"] == {"id": "24398905522"}
    assert ok.data["payment"] == {"id": "91230001", "subscription_id": "24398905522", "order_id": "5813467800001",
                                  "idempotency_key": "renewal-24398905522-2026-02", "ready": True}
    [failed] = normalize("subscription_billing_attempts.failure.json", "subscription_billing_attempts/failure",
                         triggered_at=None)
    assert failed.type == "payment.failed"
    assert failed.time == "2026-04-01T12:00:00Z"  # no time in the payload or headers: when it was received
    assert failed.data["payment"]["failure_code"] == "payment_method_declined"
    assert failed.data["payment"]["failure_message"] == "Your card was declined."
    assert "order_id" not in failed.data["payment"]


# -- compliance -----------------------------------------------------------------------------------
def test_mandatory_compliance_topics() -> None:
    [request] = normalize("customers.data_request.json", "customers/data_request")
    assert request.type == "subscriber.data_requested"
    assert request.subject == "7062102134962"
    assert request.data["subscriber"] == {"email": "maya.lin@example.com", "phone": "+14155550142",
                                          "external_ids": {"shopify": "7062102134962"}}
    assert request.data["privacy"] == {"request_id": "9911", "orders": [5813467463858], "shop_id": "60123456789",
                                       "shop_domain": "tea-house.myshopify.com"}
    [redact] = normalize("customers.redact.json", "customers/redact")
    assert redact.type == "subscriber.redact_requested"
    assert redact.data["subscriber"]["external_ids"] == {"shopify": "7062102134962"}
    assert redact.data["privacy"]["orders"] == [5813467463858, 5813467800001]
    [shop] = normalize("shop.redact.json", "shop/redact")
    assert shop.type == "shop.redact_requested"
    assert shop.subject == "60123456789"
    assert shop.data["privacy"] == {"shop_id": "60123456789", "shop_domain": "tea-house.myshopify.com"}


# -- identity of events, unknown and malformed payloads ---------------------------------------------
def test_canonical_ids_follow_the_event_id_not_the_delivery() -> None:
    topic = "subscription_contracts/update"
    first = normalize("subscription_contracts.update.json", topic, event_id="E", webhook_id="W1")
    second = normalize("subscription_contracts.update.json", topic, event_id="E", webhook_id="W2")
    other = normalize("subscription_contracts.update.json", topic, event_id="F", webhook_id="W3")
    assert [e.id for e in first] == [e.id for e in second] != [e.id for e in other]
    no_event_id = normalize("subscription_contracts.update.json", topic, event_id=None, webhook_id="W9")
    assert no_event_id[0].providereventid == "W9"


@pytest.mark.parametrize("fixture_name, topic, object_id", [
    ("orders.create.json", "orders/create", "5813467463858"),
    ("orders.paid.json", "orders/paid", "5813467499001"),
    ("customers.create.json", "customers/create", "7062102134962"),
    ("subscription_contracts.create.json", "subscription_contracts/create", "24398905522"),
    ("subscription_contracts.cancel.json", "subscription_contracts/cancel", "24398905522"),
    ("subscription_billing_attempts.failure.json", "subscription_billing_attempts/failure", "91230002"),
])
def test_facts_that_happen_once_are_keyed_on_the_object_so_a_backfill_gives_the_same_event(
        fixture_name: str, topic: str, object_id: str) -> None:
    first = normalize(fixture_name, topic, event_id="E1", webhook_id="W1")
    again = normalize(fixture_name, topic, event_id=None, webhook_id="W2")  # as hub backfill records it
    assert first[0].providereventid == object_id and first[0].id == again[0].id


def test_unprefixed_header_flavour_normalizes_the_same() -> None:
    prefixed = normalize("orders.create.json", "orders/create")
    unprefixed = normalize("orders.create.json", "orders/create", prefix="shopify-")
    assert [e.to_dict() for e in prefixed] == [e.to_dict() for e in unprefixed]


def test_normalizing_twice_gives_identical_events() -> None:
    for path in sorted(SHOPIFY.glob("*.json")):
        topic = path.stem.replace(".", "/", 1).split("-")[0]
        assert [e.to_dict() for e in normalize(path.name, topic)] == \
               [e.to_dict() for e in normalize(path.name, topic)], path.name


def test_unknown_topic_is_kept_as_provider_unmapped() -> None:
    [event] = normalize(b'{"id": 5, "updated_at": "2026-01-01T00:00:00Z"}', "app/uninstalled")
    assert event.type == "provider.unmapped"
    assert event.providertype == "app/uninstalled"
    assert event.data["raw"] == {"id": 5, "updated_at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("body, topic, reason", [
    (b"not json", "orders/create", "not valid JSON"),
    (b"[1, 2]", "orders/create", "not a JSON object"),
    (b'{"id": 1, "currency": "USD", "total_price": "12,50"}', "orders/create", "total_price"),
    (b'{"shop_id": 1, "customer": {}}', "customers/redact", "customer.id"),
    (b'{"id": 1}', "subscription_contracts/update", "customer_id"),
])
def test_malformed_payloads_raise_payload_error(body: bytes, topic: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize(body, topic)


# -- through the pipeline ------------------------------------------------------------------------------
def _post(client: Any, name: str, topic: str, **kw: Any) -> Any:
    body = fixture(name)
    answer = client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, "shpss", topic, **kw))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


@pytest.fixture
def shop_client(make_hub: Any) -> Any:
    from hub.web import create_app

    hub = make_hub(HUB_SHOPIFY_WEBHOOK_SECRET="shpss")
    return hub, create_app(hub).test_client()


def test_one_event_delivered_to_two_subscriptions_is_recorded_once(shop_client: Any) -> None:
    hub, client = shop_client
    _post(client, "orders.create.json", "orders/create", webhook_id="W1", event_id="E1")
    _post(client, "orders.create.json", "orders/create", webhook_id="W2", event_id="E1")
    drain(hub)
    assert count(hub, Delivery) == 2
    assert [d.status for d in rows(hub, Delivery)] == ["processed", "processed"]
    assert count(hub, Event, Event.origin == "provider") == 1  # (derived events aside)


def test_contract_and_billing_events_attach_to_the_customers_subscriber(shop_client: Any) -> None:
    hub, client = shop_client
    _post(client, "customers.create.json", "customers/create", webhook_id="W1", event_id="E1")
    _post(client, "subscription_contracts.create.json", "subscription_contracts/create", webhook_id="W2",
          event_id="E2")
    _post(client, "subscription_billing_attempts.failure.json", "subscription_billing_attempts/failure",
          webhook_id="W3", event_id="E3")
    drain(hub)
    [subscriber] = rows(hub, Subscriber)
    assert subscriber.email == "maya.lin@example.com"
    assert [(x.provider, x.external_id) for x in rows(hub, ExternalId)] == [("shopify", "7062102134962")]
    [contract] = rows(hub, Subscription)
    assert (contract.external_id, contract.subscriber_id, contract.status) == ("24398905522", subscriber.id, "active")
    failed = rows(hub, Event, Event.type == "payment.failed")
    assert [e.subscriber_id for e in failed] == [subscriber.id]


def test_an_older_contract_update_does_not_overwrite_a_newer_one(shop_client: Any) -> None:
    hub, client = shop_client
    _post(client, "subscription_contracts.pause.json", "subscription_contracts/pause", webhook_id="W2",
          event_id="E2")
    drain(hub)
    # the update was triggered before the pause but arrives after it (Shopify retries keep the original time)
    body = fixture("subscription_contracts.update.json")
    headers = {**shopify_headers(body, "shpss", "subscription_contracts/update", webhook_id="W1", event_id="E1"),
               "X-Shopify-Triggered-At": "2026-01-02T15:00:00Z"}
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    drain(hub)
    assert count(hub, Event, Event.origin == "provider") == 2  # recorded...
    [contract] = rows(hub, Subscription)
    assert contract.status == "paused"  # ...but the newer state stands


def test_hub_normalize_cli_for_shopify() -> None:
    path = SHOPIFY / "orders.paid.json"
    result = CliRunner().invoke(cli, ["normalize", "shopify", str(path), "-H", "X-Shopify-Topic: orders/paid",
                                      "-H", "X-Shopify-Event-Id: cli-1"])
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    event = json.loads(line)
    assert event["type"] == "order.paid" and event["providereventid"] == "5813467499001"  # keyed on the order
    assert event["data"]["meta"]["event_id"] == "cli-1"
    assert event["data"]["order"]["total"] == {"minor": 4980, "currency": "JPY"}


def test_customers_redact_reaches_the_privacy_effect(shop_client: Any) -> None:
    hub, client = shop_client
    _post(client, "customers.create.json", "customers/create", webhook_id="W1", event_id="E1")
    drain(hub)
    assert [s.email for s in rows(hub, Subscriber)] == ["maya.lin@example.com"]
    _post(client, "customers.redact.json", "customers/redact", webhook_id="W2", event_id="E2")
    drain(hub)
    assert not [s for s in rows(hub, Subscriber) if s.email == "maya.lin@example.com"]
    assert not [d for d in rows(hub, Delivery) if b"Maya.Lin@Example.com" in (d.body or b"")]


def test_an_order_on_payment_terms_says_what_is_due_and_when() -> None:
    [event] = normalize("orders.create@payment_terms.json", "orders/create")
    order = event.data["order"]
    assert order["amount_due"] == {"minor": 5847, "currency": "USD"}
    assert order["due_at"] == "2026-02-01T20:14:03Z"
    assert order["payment_terms"] == "Net 30"
    assert event.data["subscriber"]["country"] == "FR"   # the billing country: a time zone fallback
    [paid] = normalize("orders.paid.json", "orders/paid")
    assert "due_at" not in paid.data["order"]
