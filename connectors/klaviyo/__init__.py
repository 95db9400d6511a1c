"""Klaviyo: messaging tool. Outbound events and profiles; inbound system and flow webhooks."""

from __future__ import annotations

from hub.config import Setting, Settings

from ..base import Connector
from . import client


class KlaviyoConnector(Connector):
    name = "klaviyo"
    settings = (
        Setting("HUB_KLAVIYO_API_KEY", "Private API key (unset: Klaviyo actions run dry).", secret=True,
                group="klaviyo"),
        Setting("HUB_KLAVIYO_API_URL", "Klaviyo API base URL.", "https://a.klaviyo.com", kind="url",
                group="klaviyo"),
        Setting("HUB_KLAVIYO_REVISION", "Klaviyo API revision header.", "2026-07-15", group="klaviyo"),
    )
    outbound_settings = ("HUB_KLAVIYO_API_KEY",)
    actions = client.ACTIONS

    def client(self, settings: Settings) -> client.KlaviyoClient:
        return client.KlaviyoClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = KlaviyoConnector()
