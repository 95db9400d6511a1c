"""Two KPI views the period report (hub/metrics.py) does not give: monthly cohort retention from
the MRR ledger, and the aging of open failed payments (dunning cases) from the KPI facts."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from hub.store.subscriber_models import KpiFact, MrrMovement

AGING = ((0, 7, "0-7 days"), (8, 30, "8-30 days"), (31, 60, "31-60 days"), (61, 90, "61-90 days"),
         (91, None, "over 90 days"))
DUNNING = ("dunning_started", "dunning_recovered", "dunning_lost")


def _month(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def cohorts(session: Session, start: date, end: date) -> list[dict[str, Any]]:
    """Subscribers grouped by the month of their first MRR (``new``) from ``start`` to ``end``; for
    each later month up to ``end``, how many still had MRR (in any currency) at the month's end."""
    m = MrrMovement
    first_new = (select(m.subscriber_id, func.min(m.time).label("first")).where(m.kind == "new")
                 .group_by(m.subscriber_id).subquery())
    t0 = datetime.combine(_month(start), time(), timezone.utc)
    t1 = datetime.combine(_next_month(_month(end)), time(), timezone.utc)
    rows = session.execute(
        select(m.subscriber_id, first_new.c.first, m.time, m.currency, m.mrr_after_minor)
        .join(first_new, first_new.c.subscriber_id == m.subscriber_id)
        .where(first_new.c.first >= t0, first_new.c.first < t1, m.time < t1)
        .order_by(m.subscriber_id, m.time, m.id)).all()
    months = []
    cursor = _month(start)
    while cursor <= _month(end):
        months.append(cursor)
        cursor = _next_month(cursor)
    table: dict[date, list[int]] = {c: [0] * (len(months) - i) for i, c in enumerate(months)}
    size: dict[date, int] = {c: 0 for c in months}
    index = {c: i for i, c in enumerate(months)}
    ends = [datetime.combine(_next_month(c), time(), timezone.utc) for c in months]

    def close(cohort: date, changes: list[tuple[datetime, str, int]]) -> None:
        size[cohort] += 1
        offset, row, mrr, k = index[cohort], table[cohort], {}, 0
        for j in range(offset, len(months)):
            if k == len(changes):  # no more changes: the state holds to the end of the range
                if any(v > 0 for v in mrr.values()):
                    for rest in range(j - offset, len(row)):
                        row[rest] += 1
                return
            while k < len(changes) and changes[k][0] < ends[j]:
                mrr[changes[k][1]] = changes[k][2]
                k += 1
            if any(v > 0 for v in mrr.values()):
                row[j - offset] += 1

    current, cohort, changes = None, None, []
    for sid, first_time, when, currency, after in rows:
        if sid != current:
            if current is not None:
                close(cohort, changes)
            current, cohort, changes = sid, _month(first_time.astimezone(timezone.utc).date()), []
        changes.append((when, currency, after))
    if current is not None:
        close(cohort, changes)
    return [{"cohort": c.isoformat()[:7], "subscribers": size[c],
             "retained": table[c], "rates": [None if not size[c] else round(n / size[c], 4) for n in table[c]]}
            for c in months]


def dunning_aging(session: Session, as_of: datetime) -> list[dict[str, Any]]:
    """Open dunning cases (a failed payment not yet recovered or lost) by age, with the amounts due
    per currency."""
    f = KpiFact
    latest = (select(f.provider, f.subscription_id, func.max(f.time).label("at")).where(f.kind.in_(DUNNING))
              .group_by(f.provider, f.subscription_id).subquery())
    open_cases = session.execute(
        select(f.time, f.currency, f.amount_minor)
        .join(latest, and_(latest.c.provider == f.provider, latest.c.subscription_id == f.subscription_id,
                           latest.c.at == f.time))
        .where(f.kind == "dunning_started")).all()
    out = [{"bucket": label, "cases": 0, "amounts": {}} for _, _, label in AGING]
    for started, currency, amount in open_cases:
        age = max((as_of - started).days, 0)
        for row, (low, high, _) in zip(out, AGING):
            if age >= low and (high is None or age <= high):
                row["cases"] += 1
                if currency:
                    row["amounts"][currency] = row["amounts"].get(currency, 0) + int(amount or 0)
                break
    return out
