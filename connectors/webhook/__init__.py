"""Signed outbound webhooks (Standard Webhooks) to a merchant's own endpoint."""

from __future__ import annotations

from hub.config import Setting

from ..base import Connector


class WebhookConnector(Connector):
    name = "webhook"
    settings = (
        Setting("HUB_WEBHOOK_SECRET", "Signing secret(s) `whsec_<base64>`; several sign at once during a rotation.",
                kind="list", secret=True, group="webhook"),
    )
    outbound_settings = ("HUB_WEBHOOK_SECRET",)


connector = WebhookConnector()
