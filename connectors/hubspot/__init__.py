"""HubSpot: CRM. Inbound webhooks (X-HubSpot-Signature-v3 and v1) and contact actions."""

from __future__ import annotations

from hub.config import Setting

from ..base import Connector


class HubSpotConnector(Connector):
    name = "hubspot"
    settings = (
        Setting("HUB_HUBSPOT_CLIENT_SECRET", "App client secret(s) that sign webhooks; comma-separated during a "
                "rotation.", kind="list", secret=True, group="hubspot"),
        Setting("HUB_HUBSPOT_ACCESS_TOKEN", "Private-app access token (unset: HubSpot actions run dry).",
                secret=True, group="hubspot"),
        Setting("HUB_HUBSPOT_API_URL", "HubSpot API base URL.", "https://api.hubapi.com", kind="url",
                group="hubspot"),
    )
    inbound_settings = ("HUB_HUBSPOT_CLIENT_SECRET",)
    outbound_settings = ("HUB_HUBSPOT_ACCESS_TOKEN",)


connector = HubSpotConnector()
