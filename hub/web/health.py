"""``/healthz`` (the process is up) and ``/readyz`` (database and Redis reachable).

``/readyz`` also details each check and each outbound connector's credentials mark and circuit state,
to callers with the metrics token (``HUB_METRICS_TOKEN``); others get only ``ready``. The connectors'
state does not make the hub unready: webhooks must keep landing while a destination is down.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from hub.status import backing_services
from hub.web.auth import metrics_allowed

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(ok=True)


@bp.get("/readyz")
def readyz() -> Any:
    hub = current_app.extensions["hub"]
    checks = backing_services(hub)
    ready = all(v == "ok" for v in checks.values())
    if not metrics_allowed():
        return jsonify(ready=ready), (200 if ready else 503)
    return jsonify(ready=ready, checks=checks, connectors=_destinations(hub),
                   rules=_rules(hub)), (200 if ready else 503)


def _rules(hub: Any) -> dict[str, Any]:
    """The rules in force: version, load time and the last refused change (the hub keeps running
    the older rules when an edit does not load)."""
    from hub.status import rules_status

    try:
        return rules_status(hub)
    except Exception as exc:  # rules that never loaded: the process would not have started
        return {"error": type(exc).__name__}


def _destinations(hub: Any) -> dict[str, Any]:
    import connectors
    from hub.outbound.circuit import Circuit, Credentials

    out: dict[str, Any] = {}
    for name, connector in connectors.REGISTRY.items():
        if not connector.actions:
            continue
        row: dict[str, Any] = {"outbound": "dry-run" if connector.dry_run(hub.settings) else "live"}
        try:
            invalid = Credentials(hub.redis).invalid(name)
            row["credentials"] = "invalid" if invalid else "ok"
            if invalid:
                row["credentials_error"] = {"status": invalid.get("status"), "error": invalid.get("error")}
            circuit = Circuit(hub.redis).state(name)
            row["circuit"] = circuit["state"]
            if circuit["state"] != "closed":
                row["probe_in"] = circuit.get("probe_in")
        except Exception as exc:
            row["state"] = f"unknown: {type(exc).__name__}"
        out[name] = row
    return out
