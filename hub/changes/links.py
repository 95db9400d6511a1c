"""Self-service links: a short-lived URL the merchant puts in an e-mail or an account page, letting one
subscriber make the allowed changes to one subscription, once.

The token is ``base64url(claims).base64url(HMAC-SHA256(HUB_SELF_SERVICE_SECRET, claims))``; the
claims name the subscriber, the subscription, the allowed changes, the expiry and a nonce. A used
token's nonce is kept in Redis until the expiry, so a link works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

MAX_LIFETIME = 7 * 86400


class LinkError(ValueError):
    """The link is tampered with, expired or already used (the message says which)."""


@dataclass(frozen=True)
class Claims:
    subscriber_id: int | None
    subscription: str  # provider:id
    allowed: tuple[str, ...]
    expires: int  # unix seconds
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def make(secret: str, subscriber_id: int | None, subscription: str, allowed: list[str], lifetime: int,
         now: float | None = None) -> str:
    claims = {"p": subscriber_id, "s": subscription, "a": sorted(set(allowed)),
              "e": int((now or time.time()) + min(lifetime, MAX_LIFETIME)), "n": secrets.token_urlsafe(12)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read(secret: str, token: str, now: float | None = None) -> Claims:
    payload, _, mac = token.partition(".")
    if not payload or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise LinkError("this link is not valid")
    try:
        raw: dict[str, Any] = json.loads(_unb64(payload))
        claims = Claims(raw["p"], str(raw["s"]), tuple(raw["a"]), int(raw["e"]), str(raw["n"]))
    except (ValueError, KeyError, TypeError):
        raise LinkError("this link is not valid") from None
    if (now or time.time()) >= claims.expires:
        raise LinkError("this link has expired; ask for a new one")
    return claims


def use(redis: Redis, claims: Claims, now: float | None = None) -> None:
    """Mark the link used; refuse it if it was used before."""
    ttl = max(int(claims.expires - (now or time.time())), 1)
    if not redis.set(f"hub:self-service:used:{claims.nonce}", "1", nx=True, ex=ttl):
        raise LinkError("this link was already used")


def was_used(redis: Redis, claims: Claims) -> bool:
    return bool(redis.exists(f"hub:self-service:used:{claims.nonce}"))
