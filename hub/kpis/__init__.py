"""Subscription KPIs from the ledgers: MRR movements (``mrr_movements``) and trial and dunning
outcomes (``kpi_facts``). A report is two indexed, grouped SQL queries whatever the range; the
periods are folded in Python from per-day sums. Definitions and a worked example: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from hub.kernel.settings import Settings
from hub.kernel.values import exponent
from hub.kpis import cohorts, ledger
from hub.store.subscriber_models import KpiFact, MrrMovement

MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation")
INTERVALS = ("day", "week", "month")


class MetricsError(ValueError):
    """The report cannot be computed as asked (bad dates, a currency with no configured rate)."""


@dataclass(frozen=True)
class Rates:
    """What one unit of each currency is worth in the reporting currency (``HUB_FX_RATES``)."""

    reporting: str | None
    rates: dict[str, Decimal]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Rates":
        reporting = (settings["HUB_REPORTING_CURRENCY"] or "").upper() or None
        rates: dict[str, Decimal] = {}
        for item in settings["HUB_FX_RATES"] or []:
            code, _, value = item.partition("=")
            if not value:
                raise MetricsError(f"HUB_FX_RATES: {item!r} is not CODE=RATE (e.g. EUR=1.08)")
            rates[code.strip().upper()] = Decimal(value.strip())
        if reporting:
            rates[reporting] = Decimal(1)
        return cls(reporting, rates)

    def convert(self, minor: int, currency: str, to: str | None = None) -> int | None:
        """``minor`` units of ``currency`` in ``to`` (default: the reporting currency); None if no rate."""
        to = (to or self.reporting or currency).upper()
        currency = currency.upper()
        if currency == to:
            return int(minor)
        if currency not in self.rates or to not in self.rates:
            return None
        major = Decimal(minor) / (Decimal(10) ** exponent(currency)) * self.rates[currency] / self.rates[to]
        return int((major * (Decimal(10) ** exponent(to))).to_integral_value())


def periods(start: date, end: date, interval: str) -> list[tuple[date, date]]:
    """[start, end) cut into calendar days, ISO weeks (Monday) or months, clipped to the range."""
    if interval not in INTERVALS:
        raise MetricsError(f"interval must be one of {', '.join(INTERVALS)}")
    if end <= start:
        raise MetricsError("--to must not be before --from")
    out = []
    cursor = start
    while cursor < end:
        if interval == "day":
            nxt = cursor + timedelta(days=1)
        elif interval == "week":
            nxt = cursor + timedelta(days=7 - cursor.weekday())
        else:
            nxt = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        out.append((cursor, min(nxt, end)))
        cursor = nxt
    return out


def _day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


FEW_PERIODS = 62  # told apart by comparisons per row; more (days) are grouped by calendar day


def _bucket(session: Session, column: Any, t0: datetime, cuts: list[tuple[date, date]]) -> Any:
    """SQL: the period a time falls in (NULL before ``t0``): its index among few periods, else its UTC day."""
    if len(cuts) <= FEW_PERIODS:
        return cohorts.period_index(column, [t0] + [datetime.combine(b, time(), timezone.utc) for _, b in cuts])
    return case((column < t0, literal(None)), else_=_day(session, column))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def report(session: Session, start: date, end_inclusive: date, interval: str, rates: Rates) -> dict[str, Any]:
    """KPIs per period from ``start`` to ``end_inclusive``, in the reporting currency or per currency."""
    end = end_inclusive + timedelta(days=1)
    cuts = periods(start, end, interval)
    t0 = datetime.combine(start, time(), timezone.utc)
    t1 = datetime.combine(end, time(), timezone.utc)
    ledger.derive(session)
    m = MrrMovement
    customers = case((((m.mrr_before_minor == 0) & (m.mrr_after_minor > 0)), 1),
                     (((m.mrr_before_minor > 0) & (m.mrr_after_minor == 0)), -1), else_=0)
    day = _bucket(session, m.time, t0, cuts)
    movement_rows = session.execute(
        select(day.label("day"), m.kind, m.currency, func.sum(m.delta_minor), func.count(), func.sum(customers),
               cohorts.starting_cohort_moves(interval))
        .where(m.time < t1).group_by(day, m.kind, m.currency)).all()
    f = KpiFact
    fday = _bucket(session, f.time, t0, cuts)
    fact_rows = session.execute(
        select(fday.label("day"), f.kind, f.currency, func.count(), func.sum(f.amount_minor))
        .where(f.time >= t0, f.time < t1).group_by(fday, f.kind, f.currency)).all()

    days = {}
    for i, (a, b) in enumerate(cuts):
        d = a
        while d < b:
            days[d] = i
            d += timedelta(days=1)

    def index(value: Any) -> int:
        return value if isinstance(value, int) else days[_as_date(value)]
    currencies = sorted({r[2] for r in movement_rows if r[2]} | {r[2] for r in fact_rows if r[2]})
    groups = [rates.reporting] if rates.reporting else currencies
    blank = lambda: {"delta": {k: 0 for k in (*MOVEMENTS, "transfer")}, "count": {k: 0 for k in MOVEMENTS},  # noqa
                     "customers": 0, "facts": {}, "amounts": {}}
    acc = {g: [blank() for _ in cuts] for g in groups}
    opening = {g: {"mrr": 0, "customers": 0} for g in groups}
    missing: set[str] = set()

    def group_and_amount(currency: str | None, minor: int) -> tuple[str | None, int]:
        if not rates.reporting:
            return currency, minor
        converted = rates.convert(minor, currency or rates.reporting)
        if converted is None:
            missing.add(str(currency))
            return None, 0
        return rates.reporting, converted

    native = {c: [0] * (len(cuts) + 1) for c in currencies}  # per currency: the opening, then each period's net
    kept = {c: [0] * len(cuts) for c in currencies}  # per currency: each period's starting cohort's net
    for day_value, kind, currency, delta, count, cust, cohort_net in movement_rows:
        native[currency][0 if day_value is None else index(day_value) + 1] += int(delta or 0)
        if day_value is not None:
            kept[currency][index(day_value)] += int(cohort_net or 0)
        group, amount = group_and_amount(currency, int(delta or 0))
        if group is None:
            continue
        if day_value is None:
            opening[group]["mrr"] += amount
            opening[group]["customers"] += int(cust or 0)
            continue
        bucket = acc[group][index(day_value)]
        bucket["delta"][kind] = bucket["delta"].get(kind, 0) + amount
        if kind in MOVEMENTS:
            bucket["count"][kind] += int(count)
        bucket["customers"] += int(cust or 0)
    for day_value, kind, currency, count, amount in fact_rows:
        group, converted = group_and_amount(currency, int(amount or 0)) if currency else (groups[0] if groups else None, 0)
        if group is None:
            continue
        bucket = acc[group][index(day_value)]
        bucket["facts"][kind] = bucket["facts"].get(kind, 0) + int(count)
        bucket["amounts"][kind] = bucket["amounts"].get(kind, 0) + converted
    first = cohorts.first_period_moves(session, cuts, interval)
    for currency in currencies:
        if first is not None:
            kept[currency][0] = first.get(currency, 0)
        for i in range(len(cuts)):  # the starting cohort's MRR at the end: at the start, plus its net
            group, amount = group_and_amount(currency, sum(native[currency][:i + 1]) + kept[currency][i])
            if group is not None:
                acc[group][i]["retained"] = acc[group][i].get("retained", 0) + amount
    if missing:
        raise MetricsError(f"no exchange rate for {', '.join(sorted(missing))} into {rates.reporting}: "
                           "add it to HUB_FX_RATES (e.g. EUR=1.08)")
    out = {g: _kpis(cuts, acc[g], opening[g]) for g in groups}
    result: dict[str, Any] = {"from": start.isoformat(), "to": end_inclusive.isoformat(), "interval": interval}
    if rates.reporting:
        result.update(currency=rates.reporting, periods=out.get(rates.reporting, []))
    else:
        result["per_currency"] = out
    return result


def _rate(numerator: float, denominator: float) -> float | None:
    return None if not denominator else round(numerator / denominator, 4)


def _kpis(cuts: list[tuple[date, date]], buckets: list[dict[str, Any]], opening: dict[str, int]
          ) -> list[dict[str, Any]]:
    out = []
    mrr, active = opening["mrr"], opening["customers"]
    for (a, b), bucket in zip(cuts, buckets):
        d, n, facts, amounts = bucket["delta"], bucket["count"], bucket["facts"], bucket["amounts"]
        mrr_end = mrr + sum(d.values())
        active_end = active + bucket["customers"]
        churn, contraction = -d["churn"], -d["contraction"]
        customer_churn = _rate(n["churn"], active)
        arpa = None if not active_end else mrr_end / active_end  # unrounded: CLV is computed from it
        retained = bucket.get("retained", 0)  # the starting cohort's MRR at the end (cohorts.py)
        converted, lost = facts.get("trial_converted", 0), facts.get("trial_lost", 0)
        recovered, unrecovered = facts.get("dunning_recovered", 0), facts.get("dunning_lost", 0)
        out.append({
            "start": a.isoformat(), "end": (b - timedelta(days=1)).isoformat(),
            "mrr_start": mrr, "mrr": mrr_end, "arr": mrr_end * 12,
            "movements": {"new": d["new"], "expansion": d["expansion"], "contraction": contraction,
                          "churn": churn, "reactivation": d["reactivation"],
                          "net": d["new"] + d["expansion"] - contraction - churn + d["reactivation"]},
            "active_start": active, "active": active_end, "new_subscribers": n["new"],
            "churned_subscribers": n["churn"], "reactivated_subscribers": n["reactivation"],
            "customer_churn_rate": customer_churn,
            "revenue_churn_rate": _rate(churn + contraction, mrr),
            "net_revenue_retention": _rate(retained, mrr),
            "net_mrr_churn_rate": _rate(mrr - retained, mrr),
            "arpa": None if arpa is None else round(arpa),
            "clv": None if arpa is None or not customer_churn else round(arpa * active / n["churn"]),
            "new_member_growth_rate": _rate(n["new"], active),
            "trials_started": facts.get("trial_started", 0), "trials_converted": converted,
            "trial_conversion_rate": _rate(converted, converted + lost),
            "dunning_started": facts.get("dunning_started", 0), "dunning_recovered": recovered,
            "dunning_recovery_rate": _rate(recovered, recovered + unrecovered),
            "recovered_revenue": amounts.get("dunning_recovered", 0),
        })
        mrr, active = mrr_end, active_end
    return out


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise MetricsError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def floor_points(value: float) -> int:
    return int(math.floor(value + 1e-9))
