"""The admin JSON API (``Authorization: Bearer $HUB_ADMIN_TOKEN``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from hub import queries
from hub.kernel.values import parse_time
from hub.web.auth import require_admin

bp = Blueprint("api", __name__, url_prefix="/api")


bp.before_request(require_admin)


def _limit() -> int:
    return max(1, min(int(request.args.get("limit", 50)), 1000))


@bp.get("/events")
def events() -> Any:
    since = request.args.get("since")
    return jsonify(queries.list_events(current_app.extensions["hub"], type_=request.args.get("type"),
                                       subscriber_id=request.args.get("subscriber", type=int),
                                       since=parse_time(since) if since else None, limit=_limit()))


@bp.get("/deliveries")
def deliveries() -> Any:
    return jsonify(queries.list_deliveries(current_app.extensions["hub"], connector=request.args.get("connector"),
                                           status=request.args.get("status"), limit=_limit()))


@bp.get("/actions")
def actions() -> Any:
    return jsonify(queries.list_actions(current_app.extensions["hub"], status=request.args.get("status"),
                                        connector=request.args.get("connector"), rule=request.args.get("rule"),
                                        limit=_limit(), with_attempts=request.args.get("attempts") == "1"))


@bp.post("/replay")
def replay() -> Any:
    body = request.get_json(silent=True) or {}
    hub = current_app.extensions["hub"]
    kind = body.get("kind", "actions")
    if kind not in queries.REPLAYABLE:
        return jsonify(error="kind: actions or deliveries"), 400
    try:
        ids = [int(i) for i in body.get("ids", [])]
        since, until = (parse_time(body[k]) if body.get(k) else None for k in ("since", "until"))
        replay_ = queries.replay_deliveries if kind == "deliveries" else queries.replay_actions
        return jsonify(replay_(hub, ids, status=body.get("status"), since=since, until=until))
    except (TypeError, ValueError) as exc:
        return jsonify(error=str(exc)), 400


@bp.get("/connectors")
def connectors_status() -> Any:
    """Each connector as this (running) hub sees it: what `hub connectors` prints."""
    import connectors

    from hub.status import connector_status

    hub = current_app.extensions["hub"]
    return jsonify([connector_status(hub, c) for c in connectors.REGISTRY.values()])


@bp.get("/rules")
def rules_status() -> Any:
    """The rules this hub runs: version, files, load time and the last refused change."""
    from hub.status import rules_status

    return jsonify(rules_status(current_app.extensions["hub"]))
