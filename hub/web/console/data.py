"""What the console's pages read: keyset pages over the big tables, the overview's health and
backlog figures, and the few operator writes the CLI has no function for (cancel). Listings are
dumped with the admin API's schemas (hub/queries.py) so the console and the API show the same."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import and_, func, select, tuple_, union, update
from sqlalchemy.orm import Session

from hub import queries
from hub.kernel.values import parse_time
from hub.store import Action, Attempt, Delivery, Event, ExternalId, Subscriber, utcnow
from hub.store.models import ActionStatus, DeliveryStatus
from hub.store.subscriber_models import SegmentMembership, SyncState

if TYPE_CHECKING:
    from hub.runtime import Hub

DELIVERY_STATUSES = (DeliveryStatus.RECEIVED, DeliveryStatus.PROCESSED, DeliveryStatus.FAILED,
                     DeliveryStatus.REDACTED)
ACTION_STATUSES = (*ActionStatus.PENDING, *ActionStatus.FINISHED)
CANCELLABLE = (ActionStatus.SCHEDULED, ActionStatus.QUEUED)
RECONCILE_KEY = "hub:console:last-reconcile"


class Page:
    """One page of rows, newest first, and the cursor of the next (older) page if there is one."""

    def __init__(self, rows: list[Any], limit: int, cursor: Any):
        self.rows = rows[:limit]
        self.next = cursor(self.rows[-1]) if len(rows) > limit else None


# -- keyset pages ---------------------------------------------------------------------------------

def deliveries(session: Session, *, connector: str | None, status: str | None, before: int | None,
               limit: int) -> Page:
    q = select(Delivery).order_by(Delivery.id.desc()).limit(limit + 1)
    if connector:
        q = q.where(Delivery.connector == connector)
    if status:
        q = q.where(Delivery.status == status)
    if before:
        q = q.where(Delivery.id < before)
    return Page(queries.DeliveryOut(many=True).dump(session.execute(q).scalars().all()), limit,
                lambda row: row["id"])


def event_cursor(row: dict[str, Any]) -> str:
    return f"{row['time']}|{row['id']}"


def parse_event_cursor(value: str) -> tuple[datetime, str]:
    """``time|id`` as the Events page writes it; ValueError otherwise."""
    when, sep, event_id = value.partition("|")
    if not sep or not event_id:
        raise ValueError("not a page cursor")
    return parse_time(when), event_id


def events(session: Session, *, type_: str | None, subscriber_id: int | None, delivery_id: int | None,
           before: tuple[datetime, str] | None, limit: int) -> Page:
    q = select(Event).order_by(Event.time.desc(), Event.id.desc()).limit(limit + 1)
    if type_:
        q = q.where(Event.type.like(type_.replace("*", "%")) if "*" in type_ else Event.type == type_)
    if subscriber_id:
        q = q.where(Event.subscriber_id == subscriber_id)
    if delivery_id:
        q = q.where(Event.delivery_id == delivery_id)
    if before:
        q = q.where(tuple_(Event.time, Event.id) < tuple_(*before))
    return Page(queries.EventOut(many=True).dump(session.execute(q).scalars().all()), limit, event_cursor)


def actions(session: Session, *, status: str | None, connector: str | None, rule: str | None,
            subscriber_id: int | None, before: int | None, limit: int) -> Page:
    q = select(Action).order_by(Action.id.desc()).limit(limit + 1)
    for column, value in ((Action.status, status), (Action.connector, connector), (Action.rule_id, rule),
                          (Action.subscriber_id, subscriber_id)):
        if value:
            q = q.where(column == value)
    if before:
        q = q.where(Action.id < before)
    return Page(queries.ActionOut(many=True).dump(session.execute(q).scalars().all()), limit,
                lambda row: row["id"])


def action(session: Session, action_id: int) -> dict[str, Any] | None:
    row = session.get(Action, action_id)
    if row is None:
        return None
    out = queries.ActionOut().dump(row)
    out["attempt_log"] = queries.AttemptOut(many=True).dump(session.execute(
        select(Attempt).where(Attempt.action_id == action_id).order_by(Attempt.id)).scalars().all())
    return out


def _starts_with(session: Session, column: Any, prefix: str) -> Any:
    """``column`` starts with ``prefix``, as each backend's index reads it: LIKE with the pattern
    operator classes on PostgreSQL, a range on SQLite (whose LIKE ignores case and skips indexes)."""
    if session.get_bind().dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%", escape="\\")
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def _matches(session: Session, q: str, *, exact: bool) -> list[tuple[Any, Any]]:
    """The ways ``q`` finds subscribers, each (an id column, a condition) one index probe: the id,
    the e-mail (any case), any provider's id, a first or last name or both (any case); whole values
    or their start."""
    def same(column: Any, value: str) -> Any:
        return column == value if exact else _starts_with(session, column, value)

    words = q.lower().split()
    first, last = func.lower(Subscriber.first_name), func.lower(Subscriber.last_name)
    out = [(Subscriber.id, same(Subscriber.email, q.casefold())),
           (ExternalId.subscriber_id, same(ExternalId.external_id, q))]
    if "@" not in q:
        out += [(Subscriber.id, same(first, q.lower())), (Subscriber.id, same(last, q.lower()))]
        if len(words) == 2:
            out.append((Subscriber.id, and_(first == words[0], same(last, words[1]))))
    if exact and q.isdigit() and len(q) < 19:
        out.append((Subscriber.id, Subscriber.id == int(q)))
    return out


def _found(session: Session, q: str, *, exact: bool, before: int | None, limit: int) -> list[Subscriber]:
    """One page of the subscribers ``q`` finds: each way of matching reads its own index for its
    newest ``limit + 1`` below ``before``; the page is the newest of those."""
    arms = []
    for column, condition in _matches(session, q, exact=exact):
        arm = select(column.label("id")).where(condition)
        if before:
            arm = arm.where(column < before)
        arms.append(arm.order_by(column.desc()).limit(limit + 1).subquery())
    ids = union(*(select(arm.c.id) for arm in arms)).subquery()
    return list(session.execute(select(Subscriber).where(Subscriber.id.in_(select(ids.c.id)))
                                .order_by(Subscriber.id.desc()).limit(limit + 1)).scalars())


def subscribers(session: Session, *, q: str | None, before: int | None, limit: int) -> Page:
    """Newest first. ``q`` finds by id, e-mail, any provider's id or name: the whole value when
    anyone has it, else the values starting with ``q`` (index probes either way, see ``_found``)."""
    q = (q or "").strip()
    if not q:
        query = select(Subscriber).order_by(Subscriber.id.desc()).limit(limit + 1)
        found = list(session.execute(query.where(Subscriber.id < before) if before else query).scalars())
    else:
        found = _found(session, q, exact=True, before=before, limit=limit)
        # later pages keep to whole values when the first page had them
        if not found and (not before or not _found(session, q, exact=True, before=None, limit=0)):
            found = _found(session, q, exact=False, before=before, limit=limit)
    rows = [{"id": s.id, "email": s.email, "name": " ".join(p for p in (s.first_name, s.last_name) if p),
             "tier": s.tier, "mrr_minor": s.mrr_minor, "currency": s.currency, "points": s.points,
             "segments": s.segments or [], "merged_into_id": s.merged_into_id,
             "created_at": s.created_at} for s in found]
    return Page(rows, limit, lambda row: row["id"])


def filtered_failed_deliveries(session: Session, connector: str | None, limit: int = 1000) -> list[int]:
    """The ids of failed deliveries (of one connector) a "replay these" button acts on."""
    q = select(Delivery.id).where(Delivery.status == DeliveryStatus.FAILED).order_by(Delivery.id).limit(limit)
    if connector:
        q = q.where(Delivery.connector == connector)
    return list(session.execute(q).scalars())


def cancel_actions(hub: "Hub", ids: Sequence[int]) -> int:
    """An operator cancels actions not yet being sent (scheduled or queued: a queued job then finds
    its action cancelled and does nothing)."""
    if not ids:
        return 0
    now = utcnow()
    with hub.store.session() as s:
        done = s.execute(update(Action).where(Action.id.in_(list(ids)), Action.status.in_(CANCELLABLE))
                         .values(status=ActionStatus.CANCELLED, last_error="cancelled by an operator",
                                 updated_at=now).returning(Action.id)).scalars().all()
    return len(done)


# -- overview -------------------------------------------------------------------------------------

def _hour(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)


def health(hub: "Hub") -> dict[str, Any]:
    """Database and Redis reachable, and the RQ workers alive (by their heartbeats)."""
    from hub import jobs
    from hub.status import backing_services

    out: dict[str, Any] = dict(backing_services(hub))
    try:
        out["workers"] = jobs.workers(hub.redis) if out["redis"] == "ok" else None
    except Exception:  # Redis went away between the two
        out["workers"] = None
    return out


def queue_backlog(hub: "Hub", session: Session) -> list[dict[str, Any]]:
    """Per RQ queue: jobs waiting and the age of the oldest; per destination: the outbox's due
    actions not yet sent and the oldest due time (what a stopped worker leaves behind)."""
    import connectors
    from hub import jobs

    now = utcnow()
    due = {c: (n, oldest) for c, n, oldest in session.execute(
        select(Action.connector, func.count(), func.min(Action.due_at))
        .where(Action.status.in_(ActionStatus.PENDING), Action.due_at <= now).group_by(Action.connector)).all()}
    ingest = session.execute(select(func.count(), func.min(Delivery.received_at))
                             .where(Delivery.status == DeliveryStatus.RECEIVED)).one()
    rows = []
    for name in jobs.all_queue_names(connectors.senders()):
        row: dict[str, Any] = {"queue": name, "jobs": None, "oldest_job_age": None}
        try:
            row["jobs"], enqueued = jobs.queue_depth(hub.redis, name)
            if enqueued:
                row["oldest_job_age"] = (now.replace(tzinfo=None) - enqueued).total_seconds()
        except Exception:  # Redis away or a job gone meanwhile: shown as unknown
            pass
        if name == "ingest":
            row["waiting"], oldest = ingest
        else:
            row["waiting"], oldest = due.get(name.removeprefix("deliver-"), (0, None))
        row["oldest_waiting_age"] = (now - oldest).total_seconds() if oldest else None
        rows.append(row)
    return rows


def webhooks_by_hour(session: Session, hours: int = 24) -> dict[str, list[int]]:
    """Deliveries received per connector in each of the last ``hours`` hours (oldest first)."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    hour = _hour(session, Delivery.received_at)
    rows = session.execute(select(Delivery.connector, hour, func.count())
                           # status IN (all): lets the (status, received_at) index serve the time range
                           .where(Delivery.status.in_(DELIVERY_STATUSES), Delivery.received_at >= start)
                           .group_by(Delivery.connector, hour)).all()
    out: dict[str, list[int]] = {}
    for connector, bucket, count in rows:
        when = bucket if isinstance(bucket, datetime) else datetime.fromisoformat(str(bucket))
        index = int((when.replace(tzinfo=None) - start.replace(tzinfo=None)).total_seconds() // 3600)
        if 0 <= index < hours:
            out.setdefault(connector, [0] * hours)[index] += int(count)
    return dict(sorted(out.items()))


def attention(session: Session) -> dict[str, Any]:
    """Failed deliveries and failed or dead actions: counts and the latest few."""
    counts = dict(session.execute(select(Action.status, func.count()).where(
        Action.status.in_((ActionStatus.FAILED, ActionStatus.DEAD))).group_by(Action.status)).all())
    counts["deliveries_failed"] = session.execute(select(func.count()).where(
        Delivery.status == DeliveryStatus.FAILED)).scalar_one()
    latest_actions = queries.ActionOut(many=True).dump(session.execute(
        select(Action).where(Action.status.in_((ActionStatus.FAILED, ActionStatus.DEAD)))
        .order_by(Action.id.desc()).limit(5)).scalars().all())
    latest_deliveries = queries.DeliveryOut(many=True).dump(session.execute(
        select(Delivery).where(Delivery.status == DeliveryStatus.FAILED).order_by(Delivery.id.desc()).limit(5)
    ).scalars().all())
    return {"counts": counts, "actions": latest_actions, "deliveries": latest_deliveries}


def last_webhooks(session: Session, names: Sequence[str]) -> dict[str, datetime]:
    """When each connector's newest delivery arrived (one index probe per connector)."""
    out = {}
    for name in names:
        # ordered like the (connector, id) index, so even a generic prepared plan walks that index
        newest = session.execute(select(Delivery.received_at).where(Delivery.connector == name)
                                 .order_by(Delivery.connector.desc(), Delivery.id.desc()).limit(1)).scalar()
        if newest is not None:
            out[name] = newest
    return out


def rate_limit_use(hub: "Hub", connector: Any) -> dict[str, list[dict[str, Any]]]:
    """Per rate-limit bucket of an outbound connector: each window's requests used now and its limit."""
    from connectors.base import windows
    from hub.outbound.ratelimit import RateLimiter, limit_key

    limiter = RateLimiter(hub.redis)
    account = connector.rate_limit_account(hub.settings)
    out = {}
    for bucket, value in sorted(connector.rate_limits_for(hub.settings).items()):
        spans = windows(value)
        used = limiter.used(limit_key(connector.name, account, bucket), spans)
        out[bucket] = [{"used": u, "limit": n, "seconds": w} for u, (n, w) in zip(used, spans)]
    return out


# -- segments -------------------------------------------------------------------------------------

def segment_sizes(session: Session) -> dict[str, int]:
    return dict(session.execute(select(SegmentMembership.segment, func.count())
                                .group_by(SegmentMembership.segment)).all())


def _day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def segment_history(session: Session, sizes: dict[str, int], days: int = 30) -> dict[str, list[int]]:
    """Each segment's size at the end of each of the last ``days`` days (oldest first), worked back
    from today's size through the ``segment.entered`` / ``segment.exited`` events."""
    from datetime import date as date_

    today = utcnow().date()
    start = today - timedelta(days=days - 1)
    segment, day = Event.data["segment"]["id"].as_string(), _day(session, Event.time)
    rows = session.execute(select(segment, day, Event.type, func.count())
                           .where(Event.type.in_(("segment.entered", "segment.exited")),
                                  Event.time >= datetime.combine(start, datetime.min.time(), utcnow().tzinfo))
                           .group_by(segment, day, Event.type)).all()
    net: dict[str, list[int]] = {}
    for name, when, kind, count in rows:
        when = when if isinstance(when, date_) else date_.fromisoformat(str(when)[:10])
        index = (when - start).days
        if name and 0 <= index < days:
            net.setdefault(name, [0] * days)[index] += count if kind == "segment.entered" else -count
    out = {}
    for name in set(sizes) | set(net):
        size, series = sizes.get(name, 0), []
        changes = net.get(name, [0] * days)
        for i in range(days - 1, -1, -1):  # the size at the end of day i, newest first
            series.append(size)
            size -= changes[i]
        out[name] = series[::-1]
    return out


def sync_states(session: Session) -> dict[str, dict[str, int]]:
    """Per sync target: how many subscribers' last sync action is in each outbox status."""
    rows = session.execute(select(SyncState.target, Action.status, func.count())
                           .outerjoin(Action, Action.key == SyncState.action_key)
                           .group_by(SyncState.target, Action.status)).all()
    out: dict[str, dict[str, int]] = {}
    for target, status, count in rows:
        out.setdefault(target, {})[status or "never sent"] = int(count)
    return dict(sorted(out.items()))


def save_reconcile(hub: "Hub", report: dict[str, Any], repaired: bool) -> None:
    record = {"at": utcnow().isoformat(), "repair": repaired, **report, "drift": report["drift"][:500],
              "drift_total": len(report["drift"])}
    hub.redis.set(RECONCILE_KEY, json.dumps(record, default=str))


def last_reconcile(hub: "Hub") -> dict[str, Any] | None:
    try:
        raw = hub.redis.get(RECONCILE_KEY)
    except Exception:
        return None
    return json.loads(raw) if raw else None
