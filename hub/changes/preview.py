"""What a change would do, before it is done: the period charge before and after, and for a change
that takes effect now the proration for the rest of the period by the daily-rate method (daily rate =
period charge / days in the period; charge or credit = daily rate x days left), tagged
``mid-cycle change``."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import connectors
from connectors.stripe.client import preview_change
from hub.kernel.errors import ActionError
from hub.kernel.settings import Settings
from hub.store import Subscription
from hub.subscribers.state import daily_rate


class PreviewError(ValueError):
    """The preview needs a fact the hub does not have (named in the message)."""


def plan_amount(session: Session, plan: str, currency: str | None) -> int | None:
    """The charge per unit and period of ``plan`` as last seen on any subscription in that currency."""
    rows = session.execute(select(Subscription.plan, Subscription.amount_minor, Subscription.currency)
                           .where(Subscription.amount_minor.is_not(None))
                           .order_by(Subscription.updated_at.desc()).limit(5000)).all()
    return next((amount for p, amount, cur in rows if (p or {}).get("id") == plan and cur == currency), None)


def effective_at(sub: Subscription, effective: Any, now: datetime) -> datetime:
    """When the change takes effect: now, the end of the current period, or 00:00 UTC of a date."""
    if effective == "period_end":
        if sub.current_period_end is None:
            raise PreviewError("effective: the hub does not know this subscription's period end; use now or a date")
        return sub.current_period_end
    if isinstance(effective, date):
        return datetime.combine(effective, time(0), tzinfo=timezone.utc)
    return now


def describe(sub: Subscription) -> dict[str, Any]:
    start, end = sub.current_period_start, sub.current_period_end
    return {"provider": sub.provider, "id": sub.external_id, "status": sub.status,
            "plan": (sub.plan or {}).get("id"), "quantity": sub.quantity, "currency": sub.currency,
            "charge_per_period": None if sub.amount_minor is None else sub.amount_minor * (sub.quantity or 1),
            "period": [start.isoformat() if start else None, end.isoformat() if end else None]}


def preview(session: Session, sub: Subscription, request: dict[str, Any], now: datetime) -> dict[str, Any]:
    unit = sub.amount_minor
    quantity = sub.quantity or 1
    before = None if unit is None else unit * quantity
    after = before
    change = request["change"]
    if change == "change_plan":
        new_unit = request.get("plan_amount")
        if new_unit is None:
            new_unit = plan_amount(session, request["plan"], sub.currency)
        if new_unit is None:
            raise PreviewError(f"plan_amount: the hub has not seen plan {request['plan']!r} in {sub.currency}; "
                               "give its charge per unit and period in minor units")
        after = new_unit * (request.get("quantity") or quantity)
    elif change == "change_quantity":
        after = None if unit is None else unit * request["quantity"]
    elif change in ("pause", "cancel"):
        after = 0
    when = effective_at(sub, request["effective"], now)
    proration = None
    start, end = sub.current_period_start, sub.current_period_end
    prorated = change in ("change_plan", "change_quantity") or (change == "cancel" and request["effective"] == "now")
    if prorated and request["effective"] != "period_end" and None not in (before, after, start, end) and end > start:
        proration = daily_rate(before, after, start, end, when, sub.currency)
    return {
        "subscription": describe(sub), "change": change, "effective_at": when.isoformat(),
        "charge_per_period": {"before": before, "after": after, "currency": sub.currency},
        "proration": proration,
    }


def provider_preview(settings: Settings, sub: Subscription, request: dict[str, Any], shown: dict[str, Any]
                     ) -> dict[str, Any] | None:
    """The provider's own figure for a proration the hub previewed, where the provider offers one
    (Stripe's preview invoice, for a plan or quantity change made now), and the difference from the
    hub's daily-rate figure (theirs - ours). None where there is nothing to compare."""
    ours = (shown.get("proration") or {}).get("amount")
    if sub.provider != "stripe" or ours is None or request["change"] not in ("change_plan", "change_quantity"):
        return None
    source = "stripe: POST /v1/invoices/create_preview"
    connector = connectors.get("stripe")
    client = connector.client(settings) if connector is not None else None
    if client is None or client.dry_run:
        return {"source": source, "available": False, "reason": "HUB_STRIPE_API_KEY is not set"}
    when = datetime.fromisoformat(shown["effective_at"])
    try:
        theirs = preview_change(client, sub.external_id, price=request.get("plan"),
                                quantity=request.get("quantity"), proration_date=int(when.timestamp()))
    except ActionError as exc:
        return {"source": source, "available": False, "reason": str(exc)[:300]}
    if theirs is None:
        return None
    currency = theirs["currency"] or ours["currency"]
    return {"source": source, "available": True, "proration": {"minor": theirs["amount"], "currency": currency},
            "difference": {"minor": theirs["amount"] - ours["minor"], "currency": currency},
            "proration_date": when.isoformat()}
