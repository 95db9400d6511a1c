"""Apply canonical events to subscriber state: identity, subscriptions, consent, totals.

Providers deliver out of order and repeat themselves: a subscription update older than the
state we hold (by occurrence time, then provider version) is recorded but never overwrites it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .events import CanonicalEvent, EventType
from .store import ExternalId, Subscriber, Subscription, insert_ignore, utcnow
from .values import parse_time

ENGAGEMENT = {EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED, EventType.ORDER_PLACED, EventType.ORDER_PAID,
              EventType.USAGE_RECORDED}


def _canonical(session: Session, subscriber: Subscriber | None) -> Subscriber | None:
    seen = set()
    while subscriber is not None and subscriber.merged_into_id and subscriber.id not in seen:
        seen.add(subscriber.id)
        subscriber = session.get(Subscriber, subscriber.merged_into_id)
    return subscriber


def find_subscriber(session: Session, external_ids: dict[str, Any], email: str | None) -> Subscriber | None:
    """By a provider's customer id first, then by case-folded e-mail."""
    for provider, ext in external_ids.items():
        if not ext:
            continue
        row = session.execute(select(ExternalId.subscriber_id).where(
            ExternalId.provider == provider, ExternalId.external_id == str(ext))).scalar()
        if row is not None:
            return _canonical(session, session.get(Subscriber, row))
    if email:
        found = session.execute(select(Subscriber).where(
            Subscriber.email == email.casefold(), Subscriber.merged_into_id.is_(None)).order_by(Subscriber.id)
        ).scalars().first()
        return found
    return None


def resolve_subscriber(session: Session, event: CanonicalEvent) -> Subscriber | None:
    """Find or create the subscriber an event is about, and remember its external ids."""
    part = event.part("subscriber")
    external_ids = {k: str(v) for k, v in (part.get("external_ids") or {}).items() if v}
    email = (part.get("email") or "").strip().casefold() or None
    subscriber = find_subscriber(session, external_ids, email)
    if subscriber is None:
        sub_id = event.part("subscription").get("id")
        if sub_id:
            row = session.execute(select(Subscription).where(Subscription.provider == event.provider,
                                                              Subscription.external_id == str(sub_id))).scalar()
            if row is not None and row.subscriber_id:
                subscriber = _canonical(session, session.get(Subscriber, row.subscriber_id))
    if subscriber is None:
        if not external_ids and not email:
            return None
        now = utcnow()
        subscriber = Subscriber(email=email, created_at=now, updated_at=now, consent={}, attributes={},
                                segments=[], first_seen_at=parse_time(event.time))
        session.add(subscriber)
        session.flush()
    for provider, ext in external_ids.items():
        insert_ignore(session, ExternalId.__table__,
                      {"provider": provider, "external_id": ext, "subscriber_id": subscriber.id,
                       "created_at": utcnow()}, ["provider", "external_id"])
    if email and not subscriber.email:
        subscriber.email = email
    for field in ("first_name", "last_name", "phone"):
        if part.get(field) and not getattr(subscriber, field):
            setattr(subscriber, field, part[field])
    if part.get("name") and not subscriber.first_name:
        first, _, last = str(part["name"]).partition(" ")
        subscriber.first_name, subscriber.last_name = first, last or subscriber.last_name
    return subscriber


def apply(session: Session, event: CanonicalEvent, subscriber: Subscriber | None) -> None:
    """Update subscription state and the profile from one (new) event."""
    when = parse_time(event.time)
    if event.part("subscription").get("id") and event.part("subscription").get("status"):
        _apply_subscription(session, event, subscriber, when)
    if subscriber is None:
        return
    subscriber.updated_at = utcnow()
    if subscriber.first_seen_at is None or when < subscriber.first_seen_at:
        subscriber.first_seen_at = when
    consent = event.part("consent")
    if consent.get("channel") and consent.get("state"):
        subscriber.consent = {**(subscriber.consent or {}), consent["channel"]: consent["state"]}
    if event.type in ENGAGEMENT and (subscriber.last_engaged_at is None or when > subscriber.last_engaged_at):
        subscriber.last_engaged_at = when
    if event.type == EventType.PAYMENT_SUCCEEDED:
        amount = event.part("payment").get("amount") or {}
        if amount.get("minor"):
            subscriber.currency = subscriber.currency or amount.get("currency")
            subscriber.total_paid_minor = (subscriber.total_paid_minor or 0) + int(amount["minor"])
    _refresh_mrr(session, subscriber)


def _newer(row: Subscription, when: datetime, version: str | None) -> bool:
    if row.version_time is None:
        return True
    if when != row.version_time:
        return when > row.version_time
    return bool(version and row.version and _version_key(version) >= _version_key(row.version))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if str(version).isdigit() else (0, str(version))


def _apply_subscription(session: Session, event: CanonicalEvent, subscriber: Subscriber | None,
                        when: datetime) -> None:
    part = event.part("subscription")
    row = session.execute(select(Subscription).where(Subscription.provider == event.provider,
                                                     Subscription.external_id == str(part["id"]))
                          .with_for_update()).scalar()
    now = utcnow()
    if row is None:
        row = Subscription(provider=event.provider, external_id=str(part["id"]), created_at=now, plan={}, data={})
        session.add(row)
    elif not _newer(row, when, part.get("version")):
        return  # an older update: recorded as an event, but the newer state stands
    row.subscriber_id = subscriber.id if subscriber else row.subscriber_id
    row.status = part.get("status") or row.status
    row.plan = part.get("plan") or row.plan
    row.quantity = part.get("quantity", row.quantity)
    amount = part.get("amount") or {}
    row.amount_minor = amount.get("minor", row.amount_minor)
    row.currency = amount.get("currency", row.currency)
    row.mrr_minor = (part.get("mrr") or {}).get("minor", 0) if row.status in ("active", "past_due") else 0
    for field in ("current_period_start", "current_period_end", "trial_end", "cancel_at", "cancelled_at"):
        if field in part:
            setattr(row, field, parse_time(part[field]) if part[field] else None)
    row.data = part
    row.version_time, row.version = when, None if part.get("version") is None else str(part["version"])
    row.updated_at = now
    session.flush()


def _refresh_mrr(session: Session, subscriber: Subscriber) -> None:
    rows = session.execute(select(Subscription.mrr_minor, Subscription.currency)
                           .where(Subscription.subscriber_id == subscriber.id)).all()
    subscriber.mrr_minor = sum(m or 0 for m, _ in rows)
    subscriber.currency = subscriber.currency or next((c for _, c in rows if c), None)


def profile(session: Session, subscriber: Subscriber | None) -> dict[str, Any]:
    """The profile rules and templates see as ``subscriber``."""
    if subscriber is None:
        return {}
    ext = dict(session.execute(select(ExternalId.provider, ExternalId.external_id)
                               .where(ExternalId.subscriber_id == subscriber.id)).all())
    return {
        "id": subscriber.id, "email": subscriber.email, "first_name": subscriber.first_name,
        "last_name": subscriber.last_name, "phone": subscriber.phone, "timezone": subscriber.timezone,
        "consent": subscriber.consent or {}, "external_ids": ext, "tier": subscriber.tier,
        "segments": subscriber.segments or [], "points": subscriber.points,
        "mrr": {"minor": subscriber.mrr_minor, "currency": subscriber.currency} if subscriber.currency else None,
        "total_paid": {"minor": subscriber.total_paid_minor, "currency": subscriber.currency}
        if subscriber.currency else None,
        "first_seen": subscriber.first_seen_at.isoformat() if subscriber.first_seen_at else None,
        "last_engaged": subscriber.last_engaged_at.isoformat() if subscriber.last_engaged_at else None,
        "attributes": subscriber.attributes or {},
    }
