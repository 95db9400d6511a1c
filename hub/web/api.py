"""The admin JSON API (``Authorization: Bearer $HUB_ADMIN_TOKEN``); parameters and bodies are checked by
the schemas in hub/web/schemas.py, which also describe the API at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from hub import queries
from hub.queries import DeliveryOut, EventOut
from hub.web.auth import require_admin
from hub.web.schemas import (
    ActionsQuery,
    ActionWithAttemptsOut,
    DeliveriesQuery,
    EventsQuery,
    ReplayBody,
    ReplayOut,
    accepts,
    openapi,
)

bp = Blueprint("api", __name__, url_prefix="/api")


bp.before_request(require_admin)


@bp.get("/events")
@accepts("/api/events", "get", "Canonical events, newest first", query=EventsQuery,
         responses={200: ("events", EventOut(many=True))})
def events(query: dict[str, Any]) -> Any:
    return jsonify(queries.list_events(current_app.extensions["hub"], type_=query.get("type"),
                                       subscriber_id=query.get("subscriber"), since=query.get("since"),
                                       until=query.get("until"), limit=query["limit"]))


@bp.get("/deliveries")
@accepts("/api/deliveries", "get", "Stored webhook deliveries, newest first", query=DeliveriesQuery,
         responses={200: ("deliveries", DeliveryOut(many=True))})
def deliveries(query: dict[str, Any]) -> Any:
    return jsonify(queries.list_deliveries(current_app.extensions["hub"], connector=query.get("connector"),
                                           status=query.get("status"), since=query.get("since"),
                                           until=query.get("until"), limit=query["limit"]))


@bp.get("/actions")
@accepts("/api/actions", "get", "Planned actions, newest first", query=ActionsQuery,
         responses={200: ("actions", ActionWithAttemptsOut(many=True))})
def actions(query: dict[str, Any]) -> Any:
    return jsonify(queries.list_actions(current_app.extensions["hub"], status=query.get("status"),
                                        connector=query.get("connector"), rule=query.get("rule"),
                                        since=query.get("since"), until=query.get("until"), limit=query["limit"],
                                        with_attempts=query["attempts"]))


@bp.post("/replay")
@accepts("/api/replay", "post", "Replay failed or dead actions, or failed deliveries", body=ReplayBody,
         responses={200: ("how many were put back in line", ReplayOut)})
def replay(body: dict[str, Any]) -> Any:
    hub = current_app.extensions["hub"]
    replay_ = queries.replay_deliveries if body["kind"] == "deliveries" else queries.replay_actions
    return jsonify(replay_(hub, body.get("ids", []), status=body.get("status"), since=body.get("since"),
                           until=body.get("until")))


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """The OpenAPI 3.1 description of this API, built from the same schemas that check requests."""
    return jsonify(openapi())


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
