"""Listing and replay, shared by the CLI and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

from marshmallow import Schema, fields
from sqlalchemy import select, update

from hub import jobs
from hub.kernel.values import now_utc, parse_time
from hub.outbound import outbox
from hub.rules.model import parse_duration
from hub.store import Action, Attempt, Delivery, Event, utcnow
from hub.store.models import ActionStatus, DeliveryStatus

if TYPE_CHECKING:
    from hub.runtime import Hub


class DeliveryOut(Schema):
    id = fields.Integer()
    connector = fields.String()
    dedup_key = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    event_count = fields.Integer()
    received_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)
    size = fields.Function(lambda d: len(d.body or b""))


class EventOut(Schema):
    id = fields.String()
    type = fields.String()
    time = fields.DateTime()
    subject = fields.String(allow_none=True)
    provider = fields.String()
    provider_event_id = fields.String()
    provider_type = fields.String()
    origin = fields.String()
    delivery_id = fields.Integer(allow_none=True)
    subscriber_id = fields.Integer(allow_none=True)
    data = fields.Dict()


class AttemptOut(Schema):
    number = fields.Integer()
    outcome = fields.String()
    status_code = fields.Integer(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)
    request = fields.Raw(allow_none=True)
    response = fields.Raw(allow_none=True)


class ActionOut(Schema):
    id = fields.Integer()
    key = fields.String()
    action = fields.Function(lambda a: f"{a.connector}.{a.name}")
    status = fields.String()
    rule_id = fields.String(allow_none=True)
    rules_hash = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    subscriber_id = fields.Integer(allow_none=True)
    subject = fields.String(allow_none=True)
    step = fields.String(allow_none=True)
    due_at = fields.DateTime()
    attempts = fields.Integer()
    dry_run = fields.Boolean()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    cancelled_by = fields.String(allow_none=True)
    params = fields.Dict()
    suppressed = fields.String(allow_none=True)  # throttled | capped | skipped-historic | skipped-missed | no-route
    note = fields.String(allow_none=True)  # why: the suppression, a quiet-hours delay, the billing route
    via = fields.String(allow_none=True)  # the canonical action it was routed from
    variant = fields.String(allow_none=True)  # the rule's split variant
    converted_by = fields.String(allow_none=True)  # the goal event that converted it


def when(text: str) -> datetime:
    """An age before now (``7d``, ``12h``, ``30m``) or an RFC 3339 time (naive means UTC): what the CLI's
    ``--since``/``--until`` and the API's ``since``/``until`` accept. ValueError for anything else."""
    try:
        return now_utc() - parse_duration(text)
    except ValueError:
        pass
    except OverflowError:
        raise ValueError(f"{text!r} reaches back before year 1") from None
    try:
        return parse_time(text)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither an age (7d, 12h, 30m) nor an RFC 3339 time") from None


def _window(q: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since:
        q = q.where(column >= since)
    if until:
        q = q.where(column < until)
    return q


def list_deliveries(hub: "Hub", *, connector: str | None = None, status: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:
    q = _window(select(Delivery).order_by(Delivery.id.desc()).limit(limit), Delivery.received_at, since, until)
    if connector:
        q = q.where(Delivery.connector == connector)
    if status:
        q = q.where(Delivery.status == status)
    with hub.store.session() as s:
        return DeliveryOut(many=True).dump(s.execute(q).scalars().all())


def list_events(hub: "Hub", *, type_: str | None = None, subscriber_id: int | None = None,
                since: datetime | None = None, until: datetime | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    q = _window(select(Event).order_by(Event.time.desc(), Event.id).limit(limit), Event.time, since, until)
    if type_:
        q = q.where(Event.type.like(type_.replace("*", "%")))
    if subscriber_id:
        q = q.where(Event.subscriber_id == subscriber_id)
    with hub.store.session() as s:
        return EventOut(many=True).dump(s.execute(q).scalars().all())


def list_actions(hub: "Hub", *, status: str | None = None, connector: str | None = None,
                 rule: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 limit: int = 50, with_attempts: bool = False) -> list[dict[str, Any]]:
    q = _window(select(Action).order_by(Action.id.desc()).limit(limit), Action.created_at, since, until)
    if status:
        q = q.where(Action.status == status)
    if connector:
        q = q.where(Action.connector == connector)
    if rule:
        q = q.where(Action.rule_id == rule)
    with hub.store.session() as s:
        rows = s.execute(q).scalars().all()
        out = ActionOut(many=True).dump(rows)
        if with_attempts:
            for item in out:
                attempts = s.execute(select(Attempt).where(Attempt.action_id == item["id"])
                                     .order_by(Attempt.id)).scalars().all()
                item["attempt_log"] = AttemptOut(many=True).dump(attempts)
    return out


REPLAYABLE = {"actions": (ActionStatus.FAILED, ActionStatus.DEAD), "deliveries": (DeliveryStatus.FAILED,)}


def _report(asked: Sequence[int], replayed: Sequence[int], pending: set[int]) -> dict[str, int]:
    """What a replay did: ``replayed`` (back in line), ``already_pending`` (in line already),
    ``skipped`` (asked for by id but finished otherwise, or unknown)."""
    left = set(asked) - set(replayed)
    return {"replayed": len(replayed), "already_pending": len(left & pending), "skipped": len(left - pending)}


REPLAY_BATCH = 500  # rows per transaction; progress is reported after each


def _batches(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i:i + REPLAY_BATCH]) for i in range(0, len(ids), REPLAY_BATCH)]


def replay_actions(hub: "Hub", ids: Sequence[int] = (), *, status: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Re-queue failed or dead actions (by id, or every one with ``status``, in the time window)
    with a fresh retry budget, in batches; ``progress(done, total)`` after each."""
    if status and status not in REPLAYABLE["actions"]:
        raise ValueError(f"status: actions replay failed or dead, not {status!r}")
    if not ids and not status:
        return _report([], [], set())

    def matching(q: Any) -> Any:
        q = _window(q.where(Action.status.in_([status] if status else REPLAYABLE["actions"])), Action.updated_at,
                    since, until)
        return q.where(Action.id.in_(list(ids))) if ids else q

    with hub.store.session() as s:
        found = s.execute(matching(select(Action.id)).order_by(Action.id)).scalars().all()
    replayed: list[int] = []
    for batch in _batches(found):
        with hub.store.session() as s:  # the status is checked again: a row finished meanwhile is left alone
            rows = s.execute(matching(update(Action)).where(Action.id.in_(batch))
                             .values(status=ActionStatus.SCHEDULED, due_at=utcnow(), attempts=0, updated_at=utcnow())
                             .returning(Action.id)).scalars().all()
        outbox.dispatch(hub, rows)
        replayed += rows
        if progress:
            progress(len(replayed), len(found))
    with hub.store.session() as s:
        pending = set(s.execute(select(Action.id).where(Action.id.in_(list(ids)),
                                                        Action.status.in_(ActionStatus.PENDING))).scalars()) \
            if ids else set()
    return _report(ids, replayed, pending - set(replayed))


def replay_deliveries(hub: "Hub", ids: Sequence[int] = (), *, status: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Re-process failed deliveries (after a fix), by id or every one with ``status`` failed, in the window,
    in batches; ``progress(done, total)`` after each."""
    if status and status not in REPLAYABLE["deliveries"]:
        raise ValueError(f"status: deliveries replay failed, not {status!r}")
    if not ids and not status:
        return _report([], [], set())

    def matching(q: Any) -> Any:
        q = _window(q.where(Delivery.status == DeliveryStatus.FAILED), Delivery.received_at, since, until)
        return q.where(Delivery.id.in_(list(ids))) if ids else q

    with hub.store.session() as s:
        found = s.execute(matching(select(Delivery.id)).order_by(Delivery.id)).scalars().all()
    done: list[int] = []
    for batch in _batches(found):
        with hub.store.session() as s:
            rows = s.execute(matching(update(Delivery)).where(Delivery.id.in_(batch))
                             .values(status=DeliveryStatus.RECEIVED, error=None, enqueued=Delivery.enqueued + 1,
                                     enqueued_at=utcnow()).returning(Delivery.id, Delivery.enqueued)).all()
        if rows:
            jobs.enqueue_ingest(hub.redis, [(d, seq) for d, seq in rows])
        done += [d for d, _ in rows]
        if progress:
            progress(len(done), len(found))
    with hub.store.session() as s:
        pending = set(s.execute(select(Delivery.id).where(Delivery.id.in_(list(ids)),
                                                          Delivery.status == DeliveryStatus.RECEIVED)).scalars()) \
            if ids else set()
    return _report(ids, done, pending - set(done))
