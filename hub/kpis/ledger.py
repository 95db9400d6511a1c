"""Figures each MRR ledger row gets from its subscriber's whole ledger, so that cohort KPIs are plain
grouped sums (one pass over the ledger, no per-subscriber work at read time):

- ``opening_day_minor`` / ``opening_week_minor`` / ``opening_month_minor``: the subscriber's MRR in
  the row's currency at the start of the row's UTC day, ISO week and month (who was in a period's
  starting cohort, for net revenue retention);
- ``paying_change``: +1 when the row took the subscriber from no MRR in any currency to some, -1
  back, else 0; ``first_payment``: the first +1; ``first_paid_at``: its time, on every row of theirs
  (the cohort of the retention table).

The writers of the ledger leave these NULL; ``derive`` fills them in for every subscriber with such
a row, recomputing all of that subscriber's rows (a late row, earlier than others, changes them). It
runs before the KPIs are read, so a read costs the new rows since the last one. Recomputing gives
the same values whoever does it, so concurrent readers need no lock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from hub.store.subscriber_models import MrrMovement

UNITS = ("day", "week", "month")
COLUMNS = (*(f"opening_{u}_minor" for u in UNITS), "paying_change", "first_payment", "first_paid_at")
CHUNK = 2000  # subscribers recomputed per round trip


def unit_start(at: datetime, unit: str) -> datetime:
    """The UTC midnight starting ``at``'s day, ISO week (Monday) or month."""
    day = at.astimezone(timezone.utc).date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = date(day.year, day.month, 1)
    return datetime.combine(day, time(), timezone.utc)


def _mrr_before(past: list[tuple[datetime, int]], moment: datetime) -> int:
    for at, after in reversed(past):
        if at < moment:
            return after
    return 0


def figures(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """The derived columns of one subscriber's rows (id, currency, time, mrr_after_minor), given in
    ledger order (time, then id). A currency's MRR at a moment is the amount after its last row."""
    history: dict[str, list[tuple[datetime, int]]] = {}  # currency -> (time, MRR after), in order
    out: list[dict[str, Any]] = []
    paying = False
    first_at = None
    for row in rows:
        past = history.setdefault(row.currency, [])
        item = {"b_id": row.id, **{f"opening_{u}_minor": _mrr_before(past, unit_start(row.time, u)) for u in UNITS}}
        past.append((row.time, int(row.mrr_after_minor)))
        now = any(amounts[-1][1] > 0 for amounts in history.values() if amounts)
        item["paying_change"] = int(now) - int(paying)
        item["first_payment"] = now and not paying and first_at is None
        if item["first_payment"]:
            first_at = row.time
        paying = now
        out.append(item)
    for item in out:
        item["first_paid_at"] = first_at
    return out


def derive(session: Session) -> int:
    """Fill in the derived columns for every subscriber with a row that lacks them; how many
    subscribers were recomputed."""
    m = MrrMovement
    pending = list(session.execute(select(m.subscriber_id).where(m.paying_change.is_(None)).distinct()).scalars())
    statement = update(m).where(m.id == bindparam("b_id")).values(**{name: bindparam(name) for name in COLUMNS})
    for i in range(0, len(pending), CHUNK):
        chunk = pending[i:i + CHUNK]
        rows = session.execute(select(m.id, m.subscriber_id, m.currency, m.time, m.mrr_after_minor,
                                      *(getattr(m, name) for name in COLUMNS))
                               .where(m.subscriber_id.in_(chunk))
                               .order_by(m.subscriber_id, m.time, m.id)).all()
        params: list[dict[str, Any]] = []
        start = 0
        for j in range(1, len(rows) + 1):
            if j == len(rows) or rows[j].subscriber_id != rows[start].subscriber_id:
                for row, item in zip(rows[start:j], figures(rows[start:j])):
                    if any(getattr(row, name) != item[name] for name in COLUMNS):  # new, or changed by a late row
                        params.append(item)
                start = j
        if params:
            session.connection().execute(statement, params)
    return len(pending)
