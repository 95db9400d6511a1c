"""Properties of planning over the default playbook, on random event streams:
planning every event twice equals planning it once, and the order in which independent
subscribers' events interleave does not change the plan."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hub.config import load_settings
from hub.ingest.pipeline import record_events
from hub.kernel.events import CanonicalEvent
from hub.kernel.values import rfc3339
from hub.outbound import outbox
from hub.rules import StoreFacts, load_rules, plan
from hub.simulate import _sim_hub
from hub.store import Action, Event, Subscriber
from hub.subscribers import identity, profile
from tests.conftest import ROOT

RULES = load_rules([ROOT / "rules"], environ={})
SETTINGS = load_settings(environ={"HUB_RULES_PATH": str(ROOT / "rules")}, dotenv_path=None)
START = datetime(2026, 1, 31, 10, 0, tzinfo=timezone.utc)
KINDS = ["created", "changed", "paused", "resumed", "cancelled", "reactivated", "failed", "paid", "usage"]


def _event(who: int, n: int, kind: str, at: datetime, period_days: int) -> CanonicalEvent:
    sub_id = f"sub_{who}"
    status = {"paused": "paused", "cancelled": "cancelled", "failed": "past_due"}.get(kind, "active")
    subscription = {"id": sub_id, "status": status, "plan": {"name": "Pro", "interval": "year"},
                    "current_period_end": rfc3339(START + timedelta(days=period_days))}
    type_ = {"created": "subscription.created", "changed": "subscription.changed", "paused": "subscription.paused",
             "resumed": "subscription.resumed", "cancelled": "subscription.cancelled",
             "reactivated": "subscription.reactivated", "failed": "payment.failed", "paid": "payment.succeeded",
             "usage": "usage.recorded"}[kind]
    data: dict[str, Any] = {"subscriber": {"email": f"s{who}@example.com", "external_ids": {"stripe": f"cus_{who}"}},
                            "subscription": subscription}
    if kind in ("failed", "paid"):
        data["invoice"] = {"id": f"in_{who}", "status": "open" if kind == "failed" else "paid"}
        data["payment"] = {"amount": {"minor": 1000, "currency": "USD"}, "attempt": 1}
        data["subscription"] = {"id": sub_id}
    if kind == "usage":
        data["usage"] = {"metric": "seats", "quantity": 8, "limit": 10}
    return CanonicalEvent(type=type_, time=rfc3339(at), provider="stripe", providereventid=f"evt_{who}_{n}",
                          providertype=type_, data=data)


@st.composite
def streams(draw: Any) -> list[list[CanonicalEvent]]:
    """Per subscriber, an ordered list of events (times increase within a subscriber)."""
    out = []
    for who in range(draw(st.integers(1, 2))):
        at, period = START, 365
        events = []
        for n, kind in enumerate(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))):
            at += timedelta(hours=draw(st.integers(1, 24 * 20)))
            if kind in ("changed", "created"):
                period = draw(st.integers(20, 400))
            events.append(_event(who, n, kind, at, period))
        out.append(events)
    return out


def _outbox(hub: Any) -> list[tuple[Any, ...]]:
    """The outbox, with what depends on arrival order (subscriber numbers, and so the ids of events
    derived per subscriber) replaced by e-mails and by each event's type and time."""
    with hub.store.session() as s:
        emails = {f"subscriber:{i}": e for i, e in s.execute(select(Subscriber.id, Subscriber.email)).all()}
        events = {i: f"{t}@{rfc3339(at)}" for i, t, at in s.execute(select(Event.id, Event.type, Event.time)).all()}
        rows = s.execute(select(Action)).scalars().all()
        return sorted((a.rule_id or "", emails.get(a.subject or "", a.subject or ""), a.step or "", a.status,
                       rfc3339(a.due_at), json.dumps(a.params, sort_keys=True),
                       events.get(a.cancelled_by or "", a.cancelled_by or ""), events.get(a.event_id or "", ""))
                      for a in rows)


def _run(events: list[CanonicalEvent], *, twice: bool) -> list[tuple[Any, ...]]:
    hub = _sim_hub(RULES, SETTINGS)
    try:
        for e in events:
            now = datetime.fromisoformat(e.time.replace("Z", "+00:00"))
            with hub.store.session() as s:
                record_events(hub, s, [e], now=now)
            if twice:  # plan the same event again, past the events table's own duplicate check
                with hub.store.session() as s:
                    subscriber = identity.resolve_subscriber(s, e)
                    sid = subscriber.id if subscriber else None
                    subject = str(e.part("subscription").get("id") or f"subscriber:{sid}")
                    planned, cancels = plan(RULES, e, profile.for_rules(s, subscriber), now, subject,
                                            StoreFacts(s, sid, subject))
                    outbox.cancel(s, cancels, subscriber_id=sid, subject=subject)
                    outbox.write_planned(s, planned, subscriber_id=sid, dry_run_connectors=set(),
                                         anchored_rules=RULES.anchored)
        return _outbox(hub)
    finally:
        hub.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
# a second failure while the first one's retries are still pending: the throttle must not count the
# steps the new plan replaces (they are cancelled by then when the event is planned again)
@example([[_event(0, 0, "failed", START + timedelta(hours=1), 365),
           _event(0, 1, "paused", START + timedelta(hours=2), 365),
           _event(0, 2, "failed", START + timedelta(days=10, hours=1), 365)]])
def test_planning_every_event_twice_equals_once(per_subscriber: list[list[CanonicalEvent]]):
    events = sorted((e for group in per_subscriber for e in group), key=lambda e: e.time)
    assert _run(events, twice=True) == _run(events, twice=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.randoms(use_true_random=False))
def test_interleaving_independent_subscribers_does_not_change_the_plan(per_subscriber, rnd):
    in_order = [e for group in per_subscriber for e in group]
    # a random interleaving that keeps each subscriber's own order
    queues = [list(group) for group in per_subscriber]
    shuffled = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        shuffled.append(queue.pop(0))
    assert _run(shuffled, twice=False) == _run(in_order, twice=False)
