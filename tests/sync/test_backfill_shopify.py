"""hub backfill shopify, end to end against Shopify's Admin GraphQL API served on 127.0.0.1
(tests/fakeproviders.py FakeShopify: cursor pagination, the created_at filter, the query-cost bucket)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select

import connectors
from connectors.shopify import backfill as shopify_backfill
from hub import backfill
from hub.kernel.events import event_id
from hub.kernel.values import rfc3339
from hub.runtime import Hub
from hub.store import Action, Attempt, Event, Subscriber, Subscription, utcnow
from hub.store.models import ActionStatus
from hub.store.sync_models import BackfillRun
from hub.web import create_app
from tests.connectors.shopify.test_verify import shopify_headers
from tests.fakeproviders import FakeShopify
from tests.helpers import count, drain, rows

SECRET = "shpss_backfill"


def ago(days: float) -> str:
    return rfc3339((utcnow() - timedelta(days=days)).replace(microsecond=0))


def gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def customer(n: int, days: float, consent: str | None = None) -> dict[str, Any]:
    email = {"emailAddress": f"shopper{n}@example.com", "marketingState": consent or "NOT_SUBSCRIBED",
             "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": ago(days) if consent else None}
    return {"id": gid("Customer", 700 + n), "firstName": f"Shopper{n}", "lastName": "Doe", "state": "ENABLED",
            "verifiedEmail": True, "tags": ["vip"], "createdAt": ago(days), "updatedAt": ago(days),
            "defaultEmailAddress": email, "defaultPhoneNumber": None, "defaultAddress": {"countryCodeV2": "US"}}


def contract(n: int, customer_n: int, days: float, status: str = "ACTIVE", ended: float | None = None
             ) -> dict[str, Any]:
    return {"id": gid("SubscriptionContract", 900 + n), "status": status, "createdAt": ago(days),
            "updatedAt": ago(ended if ended is not None else days), "currencyCode": "USD", "revisionId": "5",
            "customer": {"id": gid("Customer", 700 + customer_n)}, "originOrder": {"id": gid("Order", 500 + n)},
            "billingPolicy": {"interval": "MONTH", "intervalCount": 1, "minCycles": None, "maxCycles": None},
            "deliveryPolicy": {"interval": "MONTH", "intervalCount": 1}}


def attempt(n: int, contract_n: int, days: float, *, order: int | None = None, error: str | None = None,
            ready: bool = True) -> dict[str, Any]:
    return {"id": gid("SubscriptionBillingAttempt", 300 + n), "idempotencyKey": f"renewal-{n}", "ready": ready,
            "createdAt": ago(days), "completedAt": ago(days) if ready else None,
            "order": {"id": gid("Order", order)} if order else None,
            "processingError": {"code": error, "message": "Your card was declined."} if error else None,
            "subscriptionContract": {"id": gid("SubscriptionContract", 900 + contract_n)}}


def order(n: int, customer_n: int, days: float, status: str = "PAID") -> dict[str, Any]:
    money = {"shopMoney": {"amount": "29.00"}}
    return {"id": gid("Order", 500 + n), "name": f"#{1000 + n}", "email": f"shopper{customer_n}@example.com",
            "createdAt": ago(days), "processedAt": ago(days), "cancelledAt": None, "updatedAt": ago(days),
            "currencyCode": "USD", "test": False, "tags": [], "displayFinancialStatus": status,
            "displayFulfillmentStatus": "UNFULFILLED", "totalPriceSet": money, "subtotalPriceSet": money,
            "totalTaxSet": {"shopMoney": {"amount": "0.00"}}, "totalDiscountsSet": {"shopMoney": {"amount": "0.00"}},
            "totalOutstandingSet": {"shopMoney": {"amount": "0.00"}},
            "customer": {"id": gid("Customer", 700 + customer_n), "firstName": f"Shopper{customer_n}",
                         "lastName": "Doe", "defaultEmailAddress": {"emailAddress": f"shopper{customer_n}@example.com"}},
            "lineItems": {"nodes": [{"id": gid("LineItem", 800 + n), "sku": "TEA", "title": "Tea", "quantity": 1,
                                     "variant": {"id": gid("ProductVariant", 40)},
                                     "originalUnitPriceSet": money}]}}


def seed(fake: FakeShopify) -> dict[str, int]:
    """Three customers (one subscribed to e-mail), two contracts (one cancelled), three billing
    attempts (a success, an old failure, one still processing) and two orders (one paid); all
    history older than the horizon but one recent failure."""
    fake.nodes["customers"] += [customer(1, 200, consent="SUBSCRIBED"), customer(2, 190), customer(3, 180)]
    fake.nodes["contracts"] += [contract(1, 1, 150), contract(2, 2, 140, status="CANCELLED", ended=100)]
    fake.nodes["attempts"] += [attempt(1, 1, 120, order=601), attempt(2, 2, 110, error="CARD_DECLINED"),
                               attempt(3, 1, 2, error="INSUFFICIENT_FUNDS"), attempt(4, 1, 1, ready=False)]
    fake.nodes["orders"] += [order(1, 1, 150), order(2, 3, 130, status="PENDING")]
    # customers/create x3 + contracts/create x2 + contracts/cancel + 3 finished attempts + orders/create x2 + paid
    return {"records": 3 + 2 + 1 + 3 + 2 + 1, "subscribers": 3, "contracts": 2}


@pytest.fixture
def shopify() -> Iterator[FakeShopify]:
    fake = FakeShopify()
    yield fake
    fake.close()


@pytest.fixture
def shopify_hub(make_hub: Callable[..., Hub], shopify: FakeShopify, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setattr(shopify_backfill, "PAGE_SIZE", 2)  # many pages from a little data
    monkeypatch.setattr(shopify_backfill, "ORDERS_PAGE_SIZE", 1)
    return make_hub(HUB_SHOPIFY_SHOP="tea-house", HUB_SHOPIFY_ACCESS_TOKEN="shpat_backfill",
                    HUB_SHOPIFY_API_URL=shopify.url, HUB_SHOPIFY_WEBHOOK_SECRET=SECRET)


def run(hub: Hub, **kwargs: Any) -> backfill.Counts:
    return backfill.Run(hub, connectors.get("shopify"), **kwargs).start(utcnow() - timedelta(days=400))


def test_a_shopify_backfill_records_customers_contracts_attempts_and_orders_as_the_webhooks_would(
        shopify_hub: Hub, shopify: FakeShopify) -> None:
    expected = seed(shopify)
    counts = run(shopify_hub)
    assert counts.fetched == expected["records"] and counts.recorded == expected["records"] and counts.failed == 0
    subscribers = {s.email for s in rows(shopify_hub, Subscriber)}
    assert subscribers == {"shopper1@example.com", "shopper2@example.com", "shopper3@example.com"}
    subs = {s.external_id: s.status for s in rows(shopify_hub, Subscription)}
    assert subs == {"901": "active", "902": "cancelled"}
    types = {(e.provider_event_id, e.type) for e in rows(shopify_hub, Event, Event.origin == "backfill")}
    assert {("701", "subscriber.created"), ("901", "subscription.created"), ("902", "subscription.cancelled"),
            ("301", "payment.succeeded"), ("302", "payment.failed"), ("303", "payment.failed"),
            ("501", "order.placed"), ("501", "order.paid"), ("502", "order.placed")} <= types
    assert not any(pid == "304" for pid, _ in types)  # still processing: no outcome yet
    assert ("502", "order.paid") not in types
    # the consent embedded in the customer became the webhooks' consent event
    assert any(t == "subscriber.consent_changed" and pid.startswith("customer/701/email-consent/subscribed/")
               for pid, t in types)
    # every query asked for its window, oldest first, and the cursor of the page before it
    asked = [q["variables"] for q in shopify.queries]
    assert all(v["query"].startswith("created_at:>='") for v in asked)
    assert [v["after"] for v in asked[:2]] == [None, "2"]
    assert shopify.throttled == 0
    # history older than the horizon is recorded, never sent
    drain(shopify_hub)
    horizon = backfill.horizon_start(shopify_hub)
    with shopify_hub.store.session() as s:
        sent_old = s.execute(select(Attempt.id).join(Action).join(Event, Event.id == Action.event_id)
                             .where(Event.time < horizon)).all()
        old = s.execute(select(Action.status).join(Event, Event.id == Action.event_id)
                        .where(Event.time < horizon)).scalars().all()
    assert sent_old == [] and set(old) <= {ActionStatus.CANCELLED, ActionStatus.SUPPRESSED}


def test_a_second_shopify_backfill_adds_nothing_and_a_webhook_of_a_backfilled_fact_neither(
        shopify_hub: Hub, shopify: FakeShopify) -> None:
    seed(shopify)
    run(shopify_hub)
    events, actions = count(shopify_hub, Event), count(shopify_hub, Action)
    again = run(shopify_hub)
    assert again.recorded == 0 and again.events == 0 and again.present == again.fetched > 0
    # Shopify delivers orders/paid for order 501 and the failed attempt 303, with event ids of their own
    client = create_app(shopify_hub).test_client()
    paid = {"id": 501, "admin_graphql_api_id": gid("Order", 501), "name": "#1001", "currency": "USD",
            "total_price": "29.00", "financial_status": "paid", "created_at": ago(150),
            "customer": {"id": 701, "email": "shopper1@example.com"}, "line_items": []}
    failed = {"id": 303, "admin_graphql_api_id": gid("SubscriptionBillingAttempt", 303), "subscription_contract_id": 901,
              "idempotency_key": "renewal-3", "order_id": None, "ready": True, "error_code": "insufficient_funds",
              "error_message": "Your card was declined."}
    for topic, payload in (("orders/paid", paid), ("subscription_billing_attempts/failure", failed)):
        body = json.dumps(payload).encode()
        headers = shopify_headers(body, SECRET, topic, webhook_id=f"W-{topic}", event_id=f"E-{topic}")
        assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    drain(shopify_hub)
    assert (count(shopify_hub, Event), count(shopify_hub, Action)) == (events, actions)
    assert count(shopify_hub, Event, Event.id == event_id("shopify", "303", "payment.failed")) == 1


def test_an_interrupted_shopify_backfill_resumes_after_the_last_recorded_page(
        shopify_hub: Hub, shopify: FakeShopify) -> None:
    expected = seed(shopify)
    first = run(shopify_hub, max_pages=3)
    assert rows(shopify_hub, BackfillRun)[0].pages == 3 and first.fetched < expected["records"]
    resumed = backfill.Run(shopify_hub, connectors.get("shopify")).resume()
    assert resumed.fetched == expected["records"] and resumed.recorded == expected["records"]
    assert count(shopify_hub, Subscriber) == expected["subscribers"]
    cursors = [(q["query"].split("(", 1)[0], q["variables"]["after"]) for q in shopify.queries]
    assert len(cursors) == len(set(cursors)), "no page is read twice"


def test_pages_wait_for_the_cost_bucket_instead_of_being_throttled(
        make_hub: Callable[..., Hub], monkeypatch: pytest.MonkeyPatch) -> None:
    # a bucket of 30 points refilled at 20 a second; the pages ask for 3 (orders: 1 + 1 + 10 lines = 12)
    fake = FakeShopify(bucket=30, restore=20)
    try:
        monkeypatch.setattr(shopify_backfill, "PAGE_SIZE", 2)
        monkeypatch.setattr(shopify_backfill, "ORDERS_PAGE_SIZE", 1)
        hub = make_hub(HUB_SHOPIFY_SHOP="tea-house", HUB_SHOPIFY_ACCESS_TOKEN="shpat_backfill",
                       HUB_SHOPIFY_API_URL=fake.url)
        fake.nodes["orders"] += [order(n, 1, 100 + n) for n in range(1, 7)]  # 6 pages of 12 points
        counts = run(hub)
        assert counts.fetched == 6 + 6  # placed and paid
        assert fake.throttled == 0  # each page waited for the points the next one asks for
        assert len(fake.queries) == 6 + 3  # one per page, plus one empty page of each other connection
    finally:
        fake.close()
