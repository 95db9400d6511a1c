"""Chargebee signs nothing: the webhook URL is protected with HTTP Basic auth (providers.md §3.2).

``Authorization: Basic base64(username:password)``. As in Chargebee's own reference parser, the
header must be exactly two space-separated parts and the credentials split at the *first* ``:``,
so a password may contain ``:``. Several username/password pairs are accepted during a rotation,
paired by position. Every pair is compared, in constant time, whatever the outcome.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Sequence

from hub.kernel.errors import VerificationError


def header(username: str, password: str) -> str:
    """The Authorization header Chargebee sends for these credentials (the mirror of ``verify``)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def credentials(authorization: str | None) -> tuple[bytes, bytes]:
    """(username, password) from a Basic Authorization header, or VerificationError."""
    if not authorization:
        raise VerificationError("missing Authorization header (Chargebee webhook basic auth)")
    parts = authorization.split(" ")
    if len(parts) != 2 or parts[0].lower() != "basic":
        raise VerificationError("Authorization header is not 'Basic <credentials>'")
    try:
        decoded = base64.b64decode(parts[1].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError("Authorization credentials are not base64") from None
    username, sep, password = decoded.partition(b":")
    if not sep:
        raise VerificationError("Authorization credentials have no ':' separator")
    return username, password


def verify(authorization: str | None, usernames: Sequence[str], passwords: Sequence[str]) -> None:
    """Raise VerificationError unless the header carries one of the configured pairs."""
    if len(usernames) != len(passwords):
        raise VerificationError(f"HUB_CHARGEBEE_WEBHOOK_USERNAME has {len(usernames)} value(s) but "
                                f"HUB_CHARGEBEE_WEBHOOK_PASSWORD has {len(passwords)}: they are paired by position")
    username, password = credentials(authorization)
    matched = False
    for expected_user, expected_password in zip(usernames, passwords):
        user_ok = hmac.compare_digest(username, expected_user.encode())
        password_ok = hmac.compare_digest(password, expected_password.encode())
        matched |= user_ok & password_ok  # no short-circuit: every pair costs the same
    if not matched:
        raise VerificationError("wrong Chargebee webhook credentials (check HUB_CHARGEBEE_WEBHOOK_USERNAME and HUB_CHARGEBEE_WEBHOOK_PASSWORD)")
