"""Stripe-Signature against the shared webhook contract (tests are in WebhookContract)."""

from __future__ import annotations

from typing import Any, Sequence

from connectors.stripe import verify
from tests.connectors.contract import Signed, WebhookContract
from tests.helpers import stripe_event


class TestStripeWebhookContract(WebhookContract):
    connector = "stripe"
    secrets = ("whsec_current", "whsec_rolled_out")
    wrong_secret = "whsec_wrong"
    timestamp_tolerance = verify.TOLERANCE

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_STRIPE_WEBHOOK_SECRET": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed({"Stripe-Signature": verify.header(body, secret, int(timestamp))})

    def sample_body(self) -> bytes:
        return stripe_event("customer.created", {"id": "cus_1", "object": "customer", "email": "a@example.com"},
                           event_id="evt_contract", created=1767225600)
