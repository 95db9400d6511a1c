"""Apply canonical events to subscriber state: subscriptions, consent, totals (who an event is about
is decided first, in ``identity.py``).

Ordering: providers deliver out of order and repeat themselves. A subscription update older
than the state we hold (by the provider's version where both carry one, else by occurrence
time) is recorded as an event but never overwrites that state; the same goes for consent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import parse_time, rfc3339
from hub.store import Event, Subscriber, Subscription, utcnow
from hub.store.subscriber_models import ProfileStats

ENGAGEMENT = {EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED, EventType.ORDER_PLACED, EventType.ORDER_PAID,
              EventType.USAGE_RECORDED}
#: statuses whose MRR counts (trialing is not revenue yet; paused and cancelled are not revenue)
REVENUE_STATUSES = ("active", "past_due")
LIVE_STATUSES = ("trialing", "active", "past_due")
MID_CYCLE_TAG = "mid-cycle change"


@dataclass
class Applied:
    """What one event changed, for the derived events (MRR movements, trials, dunning)."""

    mrr_before: dict[str, int] = field(default_factory=dict)
    mrr_after: dict[str, int] = field(default_factory=dict)
    subscription: tuple[str, str] | None = None  # (provider, subscription id) the event is about
    old_status: str | None = None
    new_status: str | None = None
    stale: bool = False  # an older update: recorded, state left alone


def stats_for(session: Session, subscriber_id: int) -> ProfileStats:
    """The subscriber's running figures, created on first use. Held by the session for its whole
    transaction: the session's identity map only keeps weak references, so a clean row nobody holds
    would be read again by each step of an event (and each event of a batch)."""
    held: dict[int, ProfileStats] = session.info.setdefault("profile_stats", {})
    stats = held.get(subscriber_id)
    if stats is not None and stats in session:
        return stats
    stats = session.get(ProfileStats, subscriber_id)
    if stats is None:
        stats = ProfileStats(subscriber_id=subscriber_id, engagement_score=0.0, engagement_count=0,
                             active_months=[], paid={}, emails=[], consent_at={}, updated_at=utcnow())
        session.add(stats)  # inserted by the next flush, with whatever the event sets on it first
    held[subscriber_id] = stats
    return stats


def apply(session: Session, event: CanonicalEvent, subscriber: Subscriber | None) -> Applied:
    """Update subscription state and the profile from one (new) event; say what changed."""
    when = parse_time(event.time)
    applied = Applied()
    if subscriber is not None:
        applied.mrr_before = mrr_by_currency(session, subscriber.id)
    _complete_invoice(session, event)
    part = event.part("subscription")
    if part.get("id"):
        applied.subscription = (event.provider, str(part["id"]))
        if part.get("status"):
            _apply_subscription(session, event, subscriber, when, applied)
    if subscriber is None:
        return applied
    subscriber.updated_at = utcnow()
    accumulate(session, subscriber, event)
    # only a subscription this event updated moves the MRR
    applied.mrr_after = (mrr_by_currency(session, subscriber.id) if applied.new_status is not None
                         else dict(applied.mrr_before))
    subscriber.currency = subscriber.currency or next(iter(sorted(applied.mrr_after)), None)
    subscriber.mrr_minor = applied.mrr_after.get(subscriber.currency or "", 0)
    return applied


def _complete_invoice(session: Session, event: CanonicalEvent) -> None:
    """An invoice that does not say how it is collected (Chargebee's ``invoice_generated`` carries
    the invoice alone) is collected as its subscription is: take the stored subscription's method."""
    invoice = event.data.get("invoice")
    if not isinstance(invoice, dict) or invoice.get("collection_method"):
        return
    sub_id = invoice.get("subscription_id") or event.part("subscription").get("id")
    if not sub_id:
        return
    data = session.execute(select(Subscription.data).where(Subscription.provider == event.provider,
                                                          Subscription.external_id == str(sub_id))).scalar()
    method = (data or {}).get("collection_method")
    if method:
        invoice["collection_method"] = method
        stored = session.get(Event, event.id)
        if stored is not None:  # the event row was inserted before it was applied
            stored.data = {**stored.data, "invoice": dict(invoice)}


def accumulate(session: Session, subscriber: Subscriber, event: CanonicalEvent) -> None:
    """The profile figures one event moves (also used to rebuild a profile from its events)."""
    when = parse_time(event.time)
    stats = stats_for(session, subscriber.id)
    if subscriber.first_seen_at is None or when < subscriber.first_seen_at:
        subscriber.first_seen_at = when
    consent = event.part("consent")
    channel, consent_state = consent.get("channel"), consent.get("state")
    if channel and consent_state:
        previous = (stats.consent_at or {}).get(channel)
        if previous is None or when >= parse_time(previous):  # an older consent change never wins
            subscriber.consent = {**(subscriber.consent or {}), channel: consent_state}
            stats.consent_at = {**(stats.consent_at or {}), channel: rfc3339(when)}
    if event.type in ENGAGEMENT and (subscriber.last_engaged_at is None or when > subscriber.last_engaged_at):
        subscriber.last_engaged_at = when
    amount, sign = _paid_amount(event)
    if amount:
        currency = amount["currency"]
        paid = dict(stats.paid or {})
        paid[currency] = max(paid.get(currency, 0) + sign * int(amount["minor"]), 0)
        stats.paid = paid
        subscriber.currency = subscriber.currency or currency
        subscriber.total_paid_minor = paid.get(subscriber.currency, 0)
    stats.updated_at = utcnow()


def _paid_amount(event: CanonicalEvent) -> tuple[dict[str, Any] | None, int]:
    if event.type == EventType.PAYMENT_SUCCEEDED:
        amount = event.part("payment").get("amount")
        return (amount if amount and amount.get("minor") else None), 1
    if event.type == EventType.PAYMENT_REFUNDED:
        payment = event.part("payment")
        amount = payment.get("refunded") or payment.get("amount")
        return (amount if amount and amount.get("minor") else None), -1
    if event.type == EventType.ORDER_PAID:  # one-off purchases count toward total paid and loyalty
        order = event.part("order")
        amount = order.get("total") or order.get("amount")
        return (amount if isinstance(amount, dict) and amount.get("minor") else None), 1
    return None, 1


def _newer(row: Subscription, when: datetime, version: str | None) -> bool:
    """Is an update (occurred ``when``, provider version ``version``) at least as new as ``row``?

    Where both carry a numeric provider version (Chargebee ``resource_version``, Shopify
    ``revision_id``) and they differ, it decides: it is the provider's own order of the resource's
    states, finer than the event clock. Otherwise the occurrence time decides (Stripe ``created``,
    ``X-Shopify-Triggered-At``); an equal time with an equal or missing version is applied.
    """
    if row.version_time is None:
        return True
    if version is not None and row.version is not None and str(version) != row.version:
        mine, theirs = _version_key(str(version)), _version_key(row.version)
        if mine[0] == theirs[0] == "n":
            return mine > theirs
    if when != row.version_time:
        return when > row.version_time
    if version is not None and row.version is not None:
        return _version_key(str(version)) >= _version_key(row.version)
    return True


def _version_key(version: str) -> tuple[str, int, str]:
    return ("n", int(version), "") if str(version).isdigit() else ("s", 0, str(version))


def _apply_subscription(session: Session, event: CanonicalEvent, subscriber: Subscriber | None,
                        when: datetime, applied: Applied) -> None:
    part = event.part("subscription")
    row = session.execute(select(Subscription).where(Subscription.provider == event.provider,
                                                     Subscription.external_id == str(part["id"]))
                          .with_for_update()).scalar()
    now = utcnow()
    version = None if part.get("version") is None else str(part["version"])
    if row is None:
        row = Subscription(provider=event.provider, external_id=str(part["id"]), created_at=now, plan={}, data={})
        session.add(row)
    elif not _newer(row, when, version):
        applied.stale = True
        return  # an older update: recorded as an event, but the newer state stands
    applied.old_status = row.status
    before = (row.amount_minor, row.quantity, row.currency)
    row.subscriber_id = subscriber.id if subscriber else row.subscriber_id
    row.status = part.get("status") or row.status
    row.plan = part.get("plan") or row.plan
    row.quantity = part.get("quantity", row.quantity)
    amount = part.get("amount") or {}
    row.amount_minor = amount.get("minor", row.amount_minor)
    row.currency = amount.get("currency", row.currency) or (part.get("mrr") or {}).get("currency") or row.currency
    row.mrr_minor = (part.get("mrr") or {}).get("minor", 0) if row.status in REVENUE_STATUSES else 0
    for name in ("current_period_start", "current_period_end", "trial_end", "cancel_at", "cancelled_at"):
        if name in part:
            setattr(row, name, parse_time(part[name]) if part[name] else None)
    if part.get("provisional"):  # a change the hub made (hub/changes/confirm.py): the provider's
        row.data = {**(row.data or {}), **part}  # update for it, or any later one, still applies over it
    else:
        row.data = part
        row.version_time, row.version = when, version
    row.updated_at = now
    applied.new_status = row.status
    if event.type == EventType.SUBSCRIPTION_CHANGED and not _provider_proration(event):
        proration = prorate(before, row, event, when)
        if proration:
            event.data["proration"] = proration
            stored = session.get(Event, event.id)
            if stored is not None:  # the event row was inserted before it was applied
                stored.data = dict(event.data)
    session.flush()


def _provider_proration(event: CanonicalEvent) -> bool:
    return bool(event.data.get("proration") or event.part("subscription").get("proration")
                or event.part("invoice").get("proration"))


def prorate(before: tuple[int | None, int | None, str | None], row: Subscription, event: CanonicalEvent,
            when: datetime) -> dict[str, Any] | None:
    """Daily-rate proration of a mid-cycle change the provider did not price.

    daily rate = period charge / days in period; charge = daily rate x days used. The new plan is
    used for the days left in the period, the old one is credited for them:
    amount = (new charge - old charge) / days in period x days left (positive: the subscriber owes).
    """
    previous = event.part("previous")
    old_amount = (previous.get("amount") or {}).get("minor", before[0])
    old_quantity = previous.get("quantity", before[1]) or 1
    start, end = row.current_period_start, row.current_period_end
    if old_amount is None or row.amount_minor is None or start is None or end is None or end <= start:
        return None
    return daily_rate(int(old_amount) * int(old_quantity), int(row.amount_minor) * int(row.quantity or 1),
                      start, end, when, row.currency or before[2])


def daily_rate(old_charge: int, new_charge: int, start: datetime, end: datetime, when: datetime,
               currency: str | None) -> dict[str, Any]:
    """The daily-rate method: daily rate = period charge / days in the period; from ``when`` to the
    period end the new charge applies and the old one is credited, so the amount is
    (new charge - old charge) / days in period x days left (positive: the subscriber owes)."""
    days_in_period = max(round((end - start).total_seconds() / 86400), 1)
    days_left = min(max(math.ceil((end - max(when, start)).total_seconds() / 86400), 0), days_in_period)
    minor = round((new_charge - old_charge) / days_in_period * days_left)
    return {"amount": {"minor": minor, "currency": currency}, "method": "daily-rate",
            "days_in_period": days_in_period, "days_used": days_left, "old_charge": old_charge,
            "new_charge": new_charge, "tags": [MID_CYCLE_TAG]}


def mrr_by_currency(session: Session, subscriber_id: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for mrr, currency in session.execute(select(Subscription.mrr_minor, Subscription.currency)
                                         .where(Subscription.subscriber_id == subscriber_id)).all():
        if currency:
            out[currency] = out.get(currency, 0) + (mrr or 0)
    return out
