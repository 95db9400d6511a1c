"""An applied change is recorded at once as the canonical event its provider's webhook will later
bring (paused, resumed, cancelled, cancellation scheduled, changed), through the ingest path with
origin ``change``: state, KPIs and rules see the change even if the webhook is late or lost. The
webhook, when it comes, is reconciled with it (``hub/ingest/reconcile.py``) instead of planning again.

The event's subscription part is the subscription as the hub holds it with the change made, marked
``provisional``: it updates the state but leaves the provider's ordering marks alone, so the
provider's own update for the change (or any later one) still applies over it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hub.changes.apply import RULE_ID
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import exponent, rfc3339
from hub.store import Action, Subscription, utcnow

log = logging.getLogger(__name__)


def record(session: Session, action_ids: Sequence[int], record_events: Callable[[list[CanonicalEvent]], list[int]],
           now: datetime | None = None) -> list[int]:
    """In the deliver worker's transaction: the events of the changes among ``action_ids`` that the
    provider just accepted, recorded by ``record_events`` (the ingest path, origin ``change``: wired
    in hub/runtime.py, the layer above both); returns the ids of the actions their rules planned."""
    now = now or utcnow()
    changes = session.execute(select(Action).where(Action.id.in_(list(action_ids)), Action.rule_id == RULE_ID)
                              .order_by(Action.id)).scalars().all()
    due: list[int] = []
    for action in changes:
        # locked first: the webhook for the same fact waits for this event, or this one for it
        sub = session.execute(select(Subscription).where(Subscription.provider == action.connector,
                                                         Subscription.external_id == action.params.get("subscription_id"))
                              .with_for_update()).scalar()
        found = fact(action, sub, now) if sub is not None else None
        if found is None:
            continue
        type_, part = found
        event = CanonicalEvent(
            type=type_, time=rfc3339(now), provider=sub.provider, providereventid=f"change:{action.id}",
            providertype=f"{action.connector}.{action.name}", subject=part.get("customer_id"),
            data={"subscription": part, "subscriber": {"hub_id": sub.subscriber_id} if sub.subscriber_id else {},
                  "change": {"id": action.id, "change": action.step}})
        try:
            with session.begin_nested():  # a bug here must not lose the outcome the provider gave
                due.extend(record_events([event]))
        except OperationalError:
            raise
        except Exception:  # the webhook will still bring the fact
            log.exception("recording the event of change %s failed", action.id)
    return due


def fact(action: Action, sub: Subscription, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """The canonical type the provider's webhook will bring for this change, and the subscription as
    it is once changed; None when the provider only schedules it (Chargebee's pause and plan change
    at the term end: their webhook comes when they happen)."""
    p, provider, change = action.params, action.connector, action.step
    part: dict[str, Any] = {k: v for k, v in (sub.data or {}).items() if k not in ("version", "previous")}
    part.update(id=sub.external_id, status=sub.status, plan=dict(sub.plan or {}), quantity=sub.quantity,
                provisional=True)
    if sub.amount_minor is not None:
        part["amount"] = {"minor": sub.amount_minor, "currency": sub.currency}
    if sub.mrr_minor is not None:
        part["mrr"] = {"minor": sub.mrr_minor, "currency": sub.currency}
    if change == "pause":
        if provider == "stripe":  # pause_collection: Stripe's subscription stays active
            part["pause_collection"] = {"behavior": p.get("behavior", "keep_as_draft"),
                                        "resumes_at": p.get("resumes_at")}
        elif p.get("pause_option") == "end_of_term":
            return None
        else:
            part["status"] = "paused"
        return EventType.SUBSCRIPTION_PAUSED, part
    if change == "resume":
        if provider == "stripe":
            part["pause_collection"] = {"behavior": None, "resumes_at": None}
        else:
            part["status"] = "active"
        return EventType.SUBSCRIPTION_RESUMED, part
    if change == "cancel":
        if p.get("at_period_end") or p.get("end_of_term"):
            end = rfc3339(sub.current_period_end) if sub.current_period_end else None
            part.update(cancel_at_period_end=True, cancel_at=end) if provider == "stripe" else part.update(
                cancelled_at=end)
            return EventType.SUBSCRIPTION_CANCELLATION_SCHEDULED, part
        part.update(status="cancelled", cancelled_at=rfc3339(now))
        return EventType.SUBSCRIPTION_CANCELLED, part
    if provider == "chargebee" and p.get("end_of_term"):
        return None
    plan_id = p.get("price") or p.get("item_price_id") or p.get("variant_id")
    if plan_id:
        part["plan"] = {"id": plan_id}
    before = (sub.amount_minor or 0) * (sub.quantity or 1)
    if p.get("quantity") is not None:
        part["quantity"] = p["quantity"]
    if p.get("price") is not None and provider == "shopify":  # the new line price, a decimal string
        part["amount"] = {"minor": _minor(p["price"], sub.amount_minor, sub.currency), "currency": sub.currency}
    after = (part.get("amount") or {}).get("minor", 0) * (part.get("quantity") or 1)
    if sub.mrr_minor and before:  # same interval: the MRR moves with the period charge
        part["mrr"] = {"minor": round(sub.mrr_minor * after / before), "currency": sub.currency}
    part["previous"] = {"amount": {"minor": sub.amount_minor, "currency": sub.currency}, "quantity": sub.quantity}
    return EventType.SUBSCRIPTION_CHANGED, part


def _minor(decimal: str, fallback: int | None, currency: str | None) -> int | None:
    try:
        return int(Decimal(decimal).scaleb(exponent(currency or "USD")))
    except (InvalidOperation, ValueError):
        return fallback
