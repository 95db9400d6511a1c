"""Cohort KPIs from the MRR ledger, in SQL (the same statements on PostgreSQL and SQLite): the MRR a
period's starting cohort still brings at its end (net revenue retention and net MRR churn over the
subscribers active at the start, not diluted or burdened by those who joined during the period),
and the retention table of subscribers by the month of their first payment (and by plan).
Definitions and a worked example: docs/metrics.md.

Both read the ledger's own before/after amounts (as the period report does): a row moves a currency
from "no MRR" to "MRR" when ``mrr_before_minor`` is 0 and ``mrr_after_minor`` above 0, and back."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import String, and_, case, cast, func, select
from sqlalchemy.orm import Session

from hub.store.models import Subscription
from hub.store.subscriber_models import MrrMovement


def period_start(session: Session, column: Any, unit: str) -> Any:
    """The UTC calendar day, ISO week (Monday) or month a time falls in, as SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(unit, func.timezone("UTC", column))
    modifiers = {"day": (), "week": ("weekday 0", "-6 days"), "month": ("start of month",)}[unit]
    return func.date(column, *modifiers)  # SQLite stores UTC


def as_date(value: Any) -> date:
    """A period start as either backend returns it (a timestamp, a date or 'YYYY-MM-DD')."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), timezone.utc)


def retained_mrr(session: Session, cuts: list[tuple[date, date]], interval: str,
                 mrr_start: list[dict[str, int]]) -> list[dict[str, int]]:
    """Per period, per currency: the MRR at the period's end of the subscribers whose MRR in that
    currency was above 0 at its start (expansion, contraction and churn of that cohort; new
    subscribers and reactivations of others are not in it), given each period's MRR at its start.

    That is the MRR at the start plus the movements inside the period of those whose first row in
    the period started above 0: one windowed, grouped query over the rows inside the range."""
    if not cuts:
        return []
    m = MrrMovement
    bucket = period_start(session, m.time, interval)
    opening = func.first_value(m.mrr_before_minor).over(partition_by=(m.subscriber_id, m.currency, bucket),
                                                        order_by=(m.time, m.id))
    rows = select(bucket.label("bucket"), m.currency, m.delta_minor, opening.label("opening")).where(
        m.time >= _at(cuts[0][0]), m.time < _at(cuts[-1][1])).subquery()
    moved = session.execute(select(rows.c.bucket, rows.c.currency, func.sum(rows.c.delta_minor))
                            .where(rows.c.opening > 0).group_by(rows.c.bucket, rows.c.currency)).all()
    out = [dict(start) for start in mrr_start]
    for bucket_value, currency, delta in moved:
        day = max(as_date(bucket_value), cuts[0][0])  # the first period may start inside its week or month
        i = next(i for i, (a, b) in enumerate(cuts) if a <= day < b)
        out[i][currency] = out[i].get(currency, 0) + int(delta or 0)
    return out


class CohortParams(Schema):
    """``hub metrics cohorts`` / ``GET /api/metrics/cohorts`` parameters."""

    start = fields.Date(data_key="from", load_default=None)  # first cohort month (any day in it)
    end = fields.Date(data_key="to", load_default=None)  # last month observed (any day in it)
    by = fields.String(load_default="month", validate=validate.OneOf(["month", "plan"]))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("'to' must not be before 'from'", "to")


def month_of(d: date) -> date:
    return date(d.year, d.month, 1)


def next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def months(start: date, end: date) -> list[date]:
    """The first days of the months from ``start``'s to ``end``'s."""
    out, cursor = [], month_of(start)
    while cursor <= end:
        out.append(cursor)
        cursor = next_month(cursor)
    return out


def _plan() -> Any:
    """The plan a subscription row names (its id, else its name), as SQL."""
    named = [func.nullif(cast(Subscription.plan[key].as_string(), String), "") for key in ("id", "name")]
    return case((Subscription.id.is_(None), None), else_=func.coalesce(*named, "unknown"))


def cohorts(session: Session, start: date, end: date, by: str = "month") -> dict[str, Any]:
    """Subscribers by the month of their first payment (MRR above 0 for the first time; with
    ``by="plan"`` also by the plan of their first subscription): for each month from the cohort's
    own to ``end``, how many of them had MRR above 0 at that month's end, and the share.

    One grouped query: per ledger row, whether it took its subscriber from no MRR in any currency to
    some or back (a running count of their currencies above 0) and the subscriber's first payment;
    summed per cohort month and month of the change. The months' counts are running sums of those."""
    span = months(start, end)
    stop = _at(next_month(span[-1]))
    m = MrrMovement
    step = case((m.mrr_after_minor > 0, 1), else_=0) - case((m.mrr_before_minor > 0, 1), else_=0)
    ledger = select(
        m.subscriber_id, m.time, step.label("step"),
        func.sum(step).over(partition_by=m.subscriber_id, order_by=(m.time, m.id), rows=(None, 0)).label("paying"),
        func.min(case((m.mrr_after_minor > 0, m.time))).over(partition_by=m.subscriber_id).label("first"),
    ).where(m.time < stop).subquery()
    row = ledger.c
    change = case((and_(row.step == 1, row.paying == 1), 1), (and_(row.step == -1, row.paying == 0), -1), else_=0)
    joined = case((and_(row.step == 1, row.paying == 1, row.time == row.first), 1), else_=0)
    cohort, month = period_start(session, row.first, "month"), period_start(session, row.time, "month")
    query = select(cohort, month, func.sum(change), func.sum(joined)).where(row.step != 0, row.first >= _at(span[0]))
    group = [cohort, month]
    if by == "plan":
        first_sub = (select(Subscription.subscriber_id, func.min(Subscription.id).label("id"))
                     .group_by(Subscription.subscriber_id).subquery())
        plan = _plan()
        query = (query.add_columns(plan).outerjoin(first_sub, first_sub.c.subscriber_id == row.subscriber_id)
                 .outerjoin(Subscription, Subscription.id == first_sub.c.id))
        group.append(plan)
    index = {d: i for i, d in enumerate(span)}
    groups: dict[tuple[date, str | None], dict[str, Any]] = {}
    for cohort_at, month_at, delta, size, *plan_of in session.execute(query.group_by(*group)).all():
        first = as_date(cohort_at)
        g = groups.setdefault((first, plan_of[0] if plan_of else None),
                              {"size": 0, "deltas": [0] * (len(span) - index[first])})
        g["size"] += int(size or 0)
        offset = index[as_date(month_at)] - index[first]
        if offset >= 0:  # a ledger whose before/after amounts disagree could show a change before the first payment
            g["deltas"][offset] += int(delta or 0)
    out = []
    for (first, plan), g in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        retained, running = [], 0
        for delta in g["deltas"]:
            running += delta
            retained.append(running)
        size = g["size"]
        row_out: dict[str, Any] = {"cohort": first.strftime("%Y-%m")}
        if by == "plan":
            row_out["plan"] = plan
        row_out.update(size=size, retained=retained, retention=[round(n / size, 4) if size else None
                                                                for n in retained])
        out.append(row_out)
    return {"from": span[0].strftime("%Y-%m"), "to": span[-1].strftime("%Y-%m"), "by": by, "cohorts": out}
