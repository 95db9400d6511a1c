"""Chargebee: billing provider. Inbound events (HTTP Basic auth) and billing actions."""

from __future__ import annotations

from hub.config import Setting, Settings

from ..base import Connector
from . import client


class ChargebeeConnector(Connector):
    name = "chargebee"
    settings = (
        Setting("HUB_CHARGEBEE_WEBHOOK_USERNAME", "Basic-auth user name(s) set on the Chargebee webhook; "
                "comma-separated during a rotation (paired by position with the passwords).", kind="list",
                group="chargebee"),
        Setting("HUB_CHARGEBEE_WEBHOOK_PASSWORD", "Basic-auth password(s), paired with the user names.", kind="list",
                secret=True, group="chargebee"),
        Setting("HUB_CHARGEBEE_API_KEY", "API key for billing actions (unset: they run dry).", secret=True,
                group="chargebee"),
        Setting("HUB_CHARGEBEE_SITE", "Chargebee site name (`<site>.chargebee.com`).", group="chargebee"),
        Setting("HUB_CHARGEBEE_API_URL", "Chargebee API base URL (default from the site).", kind="url",
                group="chargebee"),
    )
    inbound_settings = ("HUB_CHARGEBEE_WEBHOOK_USERNAME", "HUB_CHARGEBEE_WEBHOOK_PASSWORD")
    outbound_settings = ("HUB_CHARGEBEE_API_KEY",)
    actions = client.ACTIONS
    rate_limits = client.RATE_LIMITS

    def client(self, settings: Settings) -> client.ChargebeeClient:
        return client.ChargebeeClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = ChargebeeConnector()
