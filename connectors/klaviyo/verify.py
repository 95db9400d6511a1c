"""Klaviyo inbound authentication, two schemes.

System webhooks: ``Klaviyo-Signature`` = hex HMAC-SHA256 keyed with the webhook's ``secret_key``
over the raw body bytes followed by the ``Klaviyo-Timestamp`` header bytes (providers.md §5.1).
That recipe is UNCONFIRMED against Klaviyo's own page (it comes from a secondary source), so:
the hex is compared case-insensitively, several secrets are tried (rotation), and the timestamp
is parsed leniently (ISO 8601 with any offset, or epoch seconds / milliseconds) before the replay
window is applied in both directions. An unreadable timestamp is refused (fail closed); an
operator who meets an unexpected format can set the tolerance to 0 to rely on the signature and
the ``external_id`` dedup alone.

Flow webhooks are not signed: the merchant adds the header ``X-Hub-Webhook-Secret`` with a shared
secret to the flow's webhook action, and we compare it in constant time.
"""

from __future__ import annotations

import hmac
import math
from datetime import datetime, timezone
from hashlib import sha256
from typing import Iterable

from hub.kernel.errors import VerificationError
from hub.kernel.values import parse_time

TOLERANCE = 300
SIGNATURE_HEADER = "klaviyo-signature"
TIMESTAMP_HEADER = "klaviyo-timestamp"
FLOW_SECRET_HEADER = "x-hub-webhook-secret"


def sign(body: bytes, secret: str, timestamp: str) -> str:
    """The ``Klaviyo-Signature`` value for ``body`` sent at ``timestamp`` (the mirror of ``verify``)."""
    return hmac.new(secret.encode(), body + timestamp.encode(), sha256).hexdigest()


def timestamp_seconds(value: str) -> float:
    """Epoch seconds from a ``Klaviyo-Timestamp`` (ISO 8601, or epoch seconds or milliseconds)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_time(text).timestamp()
        except ValueError:
            raise VerificationError("Klaviyo-Timestamp is neither ISO 8601 nor epoch time") from None
    # float() also reads "nan", "inf" and "1e400": nan compares false with everything, so it
    # would pass any window; refuse them and anything before 1970 or past the year 5138 (in ms)
    if not math.isfinite(number) or not 0 < number < 1e14:
        raise VerificationError("Klaviyo-Timestamp is not a plausible epoch time")
    return number / 1000.0 if number > 1e11 else number  # 1e11 s is the year 5138: that is milliseconds


def verify_system(body: bytes, signature: str | None, timestamp: str | None, secrets: Iterable[str], *,
                  tolerance: int = TOLERANCE, now: float | None = None) -> None:
    """Raise VerificationError unless ``signature`` signs ``body`` + ``timestamp`` with one of ``secrets``."""
    if not signature:
        raise VerificationError("missing Klaviyo-Signature header")
    if not timestamp:
        raise VerificationError("missing Klaviyo-Timestamp header")
    # compare bytes: compare_digest raises TypeError on a str with non-ASCII characters, which any
    # caller can put in a header
    given = signature.strip().lower().encode("utf-8", "surrogateescape")
    if not any(hmac.compare_digest(sign(body, s, timestamp).encode(), given) for s in secrets):
        raise VerificationError("no signature matches the payload (check HUB_KLAVIYO_WEBHOOK_SECRET)")
    if tolerance:
        sent = timestamp_seconds(timestamp)
        current = datetime.now(timezone.utc).timestamp() if now is None else now
        if not abs(current - sent) <= tolerance:  # written so that a nan could never pass
            raise VerificationError("Klaviyo-Timestamp outside the tolerance zone")


def verify_flow(given: str | None, secrets: Iterable[str]) -> None:
    """Raise VerificationError unless the flow webhook's shared-secret header matches one secret."""
    if not given:
        raise VerificationError("missing X-Hub-Webhook-Secret header")
    # compare with every secret (no early exit) so timing does not tell which one nearly matched
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())
    if not matched:
        raise VerificationError("X-Hub-Webhook-Secret matches no secret (check HUB_KLAVIYO_FLOW_SECRET)")
