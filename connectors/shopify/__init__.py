"""Shopify: storefront. Inbound webhooks (X-Shopify-Hmac-Sha256) and subscription billing actions
(Admin GraphQL API)."""

from __future__ import annotations

import uuid

from connectors.base import SETS_STATE, Connector, InboundRequest, RawDelivery
from connectors.shopify import client, normalize, verify
from hub.kernel.events import CanonicalEvent
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings
from hub.kernel.values import now_utc, rfc3339


class ShopifyConnector(Connector):
    name = "shopify"
    settings = (
        Setting("HUB_SHOPIFY_WEBHOOK_SECRET", "App client secret(s) (or the admin notifications signing key); "
                "comma-separated during a rotation.", kind="list", secret=True, group="shopify"),
        Setting("HUB_SHOPIFY_SHOP", "The shop for billing actions: `<name>` or `<name>.myshopify.com`.",
                group="shopify"),
        Setting("HUB_SHOPIFY_ACCESS_TOKEN", "Admin API access token with write_own_subscription_contracts "
                "(unset: Shopify actions run dry).", secret=True, group="shopify"),
        Setting("HUB_SHOPIFY_API_URL", "Admin API base URL (unset: https://<HUB_SHOPIFY_SHOP>).", kind="url",
                group="shopify"),
        Setting("HUB_SHOPIFY_API_VERSION", "Admin GraphQL API version.", client.API_VERSION, group="shopify"),
    )
    inbound_settings = ("HUB_SHOPIFY_WEBHOOK_SECRET",)
    outbound_settings = ("HUB_SHOPIFY_SHOP", "HUB_SHOPIFY_ACCESS_TOKEN")
    actions = client.ACTIONS
    on_repeat = SETS_STATE  # a refusal because the contract is already paused or cancelled counts as done
    rate_limits = client.RATE_LIMITS
    # both header flavours: X-Shopify-* and the unprefixed shopify-* of the "Events" delivery
    kept_headers = tuple(f"{prefix}shopify-{name}" for prefix in ("x-", "") for name in (
        "topic", "shop-domain", "api-version", "webhook-id", "event-id", "triggered-at", "sub-topic", "name",
        "handle", "action", "resource-id")) + ("content-type", "user-agent")

    def verify(self, request: InboundRequest, settings: Settings) -> None:
        verify.verify(request.body, request.headers, settings["HUB_SHOPIFY_WEBHOOK_SECRET"] or [])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        """Headers as Shopify sends them; a fresh webhook id per call (add the topic with -H)."""
        return url, {"X-Shopify-Hmac-Sha256": verify.sign(body, settings["HUB_SHOPIFY_WEBHOOK_SECRET"][0]),
                     "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Triggered-At": rfc3339(now_utc()),
                     "Content-Type": "application/json"}

    def dedup_key(self, request: InboundRequest) -> str:
        """X-Shopify-Webhook-Id: one per delivery, the same on Shopify's retries of it."""
        webhook_id = request.header("x-shopify-webhook-id") or request.header("shopify-webhook-id")
        return webhook_id.strip() if webhook_id and webhook_id.strip() else super().dedup_key(request)

    def normalize(self, delivery: RawDelivery) -> list[CanonicalEvent]:
        return normalize.normalize(delivery, table(self.name))

    # -- outbound ----------------------------------------------------------------------------
    def client(self, settings: Settings) -> client.ShopifyClient:
        return client.ShopifyClient.from_settings(settings, dry_run=self.dry_run(settings))

    def check(self, api: client.ShopifyClient):  # type: ignore[no-untyped-def,override]
        """``hub connectors test``: the cheapest authenticated query (the shop's name)."""
        return api.graphql("query { shop { name } }", {})


connector = ShopifyConnector()
