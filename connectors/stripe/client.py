"""Stripe outbound calls (billing actions for dunning). Form-encoded v1 API, Bearer key,
``Idempotency-Key`` = the planned action's key. The actions themselves are added with the
billing-actions work; this module provides the client they use."""

from __future__ import annotations

from hub.config import Settings

from ..http import ApiClient

API_VERSION = "2026-06-24.dahlia"


class StripeClient(ApiClient):
    connector = "stripe"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "StripeClient":
        key = settings["HUB_STRIPE_API_KEY"] or ""
        return cls(settings.get("HUB_STRIPE_API_URL", "https://api.stripe.com"),
                   {"Authorization": f"Bearer {key}", "Stripe-Version": API_VERSION},
                   dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])


ACTIONS: dict = {}
