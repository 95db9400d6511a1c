"""Signed outbound webhooks (Standard Webhooks) to a merchant's own endpoint."""

from __future__ import annotations

from connectors.base import Connector
from connectors.http import ApiClient, Outcome
from connectors.webhook import client
from hub.kernel.settings import Setting, Settings


class WebhookConnector(Connector):
    name = "webhook"
    settings = (
        Setting("HUB_WEBHOOK_SECRET", "Signing secret(s) `whsec_<base64>`; several sign at once during a rotation "
                "(unset: webhook.post runs dry).", kind="list", secret=True, group="webhook"),
        Setting("HUB_WEBHOOK_ALLOW_HOSTS", "Host names exempt from the private-address check (SSRF guard), e.g. an "
                "internal receiver or a test server. Keep empty in production.", kind="list", group="webhook"),
        Setting("HUB_WEBHOOK_ALLOW_HTTP", "Allow plain http:// webhook URLs (tests only).", False, kind="bool",
                group="webhook"),
    )
    outbound_settings = ("HUB_WEBHOOK_SECRET",)
    actions = client.ACTIONS

    def client(self, settings: Settings) -> client.WebhookClient:
        return client.WebhookClient.from_settings(settings, dry_run=self.dry_run(settings))

    def check(self, api: ApiClient) -> Outcome:
        """There is no account to call: building the client already checked every secret decodes."""
        secrets = len(getattr(api, "secrets", []))
        return Outcome(status_code=None, request={}, dry_run=api.dry_run, extra={"secrets": secrets})


connector = WebhookConnector()
