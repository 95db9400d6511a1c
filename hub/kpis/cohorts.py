"""Cohort KPIs from the MRR ledger, in SQL (the same statements on PostgreSQL and SQLite): the MRR a
period's starting cohort still brings at its end (net revenue retention and net MRR churn over the
subscribers active at the start, not diluted or burdened by those who joined during the period),
and the retention table of subscribers by the month of their first payment (and by plan).
Definitions and a worked example: docs/metrics.md.

Both are plain grouped sums over the ledger, reading figures each row gets from its subscriber's
whole ledger (ledger.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import Session

from hub.kpis import ledger
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


def period_index(column: Any, edges: list[datetime]) -> Any:
    """SQL: which of the periods between consecutive ``edges`` a time falls in (0 for the first),
    NULL outside. Comparisons: far cheaper per row than computing a calendar day or month."""
    return case((column < edges[0], None), *[(column < edge, i) for i, edge in enumerate(edges[1:])], else_=None)


def starting_cohort_moves(interval: str) -> Any:
    """SQL, summed over ledger rows: the movements of those who had MRR in the row's currency at the
    start of the row's calendar day, week or month (``interval``), i.e. of that period's starting
    cohort. Added to a period's MRR at its start it is the cohort's MRR at the end (net revenue
    retention). ``first_period_moves`` gives a first period that starts inside its week or month."""
    m = MrrMovement
    return func.sum(case((getattr(m, f"opening_{interval}_minor") > 0, m.delta_minor), else_=0))


def first_period_moves(session: Session, cuts: list[tuple[date, date]], interval: str) -> dict[str, int] | None:
    """Per currency, the starting cohort's movements in a first period that starts inside its
    calendar week or month (a window over its few rows finds who had MRR at its start); None when
    the first period is a whole one."""
    first_start, first_end = _at(cuts[0][0]), _at(cuts[0][1])
    if ledger.unit_start(first_start, interval) == first_start:
        return None
    m = MrrMovement
    at_start = func.first_value(m.mrr_before_minor).over(partition_by=(m.subscriber_id, m.currency),
                                                         order_by=(m.time, m.id))
    rows = select(m.currency, m.delta_minor, at_start.label("opening")).where(
        m.time >= first_start, m.time < first_end).subquery()
    return {currency: int(delta or 0) for currency, delta in session.execute(
        select(rows.c.currency, func.sum(rows.c.delta_minor)).where(rows.c.opening > 0).group_by(rows.c.currency))}


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

    One grouped query: the ledger rows that took a subscriber of these cohorts from no MRR in any
    currency to some or back (ledger.py), summed per cohort month and month of the change; the
    months' counts are running sums of those."""
    span = months(start, end)
    stop = _at(next_month(span[-1]))
    ledger.derive(session)
    m = MrrMovement
    edges = [_at(d) for d in span] + [stop]
    cohort, month = period_index(m.first_paid_at, edges), period_index(m.time, edges)
    query = select(cohort, month, func.sum(m.paying_change), func.sum(case((m.first_payment, 1), else_=0))).where(
        m.paying_change != 0, m.first_paid_at >= edges[0], m.first_paid_at < stop, m.time < stop)
    group = [cohort, month]
    if by == "plan":
        first_sub = (select(Subscription.subscriber_id, func.min(Subscription.id).label("id"))
                     .group_by(Subscription.subscriber_id).subquery())
        plan = _plan()
        query = (query.add_columns(plan).outerjoin(first_sub, first_sub.c.subscriber_id == m.subscriber_id)
                 .outerjoin(Subscription, Subscription.id == first_sub.c.id))
        group.append(plan)
    groups: dict[tuple[date, str | None], dict[str, Any]] = {}
    for cohort_at, month_at, delta, size, *plan_of in session.execute(query.group_by(*group)).all():
        first = span[cohort_at]
        g = groups.setdefault((first, plan_of[0] if plan_of else None),
                              {"size": 0, "deltas": [0] * (len(span) - cohort_at)})
        g["size"] += int(size or 0)
        offset = month_at - cohort_at
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
