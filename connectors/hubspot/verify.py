"""HubSpot webhook signatures.

v3 (``X-HubSpot-Signature-v3`` + ``X-HubSpot-Request-Timestamp`` in epoch milliseconds):
base64(HMAC-SHA256(client secret, method + URI + body + timestamp)), where the URI is the full URL
HubSpot called (scheme, host, path, query) with the URL-encoded characters in ``_DECODED`` turned
back into themselves, as HubSpot's validation guide prescribes. The request must be at most five
minutes old; unlike the SDK, which accepts any future timestamp, we also refuse one more than five
minutes ahead.

v1 (``X-HubSpot-Signature-Version: v1``, legacy app webhooks): hex SHA-256 (a plain hash, not an
HMAC) of client secret + body. It signs no timestamp: replays are caught by the dedup key.

v2 (``X-HubSpot-Signature-Version: v2``, sent by apps on the current developer platform beside v3,
and by workflow webhooks and CRM cards): hex SHA-256 of client secret + method + URI + body, with
the URI exactly as HubSpot called it (no escapes decoded). Like v1 it signs no timestamp.

A request carrying a v3 signature is judged on v3 alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Iterable, Mapping

from hub.kernel.errors import VerificationError

TOLERANCE_MS = 5 * 60 * 1000

# The only escapes HubSpot decodes before signing; everything else (%20, %C3%A9, ...) stays encoded.
_DECODED = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'", "28": "(",
            "29": ")", "2A": "*", "2C": ",", "3B": ";"}
_DIGITS = re.compile(r"[0-9]{1,16}")
_ESCAPE = re.compile(r"%(" + "|".join(_DECODED) + r")", re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI as HubSpot puts it in the v3 base string."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(1).upper()], url)


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str | int) -> str:
    message = method.upper().encode() + signed_uri(url).encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v2(secret: str, method: str, url: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.upper().encode() + url.encode() + body).hexdigest()


def verify(method: str, url: str, body: bytes, headers: Mapping[str, str], secrets: Iterable[str], *,
           now_ms: float | None = None) -> str:
    """Return the scheme that matched (``"v3"``, ``"v2"`` or ``"v1"``) or raise VerificationError."""
    secrets = list(secrets)
    v3 = headers.get("x-hubspot-signature-v3")
    if v3:
        _verify_v3(method, url, body, v3.strip(), headers.get("x-hubspot-request-timestamp"), secrets, now_ms)
        return "v3"
    version = (headers.get("x-hubspot-signature-version") or "").strip().lower()
    signature = (headers.get("x-hubspot-signature") or "").strip()
    if not signature:
        raise VerificationError("missing X-HubSpot-Signature-v3 (or X-HubSpot-Signature) header")
    if version == "v1":
        expected = [sign_v1(s, body) for s in secrets]
    elif version == "v2":
        expected = [sign_v2(s, method, url, body) for s in secrets]
    else:
        raise VerificationError(f"unsupported X-HubSpot-Signature-Version {version or '(missing)'!r}")
    if not any(hmac.compare_digest(e.encode(), signature.lower().encode()) for e in expected):
        raise VerificationError(f"{version} signature does not match (check HUB_HUBSPOT_CLIENT_SECRET"
                                + (" and HUB_PUBLIC_URL)" if version == "v2" else ")"))
    return version


def _verify_v3(method: str, url: str, body: bytes, signature: str, timestamp: str | None, secrets: list[str],
               now_ms: float | None) -> None:
    if not timestamp or not _DIGITS.fullmatch(timestamp.strip()):
        raise VerificationError("missing or malformed X-HubSpot-Request-Timestamp header")
    current = time.time() * 1000 if now_ms is None else now_ms
    if abs(current - int(timestamp)) > TOLERANCE_MS:
        raise VerificationError(f"request timestamp outside the 5-minute window ({timestamp.strip()})")
    sent = signature.encode()
    if not any(hmac.compare_digest(sign_v3(s, method, url, body, timestamp.strip()).encode(), sent)
               for s in secrets):
        raise VerificationError("v3 signature does not match "
                                "(check HUB_HUBSPOT_CLIENT_SECRET and HUB_PUBLIC_URL)")
