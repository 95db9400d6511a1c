"""Stripe: billing provider. Inbound events (Stripe-Signature) and billing actions."""

from __future__ import annotations

from connectors.base import Connector, InboundRequest, OnRepeat, RawDelivery
from connectors.stripe import client, normalize, verify
from hub.kernel.errors import VerificationError
from hub.kernel.mapping import table
from hub.kernel.settings import Setting, Settings


class StripeConnector(Connector):
    name = "stripe"
    settings = (
        Setting("HUB_STRIPE_WEBHOOK_SECRET", "Webhook signing secret(s) `whsec_...`; comma-separated during a "
                "roll.", kind="list", secret=True, group="stripe"),
        Setting("HUB_STRIPE_API_KEY", "Secret API key for billing actions (unset: they run dry).", secret=True,
                group="stripe"),
        Setting("HUB_STRIPE_API_URL", "Stripe API base URL.", "https://api.stripe.com", kind="url", group="stripe"),
    )
    inbound_settings = ("HUB_STRIPE_WEBHOOK_SECRET",)
    outbound_settings = ("HUB_STRIPE_API_KEY",)
    kept_headers = ("stripe-signature", "content-type", "user-agent")
    actions = client.ACTIONS
    on_repeat = OnRepeat("single", client.IDEMPOTENT)
    rate_limits = client.RATE_LIMITS
    check_path = "/v1/balance"

    def verify(self, request: InboundRequest, settings: Settings) -> None:
        verify.verify(request.body, request.header("stripe-signature"), settings["HUB_STRIPE_WEBHOOK_SECRET"])

    def sign_request(self, body: bytes, settings: Settings, url: str) -> tuple[str, dict[str, str]]:
        secret = settings["HUB_STRIPE_WEBHOOK_SECRET"][0]
        return url, {"Stripe-Signature": verify.header(body, secret), "Content-Type": "application/json"}

    def dedup_key(self, request: InboundRequest) -> str:
        return self.dedup_key_from_id(request)

    def normalize(self, delivery: RawDelivery):  # type: ignore[no-untyped-def]
        return normalize.normalize(delivery, table(self.name))

    def client(self, settings: Settings) -> client.StripeClient:
        return client.StripeClient.from_settings(settings, dry_run=self.dry_run(settings))


connector = StripeConnector()
__all__ = ["StripeConnector", "VerificationError", "connector"]
