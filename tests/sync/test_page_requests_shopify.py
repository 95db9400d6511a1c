"""Every page of a Shopify backfill is a documented Admin GraphQL request (``responses``): the
connection, ``first``/``after`` cursor pagination with ``pageInfo``, the ``created_at`` search
filter, the access token; and the query-cost bucket (``extensions.cost.throttleStatus``) is obeyed."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
import responses

import connectors
from connectors.shopify import backfill as sh
from connectors.shopify.client import API_VERSION, ShopifyClient
from hub import backfill
from hub.runtime import Hub

START = datetime(2026, 8, 1, tzinfo=timezone.utc)
END = datetime(2026, 10, 1, tzinfo=timezone.utc)
URL = f"https://tea-house.myshopify.com/admin/api/{API_VERSION}/graphql.json"


def cost(requested: int, available: int, restore: int = 50) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": available,
                                        "restoreRate": restore}}}


def answer(name: str, nodes: list[dict[str, Any]], cursor: str | None, extensions: dict[str, Any]) -> dict[str, Any]:
    return {"data": {name: {"nodes": nodes, "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}}},
            "extensions": extensions}


def sent(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


@pytest.fixture
def client() -> ShopifyClient:
    return ShopifyClient(f"https://tea-house.myshopify.com/admin/api/{API_VERSION}",
                         {"X-Shopify-Access-Token": "shpat_x"})


CUSTOMER = {"id": "gid://shopify/Customer/7062102134962", "firstName": "Maya", "lastName": "Lin", "state": "ENABLED",
            "verifiedEmail": True, "tags": ["newsletter"], "createdAt": "2026-08-02T15:13:58Z",
            "updatedAt": "2026-08-02T15:15:00Z",
            "defaultEmailAddress": {"emailAddress": "Maya.Lin@Example.com", "marketingState": "SUBSCRIBED",
                                    "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": "2026-08-02T15:15:00Z"},
            "defaultPhoneNumber": None, "defaultAddress": {"countryCodeV2": "US"}}


@responses.activate
def test_customer_pages_ask_for_the_window_oldest_first_and_go_on_after_the_end_cursor(client: ShopifyClient) -> None:
    responses.post(URL, json=answer("customers", [CUSTOMER], "c1", cost(101, 990)))
    responses.post(URL, json=answer("customers", [], None, cost(101, 980)))
    first = sh.SOURCE.phases[0].fetch(client, START, END, None)
    second = sh.SOURCE.phases[0].fetch(client, START, END, first.next)
    assert first.next == "c1" and second.next is None and first.wait == 0.0  # the bucket holds enough
    q1, q2 = sent(responses.calls[0]), sent(responses.calls[1])
    assert "customers(first: $first, after: $after, query: $query, sortKey: CREATED_AT)" in q1["query"]
    assert "pageInfo { hasNextPage endCursor }" in q1["query"]
    assert q1["variables"] == {"first": 100, "after": None,
                               "query": "created_at:>='2026-08-01T00:00:00Z' created_at:<'2026-10-01T00:00:00Z'"}
    assert q2["variables"]["after"] == "c1"
    headers = responses.calls[0].request.headers
    assert headers["X-Shopify-Access-Token"] == "shpat_x" and headers["Content-Type"] == "application/json"
    # the customer is the customers/create webhook: numeric id, lower-case enums, consent embedded
    [record] = first.records
    assert record.key == "bf:customers/create:7062102134962"
    assert record.headers == {"X-Shopify-Topic": "customers/create", "X-Shopify-Triggered-At": "2026-08-02T15:13:58Z"}
    assert record.body["id"] == 7062102134962 and record.body["state"] == "enabled"
    assert record.body["email_marketing_consent"] == {"state": "subscribed", "opt_in_level": "single_opt_in",
                                                      "consent_updated_at": "2026-08-02T15:15:00Z"}


@responses.activate
@pytest.mark.parametrize("index, connection, extra", [
    (1, "subscriptionContracts", {}),
    (2, "subscriptionBillingAttempts", {}),
    (3, "orders", {"lines": sh.LINE_ITEMS}),
])
def test_every_connection_is_paged_by_cursor_within_the_window(
        client: ShopifyClient, index: int, connection: str, extra: dict[str, Any]) -> None:
    responses.post(URL, json=answer(connection, [], None, cost(10, 900)))
    page = sh.SOURCE.phases[index].fetch(client, START, END, "after-this")
    body = sent(responses.calls[0])
    assert f"{connection}(first: $first, after: $after, query: $query, sortKey: CREATED_AT)" in body["query"]
    assert body["variables"]["after"] == "after-this" and body["variables"]["query"].startswith("created_at:>=")
    assert {k: body["variables"][k] for k in extra} == extra
    assert page.records == [] and page.next is None


def test_nodes_become_the_webhooks_of_their_facts() -> None:
    contract = {"id": "gid://shopify/SubscriptionContract/24398905522", "status": "CANCELLED",
                "createdAt": "2026-08-03T00:00:00Z", "updatedAt": "2026-09-01T00:00:00Z", "currencyCode": "USD",
                "revisionId": "49384756001", "customer": {"id": "gid://shopify/Customer/7062102134962"},
                "originOrder": {"id": "gid://shopify/Order/5813467463858"},
                "billingPolicy": {"interval": "MONTH", "intervalCount": 1, "minCycles": None, "maxCycles": None},
                "deliveryPolicy": {"interval": "MONTH", "intervalCount": 1}}
    created, cancelled = sh.contract_facts(contract)
    assert created.headers["X-Shopify-Topic"] == "subscription_contracts/create"
    assert cancelled.headers["X-Shopify-Topic"] == "subscription_contracts/cancel"
    assert cancelled.time == datetime(2026, 9, 1, tzinfo=timezone.utc)
    assert created.body["customer_id"] == 7062102134962 and created.body["status"] == "cancelled"
    assert created.body["billing_policy"]["interval"] == "month" and created.body["origin_order_id"] == 5813467463858
    failed = {"id": "gid://shopify/SubscriptionBillingAttempt/91230002", "idempotencyKey": "k", "ready": True,
              "createdAt": "2026-08-04T00:00:00Z", "completedAt": "2026-08-04T00:00:05Z", "order": None,
              "processingError": {"code": "PAYMENT_METHOD_DECLINED", "message": "Your card was declined."},
              "subscriptionContract": {"id": "gid://shopify/SubscriptionContract/24398905522"}}
    [record] = sh.attempt_facts(failed)
    assert record.headers["X-Shopify-Topic"] == "subscription_billing_attempts/failure"
    assert record.body["error_code"] == "payment_method_declined" and record.body["subscription_contract_id"] == 24398905522
    assert list(sh.attempt_facts({**failed, "ready": False, "processingError": None})) == []  # still processing


def test_the_wait_is_the_time_the_bucket_needs_for_the_next_page() -> None:
    assert sh.throttle_wait(cost(101, 500)) == 0.0
    assert sh.throttle_wait(cost(101, 41, restore=50)) == pytest.approx((101 - 41 + 1) / 50)
    assert sh.throttle_wait({}) == 0.0


@responses.activate
def test_the_reader_pauses_the_shared_bucket_for_the_cost_wait_and_retries_a_throttled_page(
        make_hub: Callable[..., Hub]) -> None:
    hub = make_hub(HUB_SHOPIFY_SHOP="tea-house", HUB_SHOPIFY_ACCESS_TOKEN="shpat_x")
    slept: list[float] = []
    reader = backfill.Reader(hub, connectors.get("shopify"),
                             sleep=lambda seconds: (slept.append(seconds), time.sleep(seconds)))
    # a nearly empty bucket: the page says how long the next one must wait, and the bucket every
    # process shares (billing actions too) is paused that long
    responses.post(URL, json=answer("customers", [], "c1", cost(101, 1, restore=50)))
    page = reader.page(sh.SOURCE.phases[0], START, END, None)
    assert page.wait == pytest.approx(101 / 50) and reader.limiter.paused_for(reader.key) > 1.5
    # THROTTLED (HTTP 200 with errors): paused for the refill time, then asked again
    reader.limiter.redis.delete(f"{reader.limiter.prefix}:{reader.key}:pause")  # that wait is over
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                 "extensions": cost(101, 0, restore=50)}
    responses.post(URL, json=throttled)
    responses.post(URL, json=answer("customers", [], None, cost(101, 800)))
    page = reader.page(sh.SOURCE.phases[0], START, END, "c1")
    assert page.next is None and reader.throttled == 1 and len(responses.calls) == 3
    assert sum(slept) >= 1.9  # (101 - 0) / 50 points a second
