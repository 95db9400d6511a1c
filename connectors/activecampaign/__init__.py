"""ActiveCampaign: marketing automation. Inbound form-encoded webhooks (secret URL token) and
contact actions."""

from __future__ import annotations

from hub.config import Setting

from ..base import Connector


class ActiveCampaignConnector(Connector):
    name = "activecampaign"
    settings = (
        Setting("HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN", "Secret token(s) in the webhook URL "
                "`/webhooks/activecampaign/<token>`; comma-separated during a rotation.", kind="list", secret=True,
                group="activecampaign"),
        Setting("HUB_ACTIVECAMPAIGN_API_TOKEN", "API token (unset: ActiveCampaign actions run dry).", secret=True,
                group="activecampaign"),
        Setting("HUB_ACTIVECAMPAIGN_API_URL", "Account API URL, `https://<account>.api-us1.com`.",
                "https://account.api-us1.com", kind="url", group="activecampaign"),
        Setting("HUB_ACTIVECAMPAIGN_ACCOUNT_ID", "Account id (`actid`) for event tracking.", group="activecampaign"),
        Setting("HUB_ACTIVECAMPAIGN_EVENT_KEY", "Event tracking key.", secret=True, group="activecampaign"),
        Setting("HUB_ACTIVECAMPAIGN_TRACK_URL", "Event tracking endpoint.", "https://trackcmp.net/event", kind="url",
                group="activecampaign"),
    )
    inbound_settings = ("HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN",)
    outbound_settings = ("HUB_ACTIVECAMPAIGN_API_TOKEN",)


connector = ActiveCampaignConnector()
