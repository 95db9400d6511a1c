"""An applied change is recorded at once as the canonical event its provider's webhook will bring;
the webhook, when it comes, is applied to state but reconciled with it, so its rules fire once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import responses

from hub.store import Action, Event, Subscription
from hub.web import create_app
from tests.changes.support import subscription
from tests.connectors.shopify.test_verify import shopify_headers
from tests.connectors.stripe.test_pipeline import basic_header
from tests.helpers import drain, rows, stripe_headers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AUTH = {"Authorization": "Bearer admin-test-token"}
RULES = """\
rules:
  - id: on-pause
    on: [subscription.paused]
    actions:
      - klaviyo.track_event: {metric: Paused}
  - id: on-cancel
    on: [subscription.cancelled]
    actions:
      - klaviyo.track_event: {metric: Cancelled}
"""


def fired(hub: Any) -> list[str]:
    return sorted(a.rule_id for a in rows(hub, Action) if a.rule_id.startswith("on-"))


def events(hub: Any, type_: str) -> list[Event]:
    return sorted(rows(hub, Event, Event.type == type_), key=lambda e: e.origin)  # change, provider


def check_pair(hub: Any, type_: str) -> None:
    change, webhook = events(hub, type_)
    assert (change.origin, webhook.origin) == ("change", "provider")
    assert change.data["reconciled"]["with"] == webhook.id and webhook.data["reconciled"]["with"] == change.id


@pytest.fixture
def rules(tmp_path: Path) -> str:
    (tmp_path / "rules.yaml").write_text(RULES)
    return str(tmp_path)


@responses.activate
def test_a_stripe_pause_is_an_event_at_once_and_its_webhook_is_reconciled(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None, HUB_STRIPE_API_KEY="sk_test_x",
                   HUB_STRIPE_API_URL="https://stripe.test")
    client = create_app(hub).test_client()

    def post(name: str) -> None:
        payload = json.loads((FIXTURES / "stripe" / f"{name}.json").read_text())
        payload["created"] = int(time.time())
        body = json.dumps(payload).encode()
        assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
        drain(hub)

    post("customer.subscription.created")
    responses.post("https://stripe.test/v1/subscriptions/sub_Ann", json={"id": "sub_Ann", "object": "subscription"})
    made = client.post("/api/subscriptions/sub_Ann/changes", json={"change": "pause"}, headers=AUTH).json
    drain(hub)

    [change] = events(hub, "subscription.paused")
    assert change.origin == "change" and change.data["change"] == {"id": made["id"], "change": "pause"}
    assert change.subscriber_id is not None and fired(hub) == ["on-pause"]
    assert rows(hub, Subscription)[0].data["pause_collection"]["behavior"] == "keep_as_draft"

    post("customer.subscription.updated@collection_paused")  # Stripe's webhook for the same pause
    check_pair(hub, "subscription.paused")
    assert fired(hub) == ["on-pause"]  # once
    [sub] = rows(hub, Subscription)
    assert sub.status == "active" and sub.data["pause_collection"]["behavior"] == "void"  # the webhook's state
    assert "provisional" not in sub.data

    post("customer.subscription.deleted")  # another fact: planned as usual
    assert fired(hub) == ["on-cancel", "on-pause"]
    assert rows(hub, Subscription)[0].status == "cancelled"


@responses.activate
def test_a_webhook_racing_ahead_of_the_changes_event_is_the_one_that_plans(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None, HUB_STRIPE_API_KEY="sk_test_x",
                   HUB_STRIPE_API_URL="https://stripe.test")
    client = create_app(hub).test_client()
    for name in ("customer.subscription.created", "customer.subscription.updated@collection_paused"):
        payload = json.loads((FIXTURES / "stripe" / f"{name}.json").read_text())
        payload["created"] = int(time.time())
        body = json.dumps(payload).encode()
        assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    drain(hub)
    assert fired(hub) == ["on-pause"]
    responses.post("https://stripe.test/v1/subscriptions/sub_Ann", json={"id": "sub_Ann", "object": "subscription"})
    client.post("/api/subscriptions/sub_Ann/changes", json={"change": "pause"}, headers=AUTH)
    drain(hub)
    check_pair(hub, "subscription.paused")
    assert fired(hub) == ["on-pause"]


@responses.activate
def test_a_chargebee_cancel_and_pause_are_events_at_once_reconciled_with_their_webhooks(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None, HUB_CHARGEBEE_API_KEY="test_cbkey",
                   HUB_CHARGEBEE_SITE="acme-test", HUB_CHARGEBEE_WEBHOOK_USERNAME="cb",
                   HUB_CHARGEBEE_WEBHOOK_PASSWORD="pw")
    client = create_app(hub).test_client()
    api = "https://acme-test.chargebee.com/api/v2/subscriptions/cb_sub_Ann"

    def post(name: str, event_id: str | None = None, **subscription: Any) -> None:
        payload = json.loads((FIXTURES / "chargebee" / f"{name}.json").read_text())
        payload["id"] = event_id or payload["id"]
        payload["occurred_at"] = int(time.time())
        payload["content"]["subscription"].update(subscription)
        answer = client.post("/webhooks/chargebee", data=json.dumps(payload).encode(), headers={
            "Authorization": basic_header("cb", "pw"), "Content-Type": "application/json"})
        assert answer.status_code == 200
        drain(hub)

    post("subscription_created", status="active")
    responses.post(f"{api}/pause", json={"subscription": {"id": "cb_sub_Ann", "status": "paused"}})
    client.post("/api/subscriptions/cb_sub_Ann/changes", json={"change": "pause"}, headers=AUTH)
    drain(hub)
    assert fired(hub) == ["on-pause"]
    assert rows(hub, Subscription)[0].status == "paused"  # at once, before any webhook

    post("subscription_paused", resource_version=1767225600999)
    check_pair(hub, "subscription.paused")
    assert fired(hub) == ["on-pause"]
    [sub] = rows(hub, Subscription)
    assert (sub.status, sub.version) == ("paused", "1767225600999")  # the webhook's state applied over it

    responses.post(f"{api}/cancel_for_items", json={"subscription": {"id": "cb_sub_Ann", "status": "cancelled"}})
    client.post("/api/subscriptions/cb_sub_Ann/changes", json={"change": "cancel"}, headers=AUTH)
    drain(hub)
    assert fired(hub) == ["on-cancel", "on-pause"]
    post("subscription_cancelled", resource_version=1767225601999)
    check_pair(hub, "subscription.cancelled")
    assert fired(hub) == ["on-cancel", "on-pause"]
    assert rows(hub, Subscription)[0].status == "cancelled"

    post("subscription_paused", "ev_pausedAgain", resource_version=1767225602999)  # a new pause after: a fact of its own
    assert [e.origin for e in events(hub, "subscription.paused")] == ["change", "provider", "provider"]
    assert fired(hub) == ["on-cancel", "on-pause", "on-pause"]


@responses.activate
def test_a_shopify_pause_is_an_event_at_once_reconciled_with_the_contract_webhook(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None, HUB_SHOPIFY_SHOP="tea-shop",
                   HUB_SHOPIFY_ACCESS_TOKEN="shpat_x", HUB_SHOPIFY_WEBHOOK_SECRET="shpss")
    client = create_app(hub).test_client()

    def post(topic: str, n: int) -> None:
        body = (FIXTURES / "shopify" / f"{topic.replace('/', '.')}.json").read_bytes()
        headers = shopify_headers(body, "shpss", topic, webhook_id=f"wh-{n}", event_id=f"ev-{n}")
        headers["X-Shopify-Triggered-At"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
        drain(hub)

    post("subscription_contracts/create", 1)
    responses.post("https://tea-shop.myshopify.com/admin/api/2026-01/graphql.json", json={"data": {
        "subscriptionContractPause": {"contract": {"id": "gid://shopify/SubscriptionContract/24398905522",
                                                   "status": "PAUSED"}, "userErrors": []}}})
    client.post("/api/subscriptions/24398905522/changes", json={"change": "pause"}, headers=AUTH)
    drain(hub)
    assert fired(hub) == ["on-pause"] and rows(hub, Subscription)[0].status == "paused"
    post("subscription_contracts/pause", 2)
    check_pair(hub, "subscription.paused")
    assert fired(hub) == ["on-pause"] and rows(hub, Subscription)[0].status == "paused"


@responses.activate
def test_a_stripe_quantity_change_moves_the_mrr_at_once(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None, HUB_STRIPE_API_KEY="sk_test_x",
                   HUB_STRIPE_API_URL="https://stripe.test")
    client = create_app(hub).test_client()
    payload = json.loads((FIXTURES / "stripe" / "customer.subscription.created.json").read_text())
    payload["created"], payload["data"]["object"]["status"] = int(time.time()), "active"
    body = json.dumps(payload).encode()
    assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    drain(hub)
    [before] = rows(hub, Subscription)
    assert before.mrr_minor > 0 and before.quantity == 1
    responses.get("https://stripe.test/v1/subscriptions/sub_Ann", json=payload["data"]["object"])  # its item's id
    responses.post("https://stripe.test/v1/subscriptions/sub_Ann", json={"id": "sub_Ann", "object": "subscription"})
    client.post("/api/subscriptions/sub_Ann/changes", json={"change": "change_quantity", "quantity": 3}, headers=AUTH)
    drain(hub)
    [changed] = events(hub, "subscription.changed")
    assert changed.origin == "change" and changed.data["subscription"]["quantity"] == 3
    [after] = rows(hub, Subscription)
    assert (after.quantity, after.mrr_minor) == (3, before.mrr_minor * 3)
    [mrr] = rows(hub, Event, Event.type == "mrr.changed", Event.time >= changed.time)
    assert mrr.data["mrr"]["movement"] == "expansion" and mrr.data["mrr"]["delta"]["minor"] == before.mrr_minor * 2


def test_a_dry_run_change_records_no_event(make_hub, rules):
    hub = make_hub(HUB_RULES_PATH=rules, HUB_KLAVIYO_API_KEY=None)  # no Stripe key: the change runs dry
    client = create_app(hub).test_client()
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    client.post("/api/subscriptions/sub_1/changes", json={"change": "pause"}, headers=AUTH)
    drain(hub)
    assert rows(hub, Action)[0].status == "dry_run"
    assert rows(hub, Event) == [] and fired(hub) == []
