"""What the running hub is working with: each connector's state and the rules in force.

Shared by ``/readyz``, the admin API (``/api/connectors``, ``/api/rules``) and the CLI, so a
second terminal sees the running hub's configuration, not its own environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.outbound.circuit import Circuit, Credentials
from hub.outbound.ratelimit import RateLimiter, describe, limit_key

if TYPE_CHECKING:
    from connectors.base import Connector
    from hub.runtime import Hub


def connector_status(hub: Hub, connector: Connector) -> dict[str, Any]:
    """One connector as operators see it (also used by /readyz)."""
    settings = hub.settings
    row: dict[str, Any] = {"name": connector.name}
    if connector.receives:
        missing = connector.missing_inbound_settings(settings)
        row["inbound"] = "configured" if not missing else f"off (set {missing[0]})"
    else:
        row["inbound"] = "-"
    if not connector.actions:
        row["outbound"] = "-"
        return row
    row["outbound"] = "dry-run" if connector.dry_run(settings) else "live"
    try:
        invalid = Credentials(hub.redis).invalid(connector.name)
        row["credentials"] = (f"invalid (HTTP {invalid['status']})" if invalid else
                              ("-" if connector.dry_run(settings) else "ok"))
        row["circuit"] = Circuit(hub.redis).state(connector.name)
    except Exception as exc:  # Redis away: say so rather than fail the listing
        row["credentials"] = row["circuit"] = f"unknown ({type(exc).__name__})"
    try:
        limits = connector.rate_limits_for(settings)
        from connectors.base import windows

        row["rate_limit"] = {bucket: describe(windows(w)) for bucket, w in sorted(limits.items())}
        account = connector.rate_limit_account(settings)
        limiter = RateLimiter(hub.redis)
        paused = {b: round(p, 1) for b in limits if (p := limiter.paused_for(limit_key(connector.name, account, b)))}
        if paused:
            row["paused"] = paused
    except ValueError as exc:  # an unreadable HUB_<NAME>_RATE_LIMIT
        row["rate_limit"] = f"invalid: {exc}"
    except Exception as exc:
        row.setdefault("rate_limit", f"unknown ({type(exc).__name__})")
    return row


def rules_status(hub: "Hub") -> dict[str, Any]:
    """The rules in force: version (hash), files, when they were loaded, and the last change refused."""
    hub.rules  # loads them on first use
    return hub.rules_registry.status()


def backing_services(hub: "Hub") -> dict[str, str]:
    """Whether the database and Redis answer: ``ok`` or ``unavailable: <error class>`` for each."""
    from sqlalchemy import text

    checks: dict[str, str] = {}
    try:
        with hub.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        hub.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    return checks
