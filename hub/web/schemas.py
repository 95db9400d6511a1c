"""Parameters and bodies of the admin JSON API as marshmallow schemas, and its OpenAPI description.

Each ``/api`` view declares what it reads with ``@accepts(query=..., body=..., path=...)`` and what it
answers with ``responses``; the same declarations validate every request (a bad parameter is a 400
naming it and saying what is allowed) and are rendered by apispec into the OpenAPI 3.1 document
served at ``/api/openapi.json``. Ranges are bounded so no request can ask for more than the hub is
willing to compute: ``limit`` <= 1000, ids within a 64-bit integer, dates between 1970 and 2100,
KPI reports of at most ``MAX_PERIODS`` periods.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from hub.kernel.values import parse_time
from hub.queries import ActionOut, AttemptOut
from hub.store.models import ActionStatus, DeliveryStatus

MAX_ID = 2**63 - 1  # the database's bigint
MAX_LIMIT = 1000
MAX_REPLAY_IDS = 1000
MAX_PERIODS = 400  # rows of a KPI report: 400 days, 400 weeks or 400 months
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
INTERVALS = ("day", "week", "month")
BETWEEN = "must be between {min} and {max}"


def _connector_names() -> list[str]:
    import connectors

    return sorted(connectors.REGISTRY)


# -- fields ------------------------------------------------------------------------------------------------
def _id(strict: bool = False, **kwargs: Any) -> fields.Integer:
    """An id: a JSON body must send a number (``strict``), a query string sends digits."""
    return fields.Integer(strict=strict, validate=validate.Range(1, MAX_ID, error=BETWEEN), **kwargs)


def _limit() -> fields.Integer:
    return fields.Integer(load_default=50, validate=validate.Range(1, MAX_LIMIT, error=BETWEEN),
                          metadata={"description": f"how many rows, newest first (1-{MAX_LIMIT})"})


def _text(max_length: int = 200, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(1, max_length),
                                   validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters")],
                         **kwargs)


class Moment(fields.DateTime):
    """An RFC 3339 time (naive means UTC) between 1970 and 2100."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        try:
            moment = parse_time(str(value))
        except (ValueError, TypeError, OverflowError):
            raise ValidationError("must be an RFC 3339 time such as 2026-01-31T12:00:00Z") from None
        if not EARLIEST <= moment < LATEST:
            raise ValidationError("must be between 1970-01-01 and 2100-01-01")
        return moment


class When(Moment):
    """What the CLI's --since/--until take: an age before now (7d, 12h, 30m) or an RFC 3339 time."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        from hub.queries import when

        try:
            moment = when(str(value))
        except ValueError:
            raise ValidationError("must be an age (7d, 12h, 30m) or an RFC 3339 time such as "
                                  "2026-01-31T12:00:00Z") from None
        if not EARLIEST <= moment < LATEST:
            raise ValidationError("must be between 1970-01-01 and 2100-01-01")
        return moment


def _since(what: str) -> When:
    return When(metadata={"description": f"only {what} at or after this time, or this age ago "
                                         "(7d, 12h, 2026-11-01T00:00:00Z)"})


def _until(what: str) -> When:
    return When(metadata={"description": f"only {what} before this time, or this age ago (7d, 2026-11-01)"})


class Day(fields.Date):
    """A calendar date (YYYY-MM-DD) between 1970 and 2100."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError("must be a date YYYY-MM-DD") from None
        if not EARLIEST.date() <= day < LATEST.date():
            raise ValidationError("must be between 1970-01-01 and 2099-12-31")
        return day


class Flag(fields.Boolean):
    truthy = {"1", "true"}
    falsy = {"0", "false"}


# -- request schemas -----------------------------------------------------------------------------------------
class Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt filter is an error, not an unfiltered listing


class EventsQuery(Strict):
    type = _text(metadata={"description": "event type, `*` as wildcard (payment.*)"})
    subscriber = _id(metadata={"description": "subscriber id"})
    since = _since("events (their time)")
    until = _until("events (their time)")
    limit = _limit()


class DeliveriesQuery(Strict):
    connector = fields.String(validate=validate.OneOf(_connector_names()))
    status = fields.String(validate=validate.OneOf([DeliveryStatus.RECEIVED, DeliveryStatus.PROCESSED,
                                                    DeliveryStatus.FAILED, DeliveryStatus.REDACTED]))
    since = _since("deliveries received")
    until = _until("deliveries received")
    limit = _limit()


class ActionsQuery(Strict):
    status = fields.String(validate=validate.OneOf([*ActionStatus.PENDING, *ActionStatus.FINISHED]))
    connector = fields.String(validate=validate.OneOf(_connector_names()))
    rule = _text(120, metadata={"description": "rule id"})
    attempts = Flag(load_default=False, metadata={"description": "1: include each action's attempt log"})
    since = _since("actions planned")
    until = _until("actions planned")
    limit = _limit()


class ReplayBody(Strict):
    kind = fields.String(load_default="actions", validate=validate.OneOf(["actions", "deliveries"]))
    ids = fields.List(_id(strict=True), validate=validate.Length(max=MAX_REPLAY_IDS),
                      metadata={"description": f"at most {MAX_REPLAY_IDS} ids"})
    status = fields.String(validate=validate.OneOf([ActionStatus.FAILED, ActionStatus.DEAD]),
                           metadata={"description": "replay every action (dead or failed) or delivery "
                                                    "(failed) with this status"})
    since = When(metadata={"description": "with status: only those at or after this time, or this age ago "
                                          "(actions: last updated; deliveries: received)"})
    until = When(metadata={"description": "with status: only those before this time, or this age ago"})

    @validates_schema
    def _what(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("ids") and not data.get("status"):
            raise ValidationError("give ids, or a status to replay every one with it", "ids")
        if data.get("kind") == "deliveries" and data.get("status") not in (None, DeliveryStatus.FAILED):
            raise ValidationError("deliveries can be replayed from status failed only", "status")


class SubscriberPath(Schema):
    key = fields.String(required=True, validate=validate.Length(1, 320),
                        metadata={"description": "subscriber id or e-mail address"})

    @validates_schema
    def _id_in_range(self, data: dict[str, Any], **kwargs: Any) -> None:
        key = data["key"].strip()
        if key.isdigit() and not 1 <= int(key) <= MAX_ID:
            raise ValidationError(f"a subscriber id is between 1 and {MAX_ID}", "key")


class SubscriberQuery(Strict):
    timeline = fields.Integer(load_default=50, validate=validate.Range(1, MAX_LIMIT, error=BETWEEN),
                              metadata={"description": "how many timeline events"})


class KpiQuery(Strict):
    interval = fields.String(load_default="month", validate=validate.OneOf(INTERVALS))
    from_ = Day(data_key="from", metadata={"description": "first day (default: 12 months back)"})
    to = Day(metadata={"description": "last day, inclusive (default: today)"})

    @validates_schema
    def _span(self, data: dict[str, Any], **kwargs: Any) -> None:
        last = data.get("to") or date.today()
        first = data.get("from_") or months_back(last, 11)
        if last < first:
            raise ValidationError("must not be before from", "to")
        days = (last - first).days + 1
        interval = data.get("interval", "month")
        count = {"day": days, "week": days // 7 + 1,
                 "month": (last.year - first.year) * 12 + last.month - first.month + 1}[interval]
        if count > MAX_PERIODS:
            raise ValidationError(f"interval={interval} covers at most {MAX_PERIODS} periods; "
                                  f"from..to spans {count}", "from")


def months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


# -- response schemas ----------------------------------------------------------------------------------------
class ErrorOut(Schema):
    error = fields.String(required=True)
    message = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "what is wrong with each named parameter"})


class ReplayOut(Schema):
    replayed = fields.Integer(required=True, metadata={"description": "put back in line now"})
    already_pending = fields.Integer(required=True, metadata={"description": "asked for, but already waiting"})
    skipped = fields.Integer(required=True, metadata={"description": "asked for by id, but finished otherwise "
                                                                      "or unknown"})


class ActionWithAttemptsOut(ActionOut):
    attempt_log = fields.List(fields.Nested(AttemptOut))


class ProfileOut(Schema):
    """A subscriber's profile (identity, consent, subscriptions, value, loyalty, segments, timeline)."""

    class Meta:
        unknown = "include"

    id = fields.Integer(required=True)
    timeline = fields.List(fields.Dict())


class KpiReportOut(Schema):
    """KPIs per period (docs/metrics.md)."""

    class Meta:
        unknown = "include"


# -- the decorator: validate, and register the operation for the spec ----------------------------------------
@dataclass
class Operation:
    path: str
    method: str
    summary: str
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    path_params: type[Schema] | None = None
    responses: dict[int, tuple[str, Any]] = field(default_factory=dict)
    csv: bool = False  # the body may also be text/csv (passed to the view as {"csv": text})


OPERATIONS: list[Operation] = []


def _problems(exc: ValidationError) -> dict[str, list[str]]:
    messages = exc.normalized_messages()
    out: dict[str, list[str]] = {}
    for name, value in messages.items():
        name = "body" if name == "_schema" else name
        if isinstance(value, dict):  # a list field: {index: [messages]}
            value = [f"[{i}]: {'; '.join(map(str, m)) if isinstance(m, list) else m}" for i, m in value.items()]
        out[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return out


def bad_request(errors: dict[str, list[str]]) -> Any:
    text = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in sorted(errors.items()))
    return jsonify(error="bad request", message=text, errors=errors), 400


def _json_body() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError({"body": ["must be a JSON object"]}) from None


def accepts(path: str, method: str, summary: str, *, query: type[Schema] | None = None,
            body: type[Schema] | None = None, path_params: type[Schema] | None = None,
            responses: dict[int, tuple[str, Any]] | None = None, csv: bool = False) -> Callable[..., Any]:
    """Validate the request with the schemas and pass what they loaded as keyword arguments
    (``query``, ``body``); record the operation for ``/api/openapi.json``. With ``csv``, a
    ``text/csv`` body is passed as ``{"csv": text}`` for the view to check."""
    answers = {400: ("bad parameter", ErrorOut), 401: ("missing or wrong bearer token", ErrorOut),
               **(responses or {})}
    OPERATIONS.append(Operation(path, method, summary, query, body, path_params, answers, csv))

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def checked(**kwargs: Any) -> Any:
            errors: dict[str, list[str]] = {}
            loaded: dict[str, Any] = {}
            for key, schema, source in (("path", path_params, lambda: kwargs),
                                        ("query", query, lambda: request.args.to_dict()),
                                        ("body", body, _json_body)):
                if schema is None:
                    continue
                if key == "body" and csv and request.mimetype == "text/csv":
                    loaded[key] = {"csv": request.get_data(as_text=True)}
                    continue
                try:
                    data = source()
                    if not isinstance(data, dict):
                        raise ValidationError({"body": ["must be a JSON object"]})
                    loaded[key] = schema().load(data)
                except ValidationError as exc:
                    errors.update(_problems(exc))
            if errors:
                return bad_request(errors)
            if path_params is not None:
                kwargs = loaded.pop("path")
            return view(**kwargs, **loaded)

        return checked

    return wrap


# -- the OpenAPI document ------------------------------------------------------------------------------------
def openapi(title: str = "Subscriber hub admin API", version: str = "1") -> dict[str, Any]:
    spec = APISpec(title=title, version=version, openapi_version="3.1.0", plugins=[MarshmallowPlugin()],
                   info={"description": "The admin JSON API. Every call needs `Authorization: Bearer "
                                        "$HUB_ADMIN_TOKEN`. A bad parameter is answered 400 with `errors` "
                                        "naming it."})
    spec.components.security_scheme("admin", {"type": "http", "scheme": "bearer"})
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = []
        if op.path_params is not None:
            parameters.append({"in": "path", "schema": op.path_params})
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        operation: dict[str, Any] = {
            "summary": op.summary, "security": [{"admin": []}], "parameters": parameters,
            "responses": {str(code): {"description": text, "content": {"application/json": {"schema": schema}}}
                          for code, (text, schema) in sorted(op.responses.items())},
        }
        if op.body is not None:
            content: dict[str, Any] = {"application/json": {"schema": op.body}}
            if op.csv:
                content["text/csv"] = {"schema": {"type": "string", "description": "a header row, then one "
                                                                                     "row per item"}}
            operation["requestBody"] = {"required": True, "content": content}
        spec.path(path=op.path, operations={op.method: operation})
    return spec.to_dict()

