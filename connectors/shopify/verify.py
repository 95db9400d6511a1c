"""Shopify webhooks: ``X-Shopify-Hmac-Sha256`` is base64(HMAC-SHA256(client secret, raw body)).

There is no timestamp in the signature (staleness is judged from ``X-Shopify-Triggered-At`` when
normalizing, never here). The developer-preview "Events" delivery sends the same digest in an
unprefixed ``shopify-hmac-sha256`` header; either flavour is accepted. After a secret rotation
Shopify may sign with the old secret for up to an hour, so every configured secret is tried.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import sha256
from typing import Iterable, Mapping

from hub.kernel.errors import VerificationError

HMAC_HEADERS = ("x-shopify-hmac-sha256", "shopify-hmac-sha256")


def sign(body: bytes, secret: str) -> str:
    """The header value Shopify sends for ``body`` (the mirror of ``verify``)."""
    return base64.b64encode(hmac.new(secret.encode(), body, sha256).digest()).decode()


def verify(body: bytes, headers: Mapping[str, str], secrets: Iterable[str]) -> None:
    """Raise VerificationError unless some configured secret produced the digest (constant time)."""
    sent = [headers[h].strip() for h in HMAC_HEADERS if headers.get(h)]
    if not sent:
        raise VerificationError("missing X-Shopify-Hmac-Sha256 header")
    expected = [sign(body, secret).encode() for secret in secrets]
    if not any(hmac.compare_digest(e, s.encode()) for e in expected for s in sent):
        raise VerificationError("HMAC does not match the body (check HUB_SHOPIFY_WEBHOOK_SECRET)")
