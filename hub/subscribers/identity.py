"""Who an event is about: find or create the subscriber, merge two records of one person
(recorded, undoable), record identity conflicts, and rebuild a profile's figures from its events.

A subscriber is found by a provider's customer id first, then by case-folded e-mail; events that
carry only a subscription id attach to that subscription's subscriber. Two records that turn out to
be one person are merged (recorded in ``merges``, undoable); two that cannot both be right (the
same e-mail, different customer ids at one provider) are recorded in ``identity_conflicts`` and
left apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from hub.kernel import timezones
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import parse_time
from hub.store import Event, ExternalId, Subscriber, Subscription, insert_ignore, utcnow
from hub.store.subscriber_models import IdentityConflict, Merge, MrrMovement, SegmentMembership
from hub.subscribers import engagement, state
from hub.subscribers.engagement import Weights

FILLED_FIELDS = ("email", "first_name", "last_name", "phone", "timezone")


class ProfileError(Exception):
    """An operator request that cannot be done as asked (unknown id, merge already undone)."""


def canonical(session: Session, subscriber: Subscriber | None) -> Subscriber | None:
    """Follow ``merged_into_id`` to the record that stands for the person now."""
    seen = set()
    while subscriber is not None and subscriber.merged_into_id and subscriber.id not in seen:
        seen.add(subscriber.id)
        subscriber = session.get(Subscriber, subscriber.merged_into_id)
    return subscriber


def by_external_ids(session: Session, external_ids: dict[str, Any]) -> list[Subscriber]:
    """The distinct (canonical) subscribers these provider ids belong to, in the order given."""
    out: list[Subscriber] = []
    for provider, ext in external_ids.items():
        if not ext:
            continue
        row = session.execute(select(ExternalId.subscriber_id).where(
            ExternalId.provider == provider, ExternalId.external_id == str(ext))).scalar()
        found = canonical(session, session.get(Subscriber, row)) if row is not None else None
        if found is not None and found not in out:
            out.append(found)
    return out


def by_email(session: Session, email: str | None) -> Subscriber | None:
    if not email:
        return None
    return session.execute(select(Subscriber).where(
        Subscriber.email == email.strip().casefold(), Subscriber.merged_into_id.is_(None)).order_by(Subscriber.id)
    ).scalars().first()


def find_subscriber(session: Session, external_ids: dict[str, Any], email: str | None) -> Subscriber | None:
    """By a provider's customer id first, then by case-folded e-mail."""
    found = by_external_ids(session, external_ids)
    return found[0] if found else by_email(session, email)


def external_ids_of(session: Session, subscriber_id: int) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for provider, ext in session.execute(select(ExternalId.provider, ExternalId.external_id)
                                         .where(ExternalId.subscriber_id == subscriber_id)).all():
        out.setdefault(provider, set()).add(ext)
    return out


def identity_clash(mine: dict[str, set[str]], theirs: dict[str, set[str]]) -> str | None:
    """Why two sets of provider ids cannot be one person (a different id at the same provider)."""
    for provider in sorted(mine.keys() & theirs.keys()):
        if not (mine[provider] & theirs[provider]):
            return (f"different {provider} customer ids ({', '.join(sorted(mine[provider]))} vs "
                    f"{', '.join(sorted(theirs[provider]))})")
    return None


def resolve_subscriber(session: Session, event: CanonicalEvent, weights: Weights | None = None, *,
                       _retried: bool = False) -> Subscriber | None:
    """Find or create the subscriber an event is about, merge records proven to be one person,
    record conflicts, and remember the event's provider ids and e-mail. ``weights``: the engagement
    weights a merge rebuilds the score with."""

    part = event.part("subscriber")
    if part.get("hub_id"):  # derived events name the hub's own record
        return canonical(session, session.get(Subscriber, int(part["hub_id"])))
    external_ids = {k: str(v) for k, v in (part.get("external_ids") or {}).items() if v}
    email = (part.get("email") or "").strip().casefold() or None
    event_ids = {p: {e} for p, e in external_ids.items()}

    matched = by_external_ids(session, external_ids)
    subscriber = matched[0] if matched else None
    for other in matched[1:]:  # one event names ids of two records: they are one person
        clash = identity_clash(external_ids_of(session, subscriber.id), external_ids_of(session, other.id))
        if clash:
            record_conflict(session, subscriber.id, other.id, clash, event.id)
        else:
            subscriber = merge(session, subscriber, other, "provider ids arrived together on one event "
                               f"({', '.join(f'{p}:{e}' for p, e in sorted(external_ids.items()))})",
                               event.id, weights)
    by_mail = by_email(session, email)
    if subscriber is None and by_mail is not None:
        clash = identity_clash(external_ids_of(session, by_mail.id), event_ids)
        if clash:  # same e-mail, but a different customer at the same provider: a new record + a conflict
            subscriber = _new_subscriber(session, event, email)
            record_conflict(session, by_mail.id, subscriber.id, f"same e-mail {email}, {clash}", event.id)
        else:
            subscriber = by_mail
    elif subscriber is not None and by_mail is not None and by_mail.id != subscriber.id \
            and not kept_apart(session, by_mail.id, subscriber.id):
        clash = identity_clash(external_ids_of(session, by_mail.id), external_ids_of(session, subscriber.id))
        if clash:
            record_conflict(session, by_mail.id, subscriber.id, f"same e-mail {email}, {clash}", event.id)
        else:
            winner, loser = sorted((by_mail, subscriber), key=lambda s: s.id)
            subscriber = merge(session, winner, loser, f"same e-mail {email}", event.id, weights)
    if subscriber is None:
        sub_id = event.part("subscription").get("id")
        if sub_id:  # e.g. Shopify contract events that carry only ids
            row = session.execute(select(Subscription).where(Subscription.provider == event.provider,
                                                              Subscription.external_id == str(sub_id))).scalar()
            if row is not None and row.subscriber_id:
                subscriber = canonical(session, session.get(Subscriber, row.subscriber_id))
    created = subscriber is None
    if subscriber is None:
        if not external_ids and not email:
            return None
        subscriber = _new_subscriber(session, event, email)
    claimed = [insert_ignore(session, ExternalId.__table__,
                             {"provider": provider, "external_id": ext, "subscriber_id": subscriber.id,
                              "created_at": utcnow()}, ["provider", "external_id"])
               for provider, ext in external_ids.items()]
    if created and not all(claimed) and not _retried:
        # another worker created this person meanwhile (its insert committed while ours waited on
        # the unique key): drop our new record and take theirs
        session.execute(delete(ExternalId).where(ExternalId.subscriber_id == subscriber.id))
        session.delete(subscriber)
        session.flush()
        return resolve_subscriber(session, event, weights, _retried=True)
    _remember_identity(session, subscriber, event, part, email)
    return subscriber


def _new_subscriber(session: Session, event: CanonicalEvent, email: str | None) -> Subscriber:
    now = utcnow()
    subscriber = Subscriber(email=email, created_at=now, updated_at=now, consent={}, attributes={},
                            segments=[], first_seen_at=parse_time(event.time))
    session.add(subscriber)
    session.flush()
    return subscriber


def _remember_identity(session: Session, subscriber: Subscriber, event: CanonicalEvent, part: dict[str, Any],
                       email: str | None) -> None:
    stats = state.stats_for(session, subscriber.id)
    if email:
        if email not in (stats.emails or []):
            stats.emails = [*(stats.emails or []), email]
        # a provider's own customer record may change the address; other events only fill a gap
        if not subscriber.email or (event.type in (EventType.SUBSCRIBER_CREATED, EventType.SUBSCRIBER_UPDATED)
                                    and subscriber.email != email and by_email(session, email) is None):
            subscriber.email = email
    for name in ("first_name", "last_name", "phone"):
        if part.get(name) and not getattr(subscriber, name):
            setattr(subscriber, name, part[name])
    if part.get("name") and not subscriber.first_name:
        first, _, last = str(part["name"]).partition(" ")
        subscriber.first_name, subscriber.last_name = first, last or subscriber.last_name
    zone = timezones.of_part(part)
    if zone and (zone.explicit or not subscriber.timezone):
        # a provider's zone replaces the stored one; a country's only fills a gap; no zone changes nothing
        subscriber.timezone = zone.name


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


def conflicts(session: Session, include_resolved: bool = False, *, since: datetime | None = None,
              until: datetime | None = None) -> list[dict[str, Any]]:
    """Conflicts found (``since`` <= found < ``until`` when given), oldest first."""
    query = select(IdentityConflict).order_by(IdentityConflict.id)
    query = query.where(IdentityConflict.created_at >= since) if since else query
    query = query.where(IdentityConflict.created_at < until) if until else query
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


def merge(session: Session, winner: Subscriber, loser: Subscriber, reason: str,
          event_id: str | None = None, weights: Weights | None = None) -> Subscriber:
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
    rebuild(session, winner, weights)
    rebuild(session, loser, weights)
    _transfer_mrr(session, record.id, "merge", mrr_before)
    return winner


def unmerge(session: Session, merge_id: int, weights: Weights | None = None) -> tuple[Subscriber, Subscriber]:
    """Undo a merge: the loser gets back its provider ids, subscriptions and events (also those that
    arrived since under its ids), and the two are kept apart from then on."""
    record = session.get(Merge, merge_id)
    if record is None:
        raise ProfileError(f"no merge {merge_id}")
    if record.undone_at is not None:
        raise ProfileError(f"merge {merge_id} was already undone at {record.undone_at.isoformat()}")
    winner, loser = session.get(Subscriber, record.winner_id), session.get(Subscriber, record.loser_id)
    assert winner is not None and loser is not None
    owner = canonical(session, winner) or winner
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
    rebuild(session, owner, weights)
    rebuild(session, loser, weights)
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


def as_canonical(row: Event) -> CanonicalEvent:
    return CanonicalEvent(type=row.type, time=row.time.isoformat(), provider=row.provider,
                          providereventid=row.provider_event_id, providertype=row.provider_type,
                          data=row.data or {}, subject=row.subject, id=row.id)


def rebuild(session: Session, subscriber: Subscriber, weights: Weights | None = None) -> None:
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

    engagement.replay(stats, [as_canonical(r) for r in events], weights)
    mrr = state.mrr_by_currency(session, subscriber.id)
    subscriber.currency = subscriber.currency or next(iter(sorted(mrr)), None)
    subscriber.mrr_minor = mrr.get(subscriber.currency or "", 0)
    if subscriber.first_seen_at is None:
        subscriber.first_seen_at = subscriber.created_at
    subscriber.updated_at = utcnow()
