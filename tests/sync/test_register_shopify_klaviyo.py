"""hub connectors register for Shopify (one webhook subscription per mapped topic, Admin GraphQL) and
Klaviyo (one system webhook, Webhooks API): idempotent, and repaired by the health check. Request
shapes with ``responses``; the rest against the providers' APIs served on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import responses
from click.testing import CliRunner

from connectors.klaviyo import webhooks as klaviyo_webhooks
from connectors.shopify import webhooks as shopify_webhooks
from connectors.shopify.client import API_VERSION, ShopifyClient
from hub import sync
from hub.cli import cli
from hub.config import load_settings
from hub.runtime import Hub
from hub.store.sync_models import WebhookRegistration
from tests.fakeproviders import FakeKlaviyoWebhooks, FakeShopify
from tests.helpers import rows

HUB_URL = "https://hub.example.com"


def register(name: str, url: str = HUB_URL) -> Any:
    return CliRunner().invoke(cli, ["connectors", "register", name, "--url", url])


# -- Shopify -----------------------------------------------------------------------------------------
@pytest.fixture
def shopify() -> Iterator[FakeShopify]:
    fake = FakeShopify()
    yield fake
    fake.close()


@pytest.fixture
def shopify_hub(make_hub: Callable[..., Hub], shopify: FakeShopify, tmp_path: Path) -> Hub:
    return make_hub(HUB_SHOPIFY_SHOP="tea-house", HUB_SHOPIFY_ACCESS_TOKEN="shpat_register",
                    HUB_SHOPIFY_API_URL=shopify.url, HUB_SECRETS_FILE=str(tmp_path / "secrets.env"))


def at(fake: FakeShopify, url: str) -> list[str]:
    return sorted(s["topic"] for s in fake.subscriptions.values() if s["uri"] == url)


def test_shopify_register_subscribes_each_mapped_topic_once_and_a_second_run_changes_nothing(
        shopify_hub: Hub, shopify: FakeShopify) -> None:
    url = f"{HUB_URL}/webhooks/shopify"
    first = register("shopify")
    assert first.exit_code == 0, first.output
    wanted = shopify_webhooks.topics()
    assert at(shopify, url) == wanted and len(shopify.subscriptions) == len(wanted)
    assert {"ORDERS_PAID", "SUBSCRIPTION_BILLING_ATTEMPTS_FAILURE", "CUSTOMERS_UPDATE"} <= set(wanted)
    assert not {"CUSTOMERS_REDACT", "SHOP_REDACT", "CUSTOMERS_DATA_REQUEST"} & set(wanted)  # app configuration
    assert f"created -> {url}" in first.output and f"{len(wanted)} created, 0 moved, 0 unchanged" in first.output
    assert "HUB_SHOPIFY_WEBHOOK_SECRET" in first.output  # Shopify signs with the app's client secret
    again = register("shopify")
    assert "unchanged" in again.output and len(shopify.subscriptions) == len(wanted)
    creates = [q for q in shopify.queries if "webhookSubscriptionCreate(" in q["query"]]
    assert len(creates) == len(wanted)
    assert creates[0]["variables"]["webhookSubscription"] == {"uri": url, "format": "JSON"}


def test_shopify_register_adopts_what_exists_and_moves_the_hubs_subscriptions_to_a_new_url(
        shopify_hub: Hub, shopify: FakeShopify) -> None:
    url, new_url = f"{HUB_URL}/webhooks/shopify", "https://new-hub.example.com/webhooks/shopify"
    shopify.subscriptions["gid://shopify/WebhookSubscription/900"] = {
        "id": "gid://shopify/WebhookSubscription/900", "topic": "ORDERS_PAID", "uri": url, "format": "JSON"}
    shopify.subscriptions["gid://shopify/WebhookSubscription/901"] = {  # another integration of the app
        "id": "gid://shopify/WebhookSubscription/901", "topic": "ORDERS_PAID", "uri": "https://erp.example.com/x",
        "format": "JSON"}
    assert register("shopify").exit_code == 0
    wanted = shopify_webhooks.topics()
    assert at(shopify, url) == wanted and len(shopify.subscriptions) == len(wanted) + 1
    moved = register("shopify", "https://new-hub.example.com")
    assert f"0 created, {len(wanted)} moved" in moved.output
    assert at(shopify, new_url) == wanted and at(shopify, url) == []
    assert shopify.subscriptions["gid://shopify/WebhookSubscription/901"]["uri"] == "https://erp.example.com/x"
    assert len(shopify.subscriptions) == len(wanted) + 1
    assert rows(shopify_hub, WebhookRegistration)[0].remote_id == new_url


def test_shopify_health_notices_a_removed_subscription_alerts_and_subscribes_it_again(
        shopify_hub: Hub, shopify: FakeShopify, caplog: pytest.LogCaptureFixture) -> None:
    url = f"{HUB_URL}/webhooks/shopify"
    sync.register(shopify_hub, "shopify", HUB_URL)
    removed = next(k for k, s in shopify.subscriptions.items() if s["topic"] == "ORDERS_PAID")
    del shopify.subscriptions[removed]  # Shopify removes a subscription after repeated failures
    with caplog.at_level(logging.ERROR, logger="hub.sync"):
        report = next(r for r in sync.health(shopify_hub) if r["connector"] == "shopify")
    assert report["subscription"]["status"] == "incomplete"
    assert report["subscription"]["repair"]["outcome"] == "created"
    assert any("operational alert: shopify webhook subscription" in r.getMessage() for r in caplog.records)
    assert at(shopify, url) == shopify_webhooks.topics()
    healthy = next(r for r in sync.health(shopify_hub) if r["connector"] == "shopify")
    assert healthy["subscription"] == {"id": url, "status": "enabled", "url_ok": True}


@responses.activate
def test_shopify_subscription_requests_are_the_documented_graphql_operations() -> None:
    endpoint = f"https://tea-house.myshopify.com/admin/api/{API_VERSION}/graphql.json"
    client = ShopifyClient(f"https://tea-house.myshopify.com/admin/api/{API_VERSION}",
                           {"X-Shopify-Access-Token": "shpat_x"})
    existing = [{"id": f"gid://shopify/WebhookSubscription/{n}", "topic": t, "uri": "https://hub.test/webhooks/shopify",
                 "format": "JSON"} for n, t in enumerate(shopify_webhooks.topics()[1:])]
    responses.post(endpoint, json={"data": {"webhookSubscriptions": {
        "nodes": existing[:3], "pageInfo": {"hasNextPage": True, "endCursor": "p1"}}}})
    responses.post(endpoint, json={"data": {"webhookSubscriptions": {
        "nodes": existing[3:], "pageInfo": {"hasNextPage": False, "endCursor": None}}}})
    responses.post(endpoint, json={"data": {"webhookSubscriptionCreate": {
        "webhookSubscription": {"id": "gid://shopify/WebhookSubscription/99"}, "userErrors": []}}})
    endpoint_, outcome = shopify_webhooks.register(client, "https://hub.test/webhooks/shopify", None)
    assert outcome == "created" and endpoint_.topics == shopify_webhooks.topics()
    listed, listed2, created = (json.loads(c.request.body) for c in responses.calls)
    assert "webhookSubscriptions(first: $first, after: $after)" in listed["query"]
    assert listed["variables"] == {"first": 100, "after": None} and listed2["variables"]["after"] == "p1"
    assert "webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription)" in created["query"]
    assert created["variables"] == {"topic": shopify_webhooks.topics()[0],
                                    "webhookSubscription": {"uri": "https://hub.test/webhooks/shopify", "format": "JSON"}}
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_x"


@responses.activate
def test_a_refused_shopify_subscription_is_reported() -> None:
    endpoint = f"https://tea-house.myshopify.com/admin/api/{API_VERSION}/graphql.json"
    client = ShopifyClient(f"https://tea-house.myshopify.com/admin/api/{API_VERSION}", {})
    responses.post(endpoint, json={"data": {"webhookSubscriptions": {"nodes": [], "pageInfo": {"hasNextPage": False}}}})
    responses.post(endpoint, json={"data": {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
        {"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}]}}})
    with pytest.raises(Exception, match="webhookSubscriptionCreate refused: Address is invalid"):
        shopify_webhooks.register(client, "https://hub.test/webhooks/shopify", None)


# -- Klaviyo -----------------------------------------------------------------------------------------
@pytest.fixture
def klaviyo() -> Iterator[FakeKlaviyoWebhooks]:
    fake = FakeKlaviyoWebhooks()
    yield fake
    fake.close()


@pytest.fixture
def klaviyo_settings(klaviyo: FakeKlaviyoWebhooks, tmp_path: Path) -> dict[str, str]:
    return {"HUB_KLAVIYO_API_KEY": "pk_register", "HUB_KLAVIYO_API_URL": klaviyo.url,
            "HUB_SECRETS_FILE": str(tmp_path / "secrets.env")}


def test_klaviyo_register_creates_one_webhook_with_a_secret_the_hub_stores_and_a_restart_changes_nothing(
        make_hub: Callable[..., Hub], klaviyo: FakeKlaviyoWebhooks, klaviyo_settings: dict[str, str]) -> None:
    make_hub(**klaviyo_settings)
    first = register("klaviyo")
    assert first.exit_code == 0, first.output
    [(wid, hook)] = klaviyo.webhooks.items()
    assert hook["endpoint_url"] == f"{HUB_URL}/webhooks/klaviyo" and hook["name"] == klaviyo_webhooks.NAME
    assert hook["topics"] == klaviyo_webhooks.topics()
    assert "event:klaviyo.unsubscribed_from_email_marketing" in hook["topics"]
    secret = klaviyo.secrets[wid]
    assert len(secret) == 64 and secret not in first.output
    stored = load_settings(environ={"HUB_SECRETS_FILE": klaviyo_settings["HUB_SECRETS_FILE"]})
    assert stored["HUB_KLAVIYO_WEBHOOK_SECRET"] == [secret]  # what verifies Klaviyo-Signature from now on
    make_hub(**klaviyo_settings)  # the hub restarted: it reads the stored secret
    again = register("klaviyo")
    assert f"{wid} unchanged" in again.output and list(klaviyo.webhooks) == [wid]
    assert klaviyo.secrets[wid] == secret


def test_klaviyo_register_adopts_the_hubs_webhook_by_name_gives_it_a_known_secret_and_health_repairs_it(
        make_hub: Callable[..., Hub], klaviyo: FakeKlaviyoWebhooks, klaviyo_settings: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    klaviyo.webhooks["01OLD"] = {"name": klaviyo_webhooks.NAME, "endpoint_url": "https://old.example.com/webhooks/klaviyo",
                                 "enabled": True, "topics": ["event:klaviyo.opened_email"]}
    hub = make_hub(**klaviyo_settings)
    result = sync.register(hub, "klaviyo", HUB_URL)  # (the CLI would reset the log capture)
    assert (result["id"], result["outcome"]) == ("01OLD", "updated") and list(klaviyo.webhooks) == ["01OLD"]
    assert "HUB_KLAVIYO_WEBHOOK_SECRET" in result["secret"]
    assert klaviyo.webhooks["01OLD"]["endpoint_url"] == f"{HUB_URL}/webhooks/klaviyo"
    assert klaviyo.webhooks["01OLD"]["topics"] == klaviyo_webhooks.topics()
    stored = load_settings(environ={"HUB_SECRETS_FILE": klaviyo_settings["HUB_SECRETS_FILE"]})
    assert stored["HUB_KLAVIYO_WEBHOOK_SECRET"] == [klaviyo.secrets["01OLD"]]
    hub = make_hub(**klaviyo_settings)
    klaviyo.webhooks["01OLD"]["enabled"] = False  # switched off in Klaviyo
    with caplog.at_level(logging.ERROR, logger="hub.sync"):
        report = next(r for r in sync.health(hub) if r["connector"] == "klaviyo")
    assert report["subscription"]["status"] == "disabled" and report["subscription"]["repair"]["outcome"] == "updated"
    assert any("operational alert: klaviyo webhook subscription 01OLD" in r.getMessage() for r in caplog.records)
    assert klaviyo.webhooks["01OLD"]["enabled"] is True
    assert klaviyo.secrets["01OLD"] == stored["HUB_KLAVIYO_WEBHOOK_SECRET"][0]  # the secret the hub verifies with
    healthy = next(r for r in sync.health(hub) if r["connector"] == "klaviyo")
    assert healthy["subscription"] == {"id": "01OLD", "status": "enabled", "url_ok": True}


@responses.activate
def test_klaviyo_webhook_requests_are_json_api_with_the_revision_header() -> None:
    from connectors.klaviyo.client import KlaviyoClient

    settings = load_settings(environ={"HUB_KLAVIYO_API_KEY": "pk_x", "HUB_KLAVIYO_API_URL": "https://a.klaviyo.test"})
    client = KlaviyoClient.from_settings(settings, dry_run=False)
    responses.get("https://a.klaviyo.test/api/webhooks/", json={"data": []})
    responses.post("https://a.klaviyo.test/api/webhooks/", status=201, json={"data": {
        "type": "webhook", "id": "01NEW", "attributes": {"name": "subscriber hub", "endpoint_url": "https://hub.test",
                                                          "enabled": True}}})
    endpoint, outcome = klaviyo_webhooks.register(client, "https://hub.test/webhooks/klaviyo", None, secret="s3cret")
    assert outcome == "created" and endpoint.id == "01NEW" and endpoint.secret == "s3cret"
    listed, created = responses.calls
    assert listed.request.params == {"include": "webhook-topics"}
    for call in (listed, created):
        assert call.request.headers["revision"] == settings["HUB_KLAVIYO_REVISION"]
        assert call.request.headers["Authorization"] == "Klaviyo-API-Key pk_x"
    assert created.request.headers["Content-Type"] == "application/vnd.api+json"
    body = json.loads(created.request.body)
    assert body["data"]["type"] == "webhook"
    assert body["data"]["attributes"] == {"name": "subscriber hub", "endpoint_url": "https://hub.test/webhooks/klaviyo",
                                          "description": "webhooks to the subscriber hub", "secret_key": "s3cret"}
    assert body["data"]["relationships"]["webhook-topics"]["data"] == [
        {"type": "webhook-topic", "id": t} for t in klaviyo_webhooks.topics()]
