"""The admin bearer-token guard shared by every ``/api`` blueprint."""

from __future__ import annotations

import hmac

from flask import abort, current_app, request


def require_admin() -> None:
    """``Authorization: Bearer $HUB_ADMIN_TOKEN``; without a token (development), loopback clients only."""
    hub = current_app.extensions["hub"]
    token = hub.settings["HUB_ADMIN_TOKEN"]
    if not token:
        # development without a token: loopback clients only
        if request.remote_addr not in ("127.0.0.1", "::1") or hub.settings.production:
            abort(401, "set HUB_ADMIN_TOKEN and send it as a Bearer token")
        return
    sent = request.headers.get("Authorization", "")
    if not (sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode())):
        abort(401, "missing or wrong bearer token")
