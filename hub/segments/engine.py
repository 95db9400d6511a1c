"""Segment membership, loyalty points and tiers: evaluated for one subscriber after each event, and
for everyone by the periodic sweep (time-based transitions). Both paths load the same rows and
run the same evaluation; the sweep reads and writes in bulk."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import Text, bindparam, cast, delete, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import exponent, parse_time
from hub.kpis import Rates, floor_points
from hub.segments import bulk
from hub.segments.config import SegmentConfig
from hub.store import Subscriber, Subscription
from hub.store.subscriber_models import ProfileStats, SegmentMembership
from hub.subscribers.engagement import decayed

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)
CHUNK = 5000  # ids per query when loading given subscribers
BATCH = 10000  # subscribers per batch of the sweep's evaluation and writes


@dataclass
class Row:
    """What the evaluation reads for one subscriber."""

    id: int
    email: str | None
    tier: str | None
    points: int
    mrr_minor: int
    total_paid_minor: int
    currency: str | None
    first_seen_at: datetime | None
    last_engaged_at: datetime | None
    consent: dict[str, Any]
    segments: list[str]
    engagement_score: float = 0.0
    engagement_at: datetime | None = None
    active_months: list[str] = field(default_factory=list)
    paid: dict[str, int] = field(default_factory=dict)
    lifecycle: str | None = None
    subscriptions: list[tuple[str | None, datetime | None, int, str | None]] = field(default_factory=list)
    members: set[str] = field(default_factory=set)


@dataclass
class Result:
    lifecycle: str | None
    segments: list[str]
    tier: str | None
    points: int
    total_paid_minor: int
    mrr_minor: int
    context: dict[str, Any]


def load_rows(session: Session, ids: Sequence[int] | None = None) -> dict[int, Row]:
    """Subscribers (not merged away, not redacted) with their stats, subscriptions and memberships."""
    if ids is None and bulk.is_postgres(session):
        return _load_all_postgres(session)
    # Core columns (no ORM row objects) and JSON read as text: empty documents are the common case
    # and skip the parser, which is most of the cost of reading 100k profiles.
    s, p = Subscriber.__table__.c, ProfileStats.__table__.c
    query = select(s.id, s.email, s.tier, s.points, s.mrr_minor, s.total_paid_minor, s.currency, s.first_seen_at,
                   s.last_engaged_at, _text(s.consent), _text(s.segments), p.subscriber_id, p.engagement_score,
                   p.engagement_at, _text(p.active_months), _text(p.paid), p.lifecycle
                   ).outerjoin_from(Subscriber.__table__, ProfileStats.__table__, p.subscriber_id == s.id
                                    ).where(s.merged_into_id.is_(None), s.redacted_at.is_(None))
    rows: dict[int, Row] = {}
    conn = session.connection()
    for chunk in _chunks(ids):
        q = query if chunk is None else query.where(s.id.in_(chunk))
        for r in conn.execute(q):
            row = rows[r[0]] = Row(r[0], r[1], r[2], r[3] or 0, r[4] or 0, r[5] or 0, r[6], r[7], r[8],
                                   _json(r[9], {}), _json(r[10], []))
            if r[11] is not None:  # its stats
                row.engagement_score, row.engagement_at = r[12] or 0.0, r[13]
                row.active_months, row.paid, row.lifecycle = _json(r[14], []), _json(r[15], {}), r[16]
        scope = (lambda col: col.in_(chunk)) if chunk is not None else (lambda col: true())  # noqa: E731
        t = Subscription.__table__.c
        for sid, status, cancel_at, mrr, currency in conn.execute(
                select(t.subscriber_id, t.status, t.cancel_at, t.mrr_minor, t.currency)
                .where(scope(t.subscriber_id))):
            if sid in rows:
                rows[sid].subscriptions.append((status, cancel_at, mrr or 0, currency))
        m = SegmentMembership.__table__.c
        for sid, segment in conn.execute(select(m.subscriber_id, m.segment).where(scope(m.subscriber_id))):
            if sid in rows:
                rows[sid].members.add(segment)
    return rows


_ALL_POSTGRES = (
    "SELECT id, email, tier, points, mrr_minor, total_paid_minor, currency, first_seen_at, last_engaged_at,"
    " consent::text, segments::text FROM subscribers WHERE merged_into_id IS NULL AND redacted_at IS NULL",
    "SELECT subscriber_id, engagement_score, engagement_at, active_months::text, paid::text, lifecycle"
    " FROM profile_stats",
    "SELECT subscriber_id, status, cancel_at, mrr_minor, currency FROM subscriptions",
    "SELECT subscriber_id, segment FROM segment_memberships",
)


def _load_all_postgres(session: Session) -> dict[int, Row]:
    """``load_rows`` for everyone, read with the driver's cursor: the same four queries, without
    SQLAlchemy's per-row result processing (most of the cost at 100k subscribers). Times are made
    UTC here, as the UTCDateTime column type does."""
    people, stats, subscriptions, memberships = _ALL_POSTGRES
    rows: dict[int, Row] = {}
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(people)
        for r in cursor.fetchall():
            rows[r[0]] = Row(r[0], r[1], r[2], r[3] or 0, r[4] or 0, r[5] or 0, r[6], _utc(r[7]), _utc(r[8]),
                             _json(r[9], {}), _json(r[10], []))
        cursor.execute(stats)
        for sid, score, at, months, paid, lifecycle in cursor.fetchall():
            row = rows.get(sid)
            if row is not None:
                row.engagement_score, row.engagement_at = score or 0.0, _utc(at)
                row.active_months, row.paid, row.lifecycle = _json(months, []), _json(paid, {}), lifecycle
        cursor.execute(subscriptions)
        for sid, status, cancel_at, mrr, currency in cursor.fetchall():
            row = rows.get(sid)
            if row is not None:
                row.subscriptions.append((status, _utc(cancel_at), mrr or 0, currency))
        cursor.execute(memberships)
        for sid, segment in cursor.fetchall():
            row = rows.get(sid)
            if row is not None:
                row.members.add(segment)
    finally:
        cursor.close()
    return rows


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None else value.astimezone(timezone.utc)


def _text(column: Any) -> Any:
    return cast(column, Text)


def _json(value: str | None, empty: Any) -> Any:
    if not value or value in ("{}", "[]", "null"):
        return type(empty)()
    return json.loads(value)


def _chunks(ids: Sequence[int] | None) -> Iterable[list[int] | None]:
    if ids is None:
        yield None
        return
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


@lru_cache(maxsize=64)
def _months_back(year: int, month: int, n: int) -> frozenset[str]:
    out = set()
    for _ in range(n):
        out.add(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return frozenset(out)


def evaluate(config: SegmentConfig, rates: Rates, row: Row, now: datetime) -> Result:
    """The subscriber's lifecycle stage, custom segments, points and tier as of ``now``."""
    currency = row.currency
    total_paid = _sum_in(rates, row.paid, currency) if currency else 0
    by_currency: dict[str, int] = {}
    for _, _, minor, code in row.subscriptions:
        if code:
            by_currency[code] = by_currency.get(code, 0) + minor
    mrr = _sum_in(rates, by_currency, currency) if currency else 0
    reporting = rates.reporting or currency
    paid_reporting = _sum_in(rates, row.paid, reporting) if reporting else 0
    points = floor_points(paid_reporting / 10 ** exponent(reporting) * config.points_per_unit) if reporting else 0
    tier = config.tier_for(points)
    statuses = [st for st, _, _, _ in row.subscriptions]
    live = [(st, cancel_at) for st, cancel_at, _, _ in row.subscriptions if st in ("trialing", "active", "past_due")]
    ctx: dict[str, Any] = {
        "active": bool(live), "trialing": "trialing" in statuses, "past_due": "past_due" in statuses,
        "paused": "paused" in statuses,
        "cancellation_scheduled": any(c is not None and c > now for _, c in live),
        "mrr_minor": mrr, "total_paid_minor": total_paid, "currency": currency, "points": points, "tier": tier,
        "consent": row.consent,
        "tenure_days": (now - row.first_seen_at).total_seconds() / 86400 if row.first_seen_at else 0,
        "engagement": decayed(row.engagement_score, row.engagement_at, now, config.half_life_days),
        "days_since_engaged": (now - row.last_engaged_at).total_seconds() / 86400 if row.last_engaged_at else None,
        "active_months": len(_months_back(now.year, now.month, 3).intersection(row.active_months)),
        "now": now, "days_since": lambda value: _days_since(value, now), "timedelta": timedelta,
        "parse_time": parse_time,
        "subscriber": {"id": row.id, "email": row.email, "tier": tier, "points": points, "mrr_minor": mrr,
                       "total_paid_minor": total_paid, "currency": currency, "consent": row.consent},
    }
    segments: list[str] = []
    lifecycle = None
    if config.lifecycle or config.custom:
        context = (config.lifecycle or config.custom)[0].when.context(ctx)  # shared by the conditions below
        for seg in config.lifecycle:  # the first stage that holds
            if _holds(seg, context, ctx):
                lifecycle = seg.id
                break
        ctx["lifecycle"] = lifecycle  # seen by the custom conditions (the context reads ctx itself)
        segments = ([lifecycle] if lifecycle else []) + [seg.id for seg in config.custom
                                                         if _holds(seg, context, ctx)]
    else:
        ctx["lifecycle"] = None
    return Result(lifecycle, segments, tier, points, total_paid, mrr, ctx)


def _days_since(value: Any, now: datetime) -> float | None:
    return (now - parse_time(value)).total_seconds() / 86400 if value else None


def _holds(seg: Any, context: Any, ctx: dict[str, Any]) -> bool:
    try:
        return bool(seg.when.on(context))
    except Exception as exc:  # a segment expression that fails for one subscriber counts as "not in it"
        log.warning("segment %s (%s) failed for subscriber %s: %s", seg.id, seg.source,
                    ctx["subscriber"]["id"], exc)
        return False


def _sum_in(rates: Rates, amounts: dict[str, int], currency: str) -> int:
    total = 0
    for code, minor in amounts.items():
        if code == currency:  # what convert() returns for the same currency, without its lookups
            total += int(minor)
            continue
        converted = rates.convert(minor, code, currency)
        total += converted if converted is not None else 0  # no rate: that currency is left out
    return total


@dataclass
class Change:
    """One subscriber's evaluation against what is stored."""

    row: Row
    result: Result
    entered: list[str]
    exited: list[str]

    @property
    def tier_changed(self) -> bool:
        return self.result.tier != self.row.tier

    @property
    def profile_changed(self) -> bool:
        r, row = self.result, self.row
        return bool(self.entered or self.exited or self.tier_changed or r.points != row.points
                    or r.total_paid_minor != row.total_paid_minor or r.mrr_minor != row.mrr_minor
                    or r.lifecycle != row.lifecycle
                    or (r.segments != row.segments and sorted(r.segments) != sorted(row.segments)))


def diff(row: Row, result: Result) -> Change:
    members = row.members
    entered = [s for s in result.segments if s not in members]  # in evaluation order
    return Change(row, result, entered, sorted(members.difference(result.segments)) if members else [])


def write(session: Session, changes: Sequence[Change], now: datetime, *, copy: bool = False) -> None:
    """Store memberships and profile figures for the changed subscribers: executemany, or with
    ``copy`` (the sweep, PostgreSQL only) one COPY and one set-based statement per table."""
    entered = [(c.row.id, s) for c in changes for s in c.entered]
    exited = [(c.row.id, s) for c in changes for s in c.exited]
    changed = [c for c in changes if c.profile_changed]
    if copy:
        _write_by_copy(session, entered, exited, changed, now)
        return
    if entered:
        session.execute(SegmentMembership.__table__.insert(),
                        [{"subscriber_id": sid, "segment": s, "entered_at": now} for sid, s in entered])
    if exited:
        t = SegmentMembership.__table__
        session.execute(t.delete().where(t.c.subscriber_id == bindparam("sid"), t.c.segment == bindparam("seg")),
                        [{"sid": sid, "seg": seg} for sid, seg in exited])
    if not changed:
        return
    t = Subscriber.__table__
    session.execute(t.update().where(t.c.id == bindparam("sid")).values(
        segments=bindparam("segs"), tier=bindparam("tier"), points=bindparam("pts"),
        total_paid_minor=bindparam("paid"), mrr_minor=bindparam("mrr"), updated_at=bindparam("now")),
        [{"sid": c.row.id, "segs": c.result.segments, "tier": c.result.tier, "pts": c.result.points,
          "paid": c.result.total_paid_minor, "mrr": c.result.mrr_minor, "now": now} for c in changed])
    staged = [c for c in changed if c.result.lifecycle != c.row.lifecycle]
    if staged:
        p = ProfileStats.__table__
        session.execute(p.update().where(p.c.subscriber_id == bindparam("sid")).values(lifecycle=bindparam("lc")),
                        [{"sid": c.row.id, "lc": c.result.lifecycle} for c in staged])


_MEMBER = (("sid", "bigint"), ("seg", "text"))
_PROFILE = (("sid", "bigint"), ("segs", "jsonb"), ("tier", "text"), ("pts", "bigint"), ("paid", "bigint"),
            ("mrr", "bigint"), ("lc", "text"))


def _write_by_copy(session: Session, entered: list[tuple[int, str]], exited: list[tuple[int, str]],
                   changed: list[Change], now: datetime) -> None:
    """``write`` through temporary tables: the same rows and values."""
    if entered:
        bulk.apply(session, "sweep_entered", _MEMBER, entered,
                   "INSERT INTO segment_memberships (subscriber_id, segment, entered_at)"
                   " SELECT sid, seg, %(now)s FROM sweep_entered", now=now)
    if exited:
        bulk.apply(session, "sweep_exited", _MEMBER, exited,
                   "DELETE FROM segment_memberships m USING sweep_exited x"
                   " WHERE m.subscriber_id = x.sid AND m.segment = x.seg")
    if not changed:
        return
    bulk.apply(session, "sweep_profiles", _PROFILE,
               ((c.row.id, c.result.segments, c.result.tier, c.result.points, c.result.total_paid_minor,
                 c.result.mrr_minor, c.result.lifecycle) for c in changed),
               "UPDATE subscribers s SET segments = x.segs, tier = x.tier, points = x.pts,"
               " total_paid_minor = x.paid, mrr_minor = x.mrr, updated_at = %(now)s"
               " FROM sweep_profiles x WHERE s.id = x.sid",
               "UPDATE profile_stats p SET lifecycle = x.lc FROM sweep_profiles x"
               " WHERE p.subscriber_id = x.sid AND p.lifecycle IS DISTINCT FROM x.lc",
               now=now)


def derived_events(change: Change, cause: CanonicalEvent | None, now: datetime, tag: str) -> list[CanonicalEvent]:
    """segment.entered / segment.exited / tier.changed for one change (ids are deterministic)."""
    if not change.entered and not change.exited and (change.row.tier is None or not change.tier_changed):
        return []  # figures or stage only: nothing to announce
    when = cause.time if cause else now.isoformat()
    origin = cause.id if cause else f"sweep:{tag}"
    sid = change.row.id
    out = []
    lifecycle = {change.result.lifecycle, change.row.lifecycle}
    for kind, names in ((EventType.SEGMENT_ENTERED, change.entered), (EventType.SEGMENT_EXITED, change.exited)):
        for name in names:
            out.append(_derived(kind, when, f"{origin}:{sid}:{name}", sid, {
                "segment": {"id": name, "lifecycle": name in lifecycle, "stage": change.result.lifecycle}}))
    if change.tier_changed and change.row.tier is not None:  # a first assignment (new or back-filled) is no event
        out.append(_derived(EventType.TIER_CHANGED, when, f"{origin}:{sid}:tier", sid, {
            "tier": {"from": change.row.tier, "to": change.result.tier, "points": change.result.points}}))
    return out


def _derived(type_: str, when: str, key: str, subscriber_id: int, data: dict[str, Any]) -> CanonicalEvent:
    return CanonicalEvent(type=type_, time=when, provider="hub", providereventid=key, providertype="derived",
                          subject=f"subscriber:{subscriber_id}", data={**data, "subscriber": {"hub_id": subscriber_id}})


def refresh_one(hub: "Hub", session: Session, subscriber: Subscriber, config: SegmentConfig, rates: Rates,
                cause: CanonicalEvent | None, now: datetime) -> tuple[Change | None, list[CanonicalEvent]]:
    """Re-evaluate one subscriber after an event; return the change and the derived events."""
    session.flush()
    row = load_rows(session, [subscriber.id]).get(subscriber.id)
    if row is None:
        return None, []
    change = diff(row, evaluate(config, rates, row, now))
    write(session, [change], now)
    if change.profile_changed:  # keep the ORM objects in step with the UPDATE above, without reading them back
        result = change.result
        for name, value in (("segments", result.segments), ("tier", result.tier), ("points", result.points),
                            ("total_paid_minor", result.total_paid_minor), ("mrr_minor", result.mrr_minor),
                            ("updated_at", now)):
            set_committed_value(subscriber, name, value)
        stats = session.get(ProfileStats, subscriber.id)
        if stats is not None:
            set_committed_value(stats, "lifecycle", result.lifecycle)
    return change, derived_events(change, cause, now, "event")


def delete_memberships(session: Session, subscriber_id: int) -> None:
    session.execute(delete(SegmentMembership).where(SegmentMembership.subscriber_id == subscriber_id))
    session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(segments=[]))
