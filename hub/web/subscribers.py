"""``GET /api/subscribers/<id or e-mail>`` (profile with timeline) and ``GET /api/metrics`` (KPIs),
behind the same admin token as the rest of ``/api``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

from hub import kpis as m
from hub.subscribers import profile
from hub.web.auth import require_admin
from hub.web.schemas import (
    ErrorOut,
    KpiQuery,
    KpiReportOut,
    ProfileOut,
    SubscriberPath,
    SubscriberQuery,
    accepts,
    months_back,
)

bp = Blueprint("subscribers", __name__, url_prefix="/api")
bp.before_request(require_admin)


@bp.get("/subscribers/<key>")
@accepts("/api/subscribers/{key}", "get", "A subscriber's profile and timeline", path_params=SubscriberPath,
         query=SubscriberQuery, responses={200: ("the profile", ProfileOut), 404: ("no such subscriber", ErrorOut)})
def show(key: str, query: dict[str, Any]) -> Any:
    hub = current_app.extensions["hub"]
    with hub.store.session() as session:
        found = profile.show(session, key, timeline=query["timeline"])
    if found is None:
        abort(404, f"no subscriber {key!r}")
    return jsonify(found)


@bp.get("/metrics")
@accepts("/api/metrics", "get", "Subscription KPIs per day, week or month", query=KpiQuery,
         responses={200: ("the report", KpiReportOut)})
def metrics(query: dict[str, Any]) -> Any:
    hub = current_app.extensions["hub"]
    last = query.get("to") or date.today()
    first = query.get("from_") or months_back(last, 11)
    try:
        with hub.store.session() as session:
            report = m.report(session, first, last, query["interval"], m.Rates.from_settings(hub.settings))
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
