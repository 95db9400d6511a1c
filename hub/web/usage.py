"""``POST /api/usage``: metered usage from the merchant's own system, as ``usage.recorded`` events.

Behind the admin token like the rest of ``/api``. The body is ``{"records": [...]}`` (at most
``MAX_RECORDS``); every record is validated first and a bad one is answered with its index and
reason, storing nothing. A record's ``idempotency_key`` makes its event id, so sending a record
again (a retry, a replayed batch) records nothing twice. Fields: rules/README.md, "Usage".
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import select

from hub.ingest.pipeline import record_events
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import rfc3339
from hub.outbound import outbox
from hub.store import Event, Subscriber
from hub.web.auth import require_admin

bp = Blueprint("usage", __name__, url_prefix="/api")
bp.before_request(require_admin)

MAX_RECORDS = 1000
PROVIDER = "api"  # the events' provider: the merchant's own system, through this endpoint
MERCHANT_ID = "merchant"  # external ids given here are the merchant's own (sent to Klaviyo as external_id)


class UsageRecordSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    subscriber = fields.String(validate=validate.Length(min=1, max=255))  # hub id or e-mail
    external_id = fields.String(validate=validate.Length(min=1, max=255))  # the merchant's id for them
    subscription_id = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    metric = fields.String(required=True, validate=validate.Length(min=1, max=100))
    quantity = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=0))
    limit = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(min=0, min_inclusive=False))
    time = fields.AwareDateTime(load_default=None)
    idempotency_key = fields.String(required=True, validate=validate.Length(min=1, max=200))

    @validates_schema
    def _who(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("subscriber") and not data.get("external_id"):
            raise ValidationError("give subscriber (hub id or e-mail) or external_id", "subscriber")

    @post_load
    def _whole_numbers(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        for name in ("quantity", "limit"):
            if isinstance(data.get(name), float) and data[name].is_integer():
                data[name] = int(data[name])
        return data


class UsageBatchSchema(Schema):
    records = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=MAX_RECORDS))


def to_event(record: dict[str, Any], now: datetime) -> CanonicalEvent:
    who = str(record.get("subscriber") or "")
    subscriber: dict[str, Any] = {}
    if who.isdigit():
        subscriber["hub_id"] = int(who)
    elif who:
        subscriber["email"] = who.casefold()
    if record.get("external_id"):
        subscriber["external_ids"] = {MERCHANT_ID: record["external_id"]}
    usage = {"metric": record["metric"], "quantity": record["quantity"], "limit": record.get("limit"),
             "idempotency_key": record["idempotency_key"]}
    data: dict[str, Any] = {"subscriber": subscriber, "usage": {k: v for k, v in usage.items() if v is not None}}
    if record.get("subscription_id"):
        data["subscription"] = {"id": record["subscription_id"]}
    when = record.get("time") or now
    return CanonicalEvent(type=EventType.USAGE_RECORDED, time=rfc3339(when.astimezone(timezone.utc)),
                          provider=PROVIDER, providereventid=record["idempotency_key"], providertype="usage",
                          subject=who or record.get("external_id"), data=data)


@bp.post("/usage")
def record_usage() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'send a JSON object {"records": [...]}')
    try:
        raw = UsageBatchSchema().load(body)["records"]
    except ValidationError as exc:
        abort(400, f"records: {'; '.join(map(str, exc.messages.get('records', exc.messages)))}")
    problems: list[dict[str, Any]] = []
    good: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, dict):
                raise ValidationError({"_schema": ["a record is a JSON object"]})
            good.append((index, UsageRecordSchema().load(item)))
        except ValidationError as exc:
            problems.append({"index": index, "errors": exc.messages})
    seen: set[str] = set()
    for index, r in good:
        if r["idempotency_key"] in seen:
            problems.append({"index": index, "errors": {"idempotency_key": ["used twice in this batch"]}})
        seen.add(r["idempotency_key"])
    hub = current_app.extensions["hub"]
    with hub.store.session() as session:
        hub_ids = {int(r["subscriber"]) for _, r in good if str(r.get("subscriber") or "").isdigit()}
        known = set(session.execute(select(Subscriber.id).where(Subscriber.id.in_(hub_ids))).scalars()) \
            if hub_ids else set()
        for index, r in good:
            if str(r.get("subscriber") or "").isdigit() and int(r["subscriber"]) not in known:
                problems.append({"index": index, "errors": {"subscriber": [f"no subscriber {r['subscriber']}"]}})
        if problems:  # nothing is stored unless every record is good
            return jsonify(error="bad request", message="some records are invalid; nothing was recorded",
                           records=sorted(problems, key=lambda p: p["index"])), 400
        records = [r for _, r in good]
        now = datetime.now(timezone.utc)
        events = [to_event(r, now) for r in records]
        existing = set(session.execute(select(Event.id).where(Event.id.in_([e.id for e in events]))).scalars())
        due = record_events(hub, session, events, origin="import")
    outbox.dispatch(hub, due)
    return jsonify(recorded=len(events) - len(existing), duplicates=len(existing),
                   events=[e.id for e in events])

