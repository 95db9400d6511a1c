"""HubSpot: CRM. Inbound webhooks (X-HubSpot-Signature-v3 and v1) and contact actions."""

from __future__ import annotations

import time

from connectors import payload
from connectors.base import SETS_STATE, Connector, InboundRequest, RawDelivery, SyncTarget
from connectors.hubspot import client
from connectors.hubspot import normalize as normalizer
from connectors.hubspot import verify as verifier
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings


class HubSpotConnector(Connector):
    name = "hubspot"
    settings = (
        Setting("HUB_HUBSPOT_CLIENT_SECRET", "App client secret(s) that sign webhooks; comma-separated during a "
                "rotation.", kind="list", secret=True, group="hubspot"),
        Setting("HUB_HUBSPOT_ACCESS_TOKEN", "Private-app access token (unset: HubSpot actions run dry).",
                secret=True, group="hubspot"),
        Setting("HUB_HUBSPOT_API_URL", "HubSpot API base URL.", "https://api.hubapi.com", kind="url",
                group="hubspot"),
        Setting("HUB_HUBSPOT_RATE_LIMIT", "Requests per 10 s for the account: 100 (Free/Starter, OAuth apps) or 190 "
                "(Professional/Enterprise private apps).", 100, kind="int", group="hubspot"),
    )
    inbound_settings = ("HUB_HUBSPOT_CLIENT_SECRET",)
    outbound_settings = ("HUB_HUBSPOT_ACCESS_TOKEN",)
    kept_headers = ("x-hubspot-request-timestamp", "x-hubspot-signature-version", "content-type",
                    "user-agent")

    # -- inbound -----------------------------------------------------------------------------
    def verify(self, request: InboundRequest, settings: Settings) -> None:
        # request.url is the URL HubSpot called (HUB_PUBLIC_URL + path + query behind a proxy)
        verifier.verify(request.method, request.url, request.body, request.headers,
                        settings["HUB_HUBSPOT_CLIENT_SECRET"] or [])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        """A v3 signature for ``url`` now (behind a proxy, post to the HUB_PUBLIC_URL address)."""
        timestamp = str(int(time.time() * 1000))
        signature = verifier.sign_v3(settings["HUB_HUBSPOT_CLIENT_SECRET"][0], "POST", url, body, timestamp)
        return url, {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp,
                     "Content-Type": "application/json"}

    def dedup_key(self, request: InboundRequest) -> str:
        """Composite (portal, subscription, event id, occurred at) over the batch; eventId is not unique."""
        try:
            return normalizer.delivery_key(normalizer.events_of(payload.loads(request.body)))
        except PayloadError:
            return super().dedup_key(request)  # unreadable: stored, then marked failed when normalized

    def normalize(self, delivery: RawDelivery) -> list[CanonicalEvent]:
        return normalizer.normalize(delivery, table(self.name))

    # -- outbound ----------------------------------------------------------------------------
    actions = client.ACTIONS
    on_repeat = SETS_STATE
    sync_targets = (SyncTarget("list", add="add_to_list", remove="remove_from_list", param="list_id"),
                    SyncTarget("properties", set="set_properties"))
    members = staticmethod(client.members)
    rate_limits = client.rate_limits(100)
    check_path = "/crm/v3/objects/contacts?limit=1"

    def rate_limits_for(self, settings: Settings) -> dict[str, tuple[tuple[int, float], ...]]:
        return client.rate_limits(settings["HUB_HUBSPOT_RATE_LIMIT"] or 100)

    def client(self, settings: Settings) -> client.HubSpotClient:
        return client.HubSpotClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = HubSpotConnector()
