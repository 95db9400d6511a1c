"""ActiveCampaign: marketing automation. Inbound form-encoded webhooks (secret URL token) and
contact actions."""

from __future__ import annotations

from connectors.activecampaign import client as api
from connectors.activecampaign import normalize, verify
from connectors.base import SETS_STATE, Connector, InboundRequest, RawDelivery, SyncTarget
from connectors.http import ApiClient, Outcome
from hub.kernel.errors import PayloadError
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings


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
    kept_headers = ("content-type", "user-agent")  # the token is in the URL, which is never stored
    outbound_settings = ("HUB_ACTIVECAMPAIGN_API_TOKEN",)

    # -- inbound. ActiveCampaign never retries and disables a webhook that answers 410: the
    # receive endpoint never answers 410, and a payload we cannot read is stored as failed. ----
    def verify(self, request: InboundRequest, settings: Settings) -> None:
        verify.verify(request.token, settings["HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN"] or [])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        # nothing is signed: the secret is the URL's last segment
        token = settings["HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN"][0]
        return f"{url}/{token}", {"Content-Type": "application/x-www-form-urlencoded"}

    def dedup_key(self, request: InboundRequest) -> str:
        """Derived from type, contact id, list and ``date_time`` (ActiveCampaign sends no event id)."""
        try:
            key = normalize.event_key(normalize.parse_form(request.body))
        except PayloadError:
            key = None
        return key or super().dedup_key(request)  # no date_time: only identical bodies collapse

    def normalize(self, delivery: RawDelivery):  # type: ignore[no-untyped-def]
        return normalize.normalize(delivery, table(self.name))

    # -- outbound: 5 requests/s per account, shared by every key --------------------------------
    actions = api.ACTIONS
    on_repeat = SETS_STATE
    sync_targets = (SyncTarget("tag", add="add_tag", remove="remove_tag", param="tag"),
                    SyncTarget("list", add="subscribe_list", remove="unsubscribe_list", param="list"),
                    SyncTarget("fields", set="set_field", param="field"))
    members = staticmethod(api.members)
    rate_limits = api.RATE_LIMITS

    def client(self, settings: Settings) -> api.ActiveCampaignClient:
        return api.ActiveCampaignClient.from_settings(settings, dry_run=self.dry_run(settings))

    def rate_limit_account(self, settings: Settings) -> str:
        return api.account(settings)

    def check(self, client: ApiClient) -> Outcome:
        return api.check(client)


connector = ActiveCampaignConnector()
