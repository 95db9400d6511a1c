"""Derived events: what the hub concludes from provider events, recorded back through the pipeline
so rules can react. ``mrr.changed`` (with the movement: new, expansion, contraction, churn,
reactivation), ``payment.recovered`` (paid after a failure on the same subscription),
``segment.entered`` / ``segment.exited`` and ``tier.changed``. Also writes the KPI ledgers.

Recursion is bounded: derived events are recorded and planned like any other, but derive nothing
further (``MAX_DEPTH``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.kernel.events import CanonicalEvent, EventType, matches
from hub.kernel.values import parse_time
from hub.kpis import Rates
from hub.outbound import outbox
from hub.segments import bulk, engine, sync
from hub.segments import config as config_mod
from hub.store import Event, Subscriber, insert_ignore, utcnow
from hub.store.subscriber_models import KpiFact, MrrMovement
from hub.subscribers import profile, state
from hub.subscribers.engagement import bump

if TYPE_CHECKING:
    from hub.runtime import Hub

MAX_DEPTH = 1
DUNNING = ("dunning_started", "dunning_recovered", "dunning_lost")


def update(hub: "Hub", session: Session, event: CanonicalEvent, subscriber: Subscriber | None,
           applied: state.Applied | None, *, depth: int = 0, now: datetime | None = None,
           planning: outbox.Planning | None = None) -> tuple[list[CanonicalEvent], list[int]]:
    """After an event is applied: ledgers, engagement, segments, tier and syncs for its subscriber.
    Returns the derived events to record and the sync actions planned."""
    if subscriber is None or applied is None or depth >= MAX_DEPTH or event.provider == "hub":
        return [], []
    config = planning.segments if planning and planning.segments else config_mod.current(hub.settings["HUB_RULES_PATH"])
    rates = planning.rates if planning and planning.rates else Rates.from_settings(hub.settings)
    now = now or utcnow()
    stats = state.stats_for(session, subscriber.id)
    bump(stats, event, config.weights, config.half_life_days)
    derived = mrr_movements(session, event, subscriber.id, applied)
    derived += kpi_facts(session, event, subscriber.id, applied)
    change, segment_events = engine.refresh_one(hub, session, subscriber, config, rates, event, now)
    derived += segment_events
    actions = sync.plan(hub, session, config, [change] if change else [], event.id, now)
    return derived, actions


def _derived(type_: str, cause: CanonicalEvent, key: str, subscriber_id: int, data: dict[str, Any]
             ) -> CanonicalEvent:
    return CanonicalEvent(type=type_, time=cause.time, provider="hub", providereventid=f"{cause.id}:{key}",
                          providertype="derived", subject=f"subscriber:{subscriber_id}",
                          data={**data, "subscriber": {"hub_id": subscriber_id},
                                "cause": {"event_id": cause.id, "type": cause.type}})


def mrr_movements(session: Session, event: CanonicalEvent, subscriber_id: int, applied: state.Applied
                  ) -> list[CanonicalEvent]:
    """One ledger row and one ``mrr.changed`` per currency whose MRR moved."""
    out = []
    when = parse_time(event.time)
    for currency in sorted(set(applied.mrr_before) | set(applied.mrr_after)):
        old, new = applied.mrr_before.get(currency, 0), applied.mrr_after.get(currency, 0)
        if old == new:
            continue
        if old == 0:
            paid_before = session.execute(select(MrrMovement.id).where(
                MrrMovement.subscriber_id == subscriber_id, MrrMovement.currency == currency,
                MrrMovement.mrr_after_minor > 0)).first()
            kind = "reactivation" if paid_before else "new"
        elif new == 0:
            kind = "churn"
        else:
            kind = "expansion" if new > old else "contraction"
        insert_ignore(session, MrrMovement.__table__, {
            "subscriber_id": subscriber_id, "event_id": event.id, "time": when, "kind": kind, "currency": currency,
            "delta_minor": new - old, "mrr_before_minor": old, "mrr_after_minor": new}, ["event_id", "currency"])
        out.append(_derived(EventType.MRR_CHANGED, event, f"mrr:{currency}", subscriber_id, {"mrr": {
            "movement": kind, "before": {"minor": old, "currency": currency},
            "after": {"minor": new, "currency": currency}, "delta": {"minor": new - old, "currency": currency}}}))
    return out


def payment_subscription(event: CanonicalEvent) -> str | None:
    """The subscription a payment event is about, wherever the normalizer put it."""
    for part, key in (("subscription", "id"), ("payment", "subscription_id"), ("invoice", "subscription_id")):
        value = event.part(part).get(key)
        if value:
            return str(value)
    return None


def _fact(session: Session, event: CanonicalEvent, subscriber_id: int, sub_id: str, kind: str,
          amount: dict[str, Any] | None = None) -> None:
    insert_ignore(session, KpiFact.__table__, {
        "subscriber_id": subscriber_id, "provider": event.provider, "subscription_id": sub_id,
        "event_id": event.id, "time": parse_time(event.time), "kind": kind,
        "currency": (amount or {}).get("currency"), "amount_minor": int((amount or {}).get("minor") or 0)},
        ["event_id", "kind"])


def _dunning_open(session: Session, provider: str, sub_id: str) -> KpiFact | None:
    latest = session.execute(select(KpiFact).where(
        KpiFact.provider == provider, KpiFact.subscription_id == sub_id, KpiFact.kind.in_(DUNNING))
        .order_by(KpiFact.time.desc(), KpiFact.id.desc()).limit(1)).scalar()
    return latest if latest is not None and latest.kind == "dunning_started" else None


def kpi_facts(session: Session, event: CanonicalEvent, subscriber_id: int, applied: state.Applied
              ) -> list[CanonicalEvent]:
    """Trial and dunning outcomes; a payment after a failure also yields ``payment.recovered``."""
    out: list[CanonicalEvent] = []
    if applied.subscription and applied.new_status and not applied.stale:
        _, sub_id = applied.subscription
        old, new = applied.old_status, applied.new_status
        if new == "trialing" and old != "trialing":
            _fact(session, event, subscriber_id, sub_id, "trial_started")
        elif old == "trialing" and new in ("active", "past_due"):
            _fact(session, event, subscriber_id, sub_id, "trial_converted")
        elif old == "trialing" and new in ("cancelled", "expired"):
            _fact(session, event, subscriber_id, sub_id, "trial_lost")
        if new in ("cancelled", "expired") and _dunning_open(session, event.provider, sub_id):
            _fact(session, event, subscriber_id, sub_id, "dunning_lost")
    if event.type not in (EventType.PAYMENT_FAILED, EventType.PAYMENT_SUCCEEDED):
        return out
    sub_id = payment_subscription(event)
    if not sub_id:
        return out
    amount = event.part("payment").get("amount")
    opened = _dunning_open(session, event.provider, sub_id)
    if event.type == EventType.PAYMENT_FAILED and opened is None:
        _fact(session, event, subscriber_id, sub_id, "dunning_started", amount)
    elif event.type == EventType.PAYMENT_SUCCEEDED and opened is not None:
        _fact(session, event, subscriber_id, sub_id, "dunning_recovered", amount)
        failures = session.execute(select(Event.id).where(
            Event.type == EventType.PAYMENT_FAILED, Event.subscriber_id == subscriber_id,
            Event.time >= opened.time)).all()
        out.append(_derived(EventType.PAYMENT_RECOVERED, event, "recovered", subscriber_id, {
            "payment": event.part("payment"), "subscription": {"id": sub_id},
            "dunning": {"since": opened.time.isoformat(), "failures": max(len(failures), 1),
                        "failed_event_id": opened.event_id}}))
    return out


_EVENT = (("id", "text"), ("type", "text"), ("time", "timestamptz"), ("subject", "text"), ("provider", "text"),
          ("pid", "text"), ("ptype", "text"), ("data", "jsonb"), ("sid", "bigint"))


def _insert_events_postgres(session: Session, events: Sequence[CanonicalEvent], times: dict[str, datetime],
                            now: datetime) -> None:
    """The derived events through a temporary table: one COPY, one INSERT ... ON CONFLICT DO NOTHING."""
    bulk.apply(session, "sweep_events", _EVENT,
               ((e.id, e.type, times[e.time], e.subject, e.provider, e.providereventid, e.providertype, e.data,
                 e.part("subscriber").get("hub_id")) for e in events),
               "INSERT INTO events (id, delivery_id, type, time, subject, provider, provider_event_id,"
               " provider_type, origin, data, subscriber_id, recorded_at)"
               " SELECT id, NULL, type, time, subject, provider, pid, ptype, 'derived', data, sid, %(now)s"
               " FROM sweep_events ON CONFLICT (id) DO NOTHING", now=now)


def record_bulk(hub: "Hub", session: Session, events: Sequence[CanonicalEvent], now: datetime) -> list[int]:
    """Record the sweep's derived events in bulk; plan rules only when a rule listens for them."""
    insert_events(session, events, now)
    return plan_rules(hub, session, events, now)


def insert_events(session: Session, events: Sequence[CanonicalEvent], now: datetime) -> None:
    """Insert derived events in bulk (an id already recorded is left alone)."""
    if not events:
        return
    times: dict[str, datetime] = {}  # a sweep's events share one time: parse it once
    for e in events:
        if e.time not in times:
            times[e.time] = parse_time(e.time)
    if bulk.is_postgres(session):
        _insert_events_postgres(session, events, times, now)
    else:
        from sqlalchemy.dialects.sqlite import insert

        rows = [{"id": e.id, "delivery_id": None, "type": e.type, "time": times[e.time], "subject": e.subject,
                 "provider": e.provider, "provider_event_id": e.providereventid, "provider_type": e.providertype,
                 "origin": "derived", "data": e.data, "subscriber_id": e.part("subscriber").get("hub_id"),
                 "recorded_at": now} for e in events]
        for i in range(0, len(rows), 1000):
            session.execute(insert(Event.__table__).on_conflict_do_nothing(index_elements=["id"]), rows[i:i + 1000])


def plan_rules(hub: "Hub", session: Session, events: Sequence[CanonicalEvent], now: datetime) -> list[int]:
    """Plan the rules that listen for the sweep's derived events (after ``insert_events``)."""
    if not events:
        return []
    ruleset = hub.rules
    listened = {e.type for e in events if any(matches(p, e.type) for r in ruleset.rules for p in (*r.on, *r.cancel_on))}
    wanted = [e for e in events if e.type in listened]
    if not wanted:
        return []
    planning = outbox.Planning.of(hub)
    due: list[int] = []
    for event in wanted:
        sid = event.part("subscriber").get("hub_id")
        subscriber = session.get(Subscriber, sid) if sid else None
        due.extend(outbox.plan_event(session, planning, event, profile.for_rules(session, subscriber), sid,
                                     event.subject or event.id, now))
    return due
