"""The profile: the dict the rules see for a subscriber, and the operator's view of one (lookup,
profile with timeline) that the API and CLI show."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.kernel.values import exponent, to_major
from hub.store import Event, ExternalId, Subscriber, Subscription
from hub.store.subscriber_models import Merge, ProfileStats
from hub.subscribers import identity


def for_rules_many(session: Session, subscriber_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """``for_rules`` of many subscribers in three queries (a delivery batch's recipients)."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return {}
    subscribers = session.execute(select(Subscriber).where(Subscriber.id.in_(ids))).scalars().all()
    stats = {s.subscriber_id: s for s in session.execute(
        select(ProfileStats).where(ProfileStats.subscriber_id.in_(ids))).scalars()}
    ext: dict[int, dict[str, str]] = {}
    for sid, provider, external_id in session.execute(select(
            ExternalId.subscriber_id, ExternalId.provider, ExternalId.external_id).where(ExternalId.subscriber_id.in_(ids))):
        ext.setdefault(sid, {})[provider] = external_id
    return {s.id: for_rules(session, s, external_ids=ext.get(s.id, {}), stats=stats.get(s.id)) for s in subscribers}


def for_rules(session: Session, subscriber: Subscriber | None, *, external_ids: dict[str, str] | None = None,
              stats: ProfileStats | None = None) -> dict[str, Any]:
    """The profile rules and templates see as ``subscriber`` (``external_ids`` and ``stats`` when
    the caller has read them already)."""
    if subscriber is None:
        return {}
    ext = external_ids if external_ids is not None else dict(session.execute(
        select(ExternalId.provider, ExternalId.external_id).where(ExternalId.subscriber_id == subscriber.id)).all())
    if stats is None:
        stats = session.get(ProfileStats, subscriber.id)
    return {
        "id": subscriber.id, "email": subscriber.email, "first_name": subscriber.first_name,
        "last_name": subscriber.last_name, "phone": subscriber.phone, "timezone": subscriber.timezone,
        "emails": (stats.emails if stats else None) or ([subscriber.email] if subscriber.email else []),
        "consent": subscriber.consent or {}, "external_ids": ext, "tier": subscriber.tier,
        "segments": subscriber.segments or [], "points": subscriber.points,
        "lifecycle": stats.lifecycle if stats else None,
        "mrr": {"minor": subscriber.mrr_minor, "currency": subscriber.currency} if subscriber.currency else None,
        "total_paid": {"minor": subscriber.total_paid_minor, "currency": subscriber.currency}
        if subscriber.currency else None,
        "first_seen": subscriber.first_seen_at.isoformat() if subscriber.first_seen_at else None,
        "last_engaged": subscriber.last_engaged_at.isoformat() if subscriber.last_engaged_at else None,
        "attributes": subscriber.attributes or {},
    }


def lookup(session: Session, key: str | int) -> Subscriber | None:
    """A subscriber by id or e-mail (a merged-away id leads to the record it was merged into)."""
    text = str(key).strip()
    found = session.get(Subscriber, int(text)) if text.isdigit() else identity.by_email(session, text)
    if found is None and not text.isdigit():
        found = session.execute(select(Subscriber).where(Subscriber.email == text.casefold())
                                .order_by(Subscriber.id)).scalars().first()
    return identity.canonical(session, found)


def show(session: Session, key: str | int, timeline: int = 50) -> dict[str, Any] | None:
    """The whole profile: identity, consent, subscriptions, value, loyalty, segments, merges, timeline."""
    subscriber = lookup(session, key)
    if subscriber is None:
        return None
    out = for_rules(session, subscriber)
    stats = session.get(ProfileStats, subscriber.id)
    out["paid_by_currency"] = dict(stats.paid or {}) if stats else {}
    out["engagement_score"] = round(stats.engagement_score, 3) if stats else 0.0
    out["subscriptions"] = [{
        "provider": s.provider, "id": s.external_id, "status": s.status, "plan": s.plan or {},
        "quantity": s.quantity, "mrr": {"minor": s.mrr_minor, "currency": s.currency} if s.currency else None,
        "current_period_end": s.current_period_end.isoformat() if s.current_period_end else None,
        "cancel_at": s.cancel_at.isoformat() if s.cancel_at else None,
    } for s in session.execute(select(Subscription).where(Subscription.subscriber_id == subscriber.id)
                               .order_by(Subscription.provider, Subscription.external_id)).scalars()]
    out["merges"] = [{"id": m.id, "winner_id": m.winner_id, "loser_id": m.loser_id, "reason": m.reason,
                      "at": m.created_at.isoformat(), "undone_at": m.undone_at.isoformat() if m.undone_at else None}
                     for m in session.execute(select(Merge).where(or_(Merge.winner_id == subscriber.id,
                                                                      Merge.loser_id == subscriber.id))
                                              .order_by(Merge.id)).scalars()]
    out["conflicts"] = [c for c in identity.conflicts(session) if subscriber.id in (c["subscriber_id"], c["other_id"])]
    out["timeline"] = [{"time": e.time.isoformat(), "type": e.type, "provider": e.provider, "id": e.id,
                        "origin": e.origin, "summary": summarize(e)}
                       for e in session.execute(select(Event).where(Event.subscriber_id == subscriber.id)
                                                .order_by(Event.time.desc(), Event.recorded_at.desc())
                                                .limit(timeline)).scalars()]
    return out


def summarize(event: Event) -> str:
    """A one-line reading of an event for the timeline."""
    data = event.data or {}
    bits = []
    sub = data.get("subscription") or {}
    if sub.get("status"):
        bits.append(f"{sub.get('id')} {sub['status']}")
    for part, key in (("payment", "amount"), ("mrr", "delta"), ("proration", "amount")):
        money = (data.get(part) or {}).get(key)
        if isinstance(money, dict) and "minor" in money:
            bits.append(f"{part} {to_major(money):.{exponent(money['currency'])}f} {money['currency']}")
    for part in ("segment", "tier"):
        if isinstance(data.get(part), dict):
            bits.append(" ".join(f"{k}={v}" for k, v in data[part].items()))
    if (data.get("mrr") or {}).get("movement"):
        bits.append(data["mrr"]["movement"])
    if (data.get("consent") or {}).get("channel"):
        bits.append(f"{data['consent']['channel']} {data['consent'].get('state')}")
    return "; ".join(bits)
