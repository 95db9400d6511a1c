"""Cohort KPIs from the MRR ledger: the MRR a period's starting cohort still brings at its end (net
revenue retention and net MRR churn over the subscribers active at the start, not diluted or
burdened by those who joined during the period), and the retention table of subscribers by the
month of their first payment (and by plan). Definitions and a worked example: docs/metrics.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.store.models import Subscription
from hub.store.subscriber_models import MrrMovement


def retained_mrr(session: Session, cuts: list[tuple[date, date]]) -> list[dict[str, int]]:
    """Per period, per currency: the MRR at the period's end of the subscribers whose MRR in that
    currency was above 0 at its start (expansion, contraction and churn of that cohort; new
    subscribers and reactivations of others are not in it). One grouped query for the opening MRR
    per subscriber and one over the movements inside the range."""
    if not cuts:
        return []
    m = MrrMovement
    t0 = datetime.combine(cuts[0][0], time(), timezone.utc)
    t1 = datetime.combine(cuts[-1][1], time(), timezone.utc)
    state: dict[tuple[int, str], int] = {
        (sub, cur): int(total or 0) for sub, cur, total in session.execute(
            select(m.subscriber_id, m.currency, func.sum(m.delta_minor)).where(m.time < t0)
            .group_by(m.subscriber_id, m.currency))}
    moves = session.execute(select(m.subscriber_id, m.currency, m.time, m.mrr_after_minor)
                            .where(m.time >= t0, m.time < t1).order_by(m.time, m.id)).all()
    out: list[dict[str, int]] = []
    i = 0
    for _, end in cuts:
        cohort = {k for k, v in state.items() if v > 0}
        limit = datetime.combine(end, time(), timezone.utc)
        while i < len(moves) and moves[i][2] < limit:
            sub, cur, _, after = moves[i]
            state[(sub, cur)] = int(after)
            i += 1
        retained: dict[str, int] = {}
        for sub, cur in cohort:
            retained[cur] = retained.get(cur, 0) + state[(sub, cur)]
        out.append(retained)
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


@dataclass
class _Life:
    first: datetime  # the first time MRR went above 0
    spans: list[tuple[datetime, datetime | None]]  # [above 0 from, until)


def _month(d: date) -> date:
    return date(d.year, d.month, 1)


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def cohorts(session: Session, start: date, end: date, by: str = "month") -> dict[str, Any]:
    """Subscribers by the month of their first payment (MRR above 0 for the first time; with
    ``by="plan"`` also by the plan of their first subscription): for each month from the cohort's
    own to ``end``, how many of them had MRR above 0 at that month's end, and the share."""
    first_month, last_month = _month(start), _month(end)
    stop = datetime.combine(_next_month(last_month), time(), timezone.utc)
    m = MrrMovement
    rows = session.execute(select(m.subscriber_id, m.currency, m.time, m.mrr_after_minor)
                           .where(m.time < stop).order_by(m.time, m.id)).all()
    current: dict[int, dict[str, int]] = {}
    lives: dict[int, _Life] = {}
    for sub, cur, at, after in rows:
        before = any(v > 0 for v in current.get(sub, {}).values())
        current.setdefault(sub, {})[cur] = int(after)
        now = any(v > 0 for v in current[sub].values())
        if now and not before:
            life = lives.setdefault(sub, _Life(at, []))
            life.spans.append((at, None))
        elif before and not now:
            life = lives[sub]
            life.spans[-1] = (life.spans[-1][0], at)
    plans: dict[int, str] = {}
    if by == "plan" and lives:
        firsts = session.execute(select(Subscription.subscriber_id, func.min(Subscription.id))
                                 .where(Subscription.subscriber_id.in_(list(lives)))
                                 .group_by(Subscription.subscriber_id)).all()
        ids = {sid: sub for sub, sid in firsts}
        for sid, plan in session.execute(select(Subscription.id, Subscription.plan)
                                         .where(Subscription.id.in_(list(ids)))).all():
            plan = plan or {}
            plans[ids[sid]] = str(plan.get("id") or plan.get("name") or "unknown")
    months: list[date] = []
    cursor = first_month
    while cursor <= last_month:
        months.append(cursor)
        cursor = _next_month(cursor)
    groups: dict[tuple[date, str | None], list[_Life]] = {}
    for sub, life in lives.items():
        cohort = _month(life.first.date())
        if first_month <= cohort <= last_month:
            groups.setdefault((cohort, plans.get(sub) if by == "plan" else None), []).append(life)
    out = []
    for (cohort, plan), members in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or "")):
        retained = []
        for month in (mo for mo in months if mo >= cohort):
            edge = datetime.combine(_next_month(month), time(), timezone.utc)
            retained.append(sum(1 for life in members if any(a < edge and (b is None or b >= edge)
                                                             for a, b in life.spans)))
        size = len(members)
        row: dict[str, Any] = {"cohort": cohort.strftime("%Y-%m"), "size": size, "retained": retained,
                               "retention": [round(n / size, 4) for n in retained]}
        if by == "plan":
            row = {"cohort": row["cohort"], "plan": plan, **{k: v for k, v in row.items() if k != "cohort"}}
        out.append(row)
    return {"from": first_month.strftime("%Y-%m"), "to": last_month.strftime("%Y-%m"), "by": by, "cohorts": out}
