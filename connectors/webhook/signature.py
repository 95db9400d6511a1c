"""Standard Webhooks signatures (https://www.standardwebhooks.com), written here so that signing
and verifying share one implementation.

- signed content: ``"{webhook-id}.{webhook-timestamp}.{body}"``, HMAC-SHA256;
- key: the secret with its ``whsec_`` prefix removed, base64-decoded;
- ``webhook-signature``: ``v1,<base64>``, one per secret, space-separated (several during a rotation);
- a receiver rejects timestamps more than ``tolerance`` seconds away in either direction.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from hashlib import sha256
from typing import Iterable, Mapping

from hub.kernel.errors import VerificationError

PREFIX = "whsec_"
TOLERANCE = 300


class SecretError(ValueError):
    """A secret that is not ``whsec_<base64>`` (the message never contains the secret)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in the spec)."""
    encoded = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("a webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise SecretError("a webhook secret is empty")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` for one key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, sha256).digest()).decode()


def sign(body: bytes, msg_id: str, secrets: Iterable[str], timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``, signed with every secret given."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = " ".join(signature(secret_key(s), msg_id, ts, body) for s in secrets)
    if not signatures:
        raise SecretError("no webhook secret to sign with")
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signatures}


def verify(body: bytes, headers: Mapping[str, str], secrets: Iterable[str], *, tolerance: int = TOLERANCE,
           now: float | None = None) -> int:
    """The mirror of ``sign``: return the signed timestamp or raise VerificationError saying why."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sent = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and sent):
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise VerificationError(f"webhook-timestamp outside the tolerance zone ({timestamp})")
    candidates = [part for part in sent.split(" ") if part.startswith("v1,")]
    if not candidates:
        raise VerificationError("no signatures found with expected scheme v1")
    expected = [signature(secret_key(s), msg_id, timestamp, body) for s in secrets]
    # bytes: compare_digest raises TypeError on a str with non-ASCII characters
    offered = [c.encode("utf-8", "surrogateescape") for c in candidates]
    if not any(hmac.compare_digest(e.encode(), c) for e in expected for c in offered):
        raise VerificationError("no signature matches the payload (check HUB_WEBHOOK_SECRET)")
    return timestamp
