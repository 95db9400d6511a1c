"""``GET /api/subscribers/<id or e-mail>`` (profile with timeline) and ``GET /api/metrics`` (KPIs),
behind the same admin token as the rest of ``/api``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

from hub import kpis as m
from hub.subscribers import profile
from hub.web.auth import require_admin

bp = Blueprint("subscribers", __name__, url_prefix="/api")
bp.before_request(require_admin)


@bp.get("/subscribers/<key>")
def show(key: str) -> Any:
    hub = current_app.extensions["hub"]
    timeline = max(1, min(request.args.get("timeline", 50, type=int), 1000))
    with hub.store.session() as session:
        found = profile.show(session, key, timeline=timeline)
    if found is None:
        abort(404, f"no subscriber {key!r}")
    return jsonify(found)


@bp.get("/metrics")
def metrics() -> Any:
    hub = current_app.extensions["hub"]
    try:
        last = m.parse_date(request.args["to"]) if request.args.get("to") else date.today()
        first = (m.parse_date(request.args["from"]) if request.args.get("from")
                 else (last.replace(day=1) - timedelta(days=335)).replace(day=1))
        with hub.store.session() as session:
            report = m.report(session, first, last, request.args.get("interval", "month"),
                              m.Rates.from_settings(hub.settings))
    except m.MetricsError as exc:
        abort(400, str(exc))
    return jsonify(report)


@bp.get("/metrics/cohorts")
def metric_cohorts() -> Any:
    """Retention by first-payment month (``by=plan``: and plan); ``from``/``to`` are days (YYYY-MM-DD)."""
    from marshmallow import ValidationError

    from hub.kpis import cohorts as c

    try:
        args = c.CohortParams().load(request.args.to_dict())
    except ValidationError as exc:
        name, messages = next(iter(exc.normalized_messages().items()))
        abort(400, f"{name}: {'; '.join(map(str, messages))}")
    last = args["end"] or date.today()
    first = args["start"] or (last.replace(day=1) - timedelta(days=335)).replace(day=1)
    hub = current_app.extensions["hub"]
    with hub.store.session() as session:
        return jsonify(c.cohorts(session, first, last, args["by"]))
