"""The bearer-token guards: the admin token for every ``/api`` blueprint, the metrics token for
``/metrics`` and the details of ``/readyz``."""

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


def metrics_allowed() -> bool:
    """``Authorization: Bearer $HUB_METRICS_TOKEN``; without a token: anyone in development, loopback
    clients in production."""
    hub = current_app.extensions["hub"]
    token = hub.settings["HUB_METRICS_TOKEN"]
    if not token:
        return not hub.settings.production or request.remote_addr in ("127.0.0.1", "::1")
    sent = request.headers.get("Authorization", "")
    return sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode())
