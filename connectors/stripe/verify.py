"""Stripe-Signature: ``t=<unix>,v1=<hex>[,v1=...][,v0=...]``; HMAC-SHA256 over ``"{t}.{body}"``
keyed with the whole ``whsec_...`` secret. Any v1 may match (Stripe sends one per active secret
during a roll); v0 is a test-mode decoy and ignored. Unlike the SDK, which rejects only stale
timestamps, we reject timestamps more than ``tolerance`` seconds away in either direction.
"""

from __future__ import annotations

import hmac
import time
from hashlib import sha256
from typing import Iterable

from hub.kernel.errors import VerificationError

TOLERANCE = 300


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The v1 signature for ``body`` at ``timestamp`` (the mirror of ``verify``)."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, sha256).hexdigest()


def header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={sign(body, secret, ts)}"


def verify(body: bytes, signature_header: str | None, secrets: Iterable[str], *,
           tolerance: int = TOLERANCE, now: float | None = None) -> int:
    """Return the signed timestamp or raise VerificationError saying what was wrong."""
    if not signature_header:
        raise VerificationError("missing Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in signature_header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            # ASCII digits only, and short: int() would take "１２" or a number too large for a float
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                raise VerificationError("unable to parse the timestamp in Stripe-Signature")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None:
        raise VerificationError("unable to extract timestamp and signatures from header")
    if not candidates:
        raise VerificationError("no signatures found with expected scheme v1")
    # compare bytes: compare_digest refuses str with non-ASCII characters (a forged header may carry them)
    offered = [c.encode("utf-8", "surrogateescape") for c in candidates]
    expected = [sign(body, s, timestamp).encode() for s in secrets]
    if not any(hmac.compare_digest(e, c) for e in expected for c in offered):
        raise VerificationError("no signature matches the payload (check HUB_STRIPE_WEBHOOK_SECRET)")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:  # both directions: our policy, stricter than the SDK
        raise VerificationError(f"timestamp outside the tolerance zone ({timestamp})")
    return timestamp
