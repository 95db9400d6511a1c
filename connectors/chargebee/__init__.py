"""Chargebee: billing provider. Inbound events (HTTP Basic auth) and billing actions."""

from __future__ import annotations

from connectors.base import Connector, InboundRequest, OnRepeat, RawDelivery
from connectors.chargebee import client, normalize, verify
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings


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
    kept_headers = ("content-type", "user-agent")  # never the Authorization header: it holds the password
    outbound_settings = ("HUB_CHARGEBEE_API_KEY",)
    actions = client.ACTIONS
    on_repeat = OnRepeat("single", client.IDEMPOTENT)
    rate_limits = client.RATE_LIMITS
    check_path = "/api/v2/subscriptions?limit=1"

    def verify(self, request: InboundRequest, settings: Settings) -> None:
        verify.verify(request.header("authorization"), settings["HUB_CHARGEBEE_WEBHOOK_USERNAME"] or [],
                      settings["HUB_CHARGEBEE_WEBHOOK_PASSWORD"] or [])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        authorization = verify.header(settings["HUB_CHARGEBEE_WEBHOOK_USERNAME"][0],
                                      settings["HUB_CHARGEBEE_WEBHOOK_PASSWORD"][0])
        return url, {"Authorization": authorization, "Content-Type": "application/json"}

    def dedup_key(self, request: InboundRequest) -> str:
        """``event.id`` (``ev_...``): Chargebee repeats deliveries and sends them out of order."""
        return self.dedup_key_from_id(request)

    def normalize(self, delivery: RawDelivery):  # type: ignore[no-untyped-def]
        return normalize.normalize(delivery, table(self.name))

    def client(self, settings: Settings) -> client.ChargebeeClient:
        return client.ChargebeeClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = ChargebeeConnector()
