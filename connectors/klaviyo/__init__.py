"""Klaviyo: messaging tool. Outbound events and profiles; inbound system and flow webhooks."""

from __future__ import annotations

import hashlib

from connectors import payload
from connectors.base import SETS_STATE, Connector, InboundRequest, RawDelivery, SyncTarget
from connectors.klaviyo import client, normalize, verify
from hub.kernel.errors import PayloadError
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings
from hub.kernel.values import now_utc, rfc3339


class KlaviyoConnector(Connector):
    name = "klaviyo"
    settings = (
        Setting("HUB_KLAVIYO_API_KEY", "Private API key (unset: Klaviyo actions run dry).", secret=True,
                group="klaviyo"),
        Setting("HUB_KLAVIYO_API_URL", "Klaviyo API base URL.", "https://a.klaviyo.com", kind="url",
                group="klaviyo"),
        Setting("HUB_KLAVIYO_REVISION", "Klaviyo API revision header.", "2026-07-15", group="klaviyo"),
        Setting("HUB_KLAVIYO_WEBHOOK_SECRET", "System webhooks: the `secret_key` given when the webhook was created "
                "(verifies `Klaviyo-Signature`); comma-separated during a rotation.", kind="list", secret=True,
                group="klaviyo"),
        Setting("HUB_KLAVIYO_FLOW_SECRET", "Flow webhooks: value(s) of the `X-Hub-Webhook-Secret` header the flow's "
                "webhook action sends; comma-separated during a rotation.", kind="list", secret=True,
                group="klaviyo"),
        Setting("HUB_KLAVIYO_WEBHOOK_TOLERANCE_SECONDS", "Allowed skew of `Klaviyo-Timestamp`, both directions "
                "(0: do not check the timestamp).", verify.TOLERANCE, kind="int", group="klaviyo"),
    )
    inbound_settings = ("HUB_KLAVIYO_WEBHOOK_SECRET",)
    kept_headers = ("klaviyo-signature", "klaviyo-timestamp", "klaviyo-webhook-id", "content-type", "user-agent")
    outbound_settings = ("HUB_KLAVIYO_API_KEY",)
    actions = client.ACTIONS
    on_repeat = SETS_STATE
    sync_targets = (SyncTarget("list", add="add_to_list", remove="remove_from_list", param="list_id"),
                    SyncTarget("properties", set="upsert_profile"))
    members = staticmethod(client.members)
    rate_limits = client.RATE_LIMITS
    check_path = "/api/accounts"

    # -- inbound: system webhooks (signed) and flow webhooks (shared-secret header) -----------
    def missing_inbound_settings(self, settings: Settings) -> list[str]:
        # either kind of webhook enables the endpoint
        if settings["HUB_KLAVIYO_WEBHOOK_SECRET"] or settings["HUB_KLAVIYO_FLOW_SECRET"]:
            return []
        return ["HUB_KLAVIYO_WEBHOOK_SECRET (or HUB_KLAVIYO_FLOW_SECRET)"]

    def verify(self, request: InboundRequest, settings: Settings) -> None:
        if request.header(verify.SIGNATURE_HEADER) is None and request.header(verify.FLOW_SECRET_HEADER) is not None:
            verify.verify_flow(request.header(verify.FLOW_SECRET_HEADER), settings["HUB_KLAVIYO_FLOW_SECRET"] or [])
            return
        verify.verify_system(request.body, request.header(verify.SIGNATURE_HEADER),
                             request.header(verify.TIMESTAMP_HEADER), settings["HUB_KLAVIYO_WEBHOOK_SECRET"] or [],
                             tolerance=settings["HUB_KLAVIYO_WEBHOOK_TOLERANCE_SECONDS"])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        timestamp = rfc3339(now_utc())
        signature = verify.sign(body, settings["HUB_KLAVIYO_WEBHOOK_SECRET"][0], timestamp)
        return url, {verify.SIGNATURE_HEADER: signature, verify.TIMESTAMP_HEADER: timestamp,
                     "Content-Type": "application/json"}

    def dedup_key(self, request: InboundRequest) -> str:
        """``data[].external_id``: the id itself for one event, a hash of all of them for a batch."""
        try:
            ids = [item.get("external_id") for item in normalize.elements(payload.loads(request.body))]
        except (ValueError, TypeError, PayloadError):
            ids = []
        if not ids or not all(ids):
            return super().dedup_key(request)
        if len(ids) == 1:
            return str(ids[0])
        return "batch:" + hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()

    def normalize(self, delivery: RawDelivery):  # type: ignore[no-untyped-def]
        return normalize.normalize(delivery, table(self.name))

    # -- outbound ----------------------------------------------------------------------------
    def client(self, settings: Settings) -> client.KlaviyoClient:
        return client.KlaviyoClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = KlaviyoConnector()
