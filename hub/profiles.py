"""Subscriber profiles: merging two records of one person (recorded, undoable), identity conflicts,
rebuilding a profile's figures from its events, and the profile view with a timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from . import state
from .events import CanonicalEvent
from .store import Event, ExternalId, Subscriber, Subscription, insert_ignore, utcnow
from .values import exponent, to_major
from .store.profile_models import IdentityConflict, Merge, MrrMovement, ProfileStats, SegmentMembership

FILLED_FIELDS = ("email", "first_name", "last_name", "phone", "timezone")


class ProfileError(Exception):
    """An operator request that cannot be done as asked (unknown id, merge already undone)."""


# -- conflicts --------------------------------------------------------------------------------------

def record_conflict(session: Session, a: int, b: int, reason: str, event_id: str | None = None) -> None:
    """List two subscribers that look like one person but cannot both be right (idempotent)."""
    low, high = sorted((a, b))
    insert_ignore(session, IdentityConflict.__table__, {
        "subscriber_id": low, "other_id": high, "reason": reason[:2000], "event_id": event_id,
        "created_at": utcnow(),
    }, ["subscriber_id", "other_id"])


def kept_apart(session: Session, a: int, b: int) -> bool:
    """An open conflict (or an operator's unmerge) says these two must not be merged automatically."""
    low, high = sorted((a, b))
    return session.execute(select(IdentityConflict.id).where(
        IdentityConflict.subscriber_id == low, IdentityConflict.other_id == high,
        IdentityConflict.resolved_at.is_(None))).first() is not None


def conflicts(session: Session, include_resolved: bool = False) -> list[dict[str, Any]]:
    query = select(IdentityConflict).order_by(IdentityConflict.id)
    if not include_resolved:
        query = query.where(IdentityConflict.resolved_at.is_(None))
    out = []
    for c in session.execute(query).scalars():
        a, b = session.get(Subscriber, c.subscriber_id), session.get(Subscriber, c.other_id)
        out.append({"id": c.id, "subscriber_id": c.subscriber_id, "other_id": c.other_id,
                    "emails": [a.email if a else None, b.email if b else None], "reason": c.reason,
                    "event_id": c.event_id, "created_at": c.created_at.isoformat(),
                    "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None})
    return out


# -- merge and unmerge ----------------------------------------------------------------------------

def merge(session: Session, winner: Subscriber, loser: Subscriber, reason: str,
          event_id: str | None = None) -> Subscriber:
    """Make ``loser`` part of ``winner``: provider ids, subscriptions and events move over, empty
    fields are filled in, and everything moved is written to ``merges`` so ``unmerge`` can undo it.
    Returns the record that stands for the person (``winner``, or ``loser`` when they are kept apart)."""
    if winner.id == loser.id:
        return winner
    if kept_apart(session, winner.id, loser.id):
        return winner
    ext_rows = session.execute(select(ExternalId.provider, ExternalId.external_id)
                               .where(ExternalId.subscriber_id == loser.id)).all()
    subscriptions = list(session.execute(select(Subscription.id).where(Subscription.subscriber_id == loser.id))
                         .scalars())
    events = list(session.execute(select(Event.id).where(Event.subscriber_id == loser.id)).scalars())
    filled = {}
    for name in FILLED_FIELDS:
        if getattr(winner, name) is None and getattr(loser, name) is not None:
            filled[name] = getattr(loser, name)
            setattr(winner, name, getattr(loser, name))
    mrr_before = {"winner": state.mrr_by_currency(session, winner.id),
                  "loser": state.mrr_by_currency(session, loser.id)}
    session.execute(update(ExternalId).where(ExternalId.subscriber_id == loser.id).values(subscriber_id=winner.id))
    session.execute(update(Subscription).where(Subscription.subscriber_id == loser.id)
                    .values(subscriber_id=winner.id))
    session.execute(update(Event).where(Event.subscriber_id == loser.id).values(subscriber_id=winner.id))
    session.execute(SegmentMembership.__table__.delete().where(SegmentMembership.subscriber_id == loser.id))
    loser.merged_into_id = winner.id
    loser.segments = []
    record = Merge(winner_id=winner.id, loser_id=loser.id, reason=reason[:255], event_id=event_id,
                   created_at=utcnow(), moved={
                       "external_ids": [[p, e] for p, e in ext_rows], "subscriptions": subscriptions,
                       "events": events, "filled": filled, "consent": loser.consent or {},
                   })
    session.add(record)
    session.flush()
    rebuild(session, winner)
    rebuild(session, loser)
    _transfer_mrr(session, record.id, "merge", mrr_before)
    return winner


def unmerge(session: Session, merge_id: int) -> tuple[Subscriber, Subscriber]:
    """Undo a merge: the loser gets back its provider ids, subscriptions and events (also those that
    arrived since under its ids), and the two are kept apart from then on."""
    record = session.get(Merge, merge_id)
    if record is None:
        raise ProfileError(f"no merge {merge_id}")
    if record.undone_at is not None:
        raise ProfileError(f"merge {merge_id} was already undone at {record.undone_at.isoformat()}")
    winner, loser = session.get(Subscriber, record.winner_id), session.get(Subscriber, record.loser_id)
    assert winner is not None and loser is not None
    owner = state.canonical(session, winner) or winner
    moved = record.moved or {}
    mrr_before = {"winner": state.mrr_by_currency(session, owner.id), "loser": state.mrr_by_currency(session, loser.id)}
    pairs = [tuple(p) for p in moved.get("external_ids") or []]
    if pairs:
        session.execute(update(ExternalId).where(or_(*[and_(ExternalId.provider == p, ExternalId.external_id == e)
                                                       for p, e in pairs])).values(subscriber_id=loser.id))
    subs = list(moved.get("subscriptions") or [])
    if subs:
        session.execute(update(Subscription).where(Subscription.id.in_(subs)).values(subscriber_id=loser.id))
    sub_keys = {(p, e) for p, e in session.execute(select(Subscription.provider, Subscription.external_id)
                                                     .where(Subscription.id.in_(subs or [-1]))).all()}
    recorded = set(moved.get("events") or [])
    back = []
    for ev in session.execute(select(Event).where(Event.subscriber_id == owner.id)).scalars():
        data = ev.data or {}
        ext = ((data.get("subscriber") or {}).get("external_ids") or {})
        sub_id = (data.get("subscription") or {}).get("id")
        if ev.id in recorded or any((p, str(e)) in pairs for p, e in ext.items()) \
                or (sub_id and (ev.provider, str(sub_id)) in sub_keys):
            back.append(ev.id)
    if back:
        session.execute(update(Event).where(Event.id.in_(back)).values(subscriber_id=loser.id))
    for name, value in (moved.get("filled") or {}).items():
        if getattr(winner, name) == value:
            setattr(winner, name, None)
    loser.merged_into_id = None
    loser.consent = moved.get("consent") or {}
    record.undone_at = utcnow()
    record_conflict(session, winner.id, loser.id, f"kept apart: merge {merge_id} ({record.reason}) was undone")
    session.flush()
    rebuild(session, owner)
    rebuild(session, loser)
    _transfer_mrr(session, record.id, "unmerge", {"winner": mrr_before["winner"], "loser": mrr_before["loser"]},
                  owner_id=owner.id, loser_id=loser.id)
    return owner, loser


def _transfer_mrr(session: Session, merge_id: int, what: str, before: dict[str, dict[str, int]], *,
                  owner_id: int | None = None, loser_id: int | None = None) -> None:
    """Keep the MRR ledger's balances right when MRR changes hands in a merge: ``transfer`` rows are
    neither new business nor churn, but they move MRR and active-customer counts between records."""
    record = session.get(Merge, merge_id)
    assert record is not None
    ids = {"winner": owner_id or record.winner_id, "loser": loser_id or record.loser_id}
    now = utcnow()
    for side, subscriber_id in ids.items():
        after = state.mrr_by_currency(session, subscriber_id)
        for currency in sorted(set(after) | set(before[side])):
            old, new = before[side].get(currency, 0), after.get(currency, 0)
            if old == new:
                continue
            insert_ignore(session, MrrMovement.__table__, {
                "subscriber_id": subscriber_id, "event_id": f"{what}-{merge_id}-{side}", "time": now,
                "kind": "transfer", "currency": currency, "delta_minor": new - old, "mrr_before_minor": old,
                "mrr_after_minor": new}, ["event_id", "currency"])


def rebuild(session: Session, subscriber: Subscriber) -> None:
    """Recompute a profile's figures from the events it now owns (after a merge or unmerge)."""
    stats = state.stats_for(session, subscriber.id)
    stats.paid, stats.consent_at = {}, {}
    stats.emails = [subscriber.email] if subscriber.email else []
    stats.engagement_score, stats.engagement_at, stats.engagement_count, stats.active_months = 0.0, None, 0, []
    subscriber.first_seen_at = subscriber.last_engaged_at = None
    subscriber.total_paid_minor = 0
    events = session.execute(select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.time)
                             ).scalars().all()
    for row in events:
        event = as_canonical(row)
        state.accumulate(session, subscriber, event)
        email = (event.part("subscriber").get("email") or "").strip().casefold()
        if email and email not in stats.emails:
            stats.emails = [*stats.emails, email]
    if not subscriber.email and stats.emails:  # e.g. an unmerge took back an address filled in from the other
        subscriber.email = stats.emails[0]
    from .segments.engagement import replay as replay_engagement

    replay_engagement(stats, [as_canonical(r) for r in events])
    mrr = state.mrr_by_currency(session, subscriber.id)
    subscriber.currency = subscriber.currency or next(iter(sorted(mrr)), None)
    subscriber.mrr_minor = mrr.get(subscriber.currency or "", 0)
    if subscriber.first_seen_at is None:
        subscriber.first_seen_at = subscriber.created_at
    subscriber.updated_at = utcnow()


def as_canonical(row: Event) -> CanonicalEvent:
    return CanonicalEvent(type=row.type, time=row.time.isoformat(), provider=row.provider,
                          providereventid=row.provider_event_id, providertype=row.provider_type,
                          data=row.data or {}, subject=row.subject, id=row.id)


# -- the profile view -----------------------------------------------------------------------------

def lookup(session: Session, key: str | int) -> Subscriber | None:
    """A subscriber by id or e-mail (a merged-away id leads to the record it was merged into)."""
    text = str(key).strip()
    found = session.get(Subscriber, int(text)) if text.isdigit() else state.by_email(session, text)
    if found is None and not text.isdigit():
        found = session.execute(select(Subscriber).where(Subscriber.email == text.casefold())
                                .order_by(Subscriber.id)).scalars().first()
    return state.canonical(session, found)


def show(session: Session, key: str | int, timeline: int = 50) -> dict[str, Any] | None:
    """The whole profile: identity, consent, subscriptions, value, loyalty, segments, merges, timeline."""
    subscriber = lookup(session, key)
    if subscriber is None:
        return None
    out = state.profile(session, subscriber)
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
    out["conflicts"] = [c for c in conflicts(session) if subscriber.id in (c["subscriber_id"], c["other_id"])]
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
