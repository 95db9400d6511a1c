"""A KPI view the period report does not give: the aging of open failed payments (dunning cases)
from the KPI facts (invoice aging). Cohort retention is in cohorts.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from hub.store.subscriber_models import KpiFact

AGING = ((0, 7, "0-7 days"), (8, 30, "8-30 days"), (31, 60, "31-60 days"), (61, 90, "61-90 days"),
         (91, None, "over 90 days"))
DUNNING = ("dunning_started", "dunning_recovered", "dunning_lost")


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
