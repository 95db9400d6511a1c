"""``/healthz`` (the process is up) and ``/readyz`` (database and Redis reachable)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(ok=True)


@bp.get("/readyz")
def readyz() -> Any:
    hub = current_app.extensions["hub"]
    checks: dict[str, Any] = {}
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
    ready = all(v == "ok" for v in checks.values())
    return jsonify(ready=ready, checks=checks), (200 if ready else 503)
