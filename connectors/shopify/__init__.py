"""Shopify: storefront. Inbound webhooks (X-Shopify-Hmac-Sha256)."""

from __future__ import annotations

from hub.config import Setting

from ..base import Connector


class ShopifyConnector(Connector):
    name = "shopify"
    settings = (
        Setting("HUB_SHOPIFY_WEBHOOK_SECRET", "App client secret(s) (or the admin notifications signing key); "
                "comma-separated during a rotation.", kind="list", secret=True, group="shopify"),
    )
    inbound_settings = ("HUB_SHOPIFY_WEBHOOK_SECRET",)


connector = ShopifyConnector()
