"""Dry-run: run canonical events through state and rules on a throw-away in-memory SQLite store and
report every action that would be planned. Nothing is sent, queued or written anywhere else.

Events are replayed in time order "as if live": each is planned at its own time (or at a fixed
``now``), and before each event the steps whose time has come are taken as sent, so a later
cancellation only cancels what would still have been pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import select, update
from sqlalchemy.pool import StaticPool

from hub.kernel.events import CanonicalEvent
from hub.kernel.values import parse_time, rfc3339
from hub.rules.model import RuleSet

SIM_SENT = "done"  # the outbox status a simulated step takes when its time comes


@dataclass
class SimulatedAction:
    rule: str
    action: str
    subject: str | None
    due_at: str
    step: str | None
    params: dict[str, Any]
    cancelled_by: str | None
    #: scheduled (still pending at the end) | due (its time came) | cancelled | replanned, or recorded
    #: but never sent: throttled | capped | skipped-historic | skipped-missed | no-route
    status: str
    event: str | None  # the triggering event
    reason: str | None = None  # why: the suppression, a quiet-hours delay, the billing route, the canceller
    via: str | None = None  # the canonical action it was routed from (billing.retry_payment)
    variant: str | None = None  # the rule's split variant for this recipient
    converted_by: str | None = None  # the goal event that converted it

    @property
    def delayed(self) -> bool:
        """Moved out of quiet hours."""
        return "quiet-hours-delayed" in (self.reason or "")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "subject": self.subject, "due_at": self.due_at,
                "step": self.step, "params": self.params, "cancelled_by": self.cancelled_by, "status": self.status,
                "event": self.event, "reason": self.reason, "via": self.via, "delayed": self.delayed,
                "variant": self.variant, "converted_by": self.converted_by}


def _sim_hub(ruleset: RuleSet, settings: Any) -> Any:
    import fakeredis

    from hub.runtime import Hub
    from hub.store import Base, Store

    class SimulationHub(Hub):
        """A Hub whose rules are fixed and whose store lives in memory."""

        @property
        def rules(self) -> RuleSet:  # type: ignore[override]
            return ruleset

    store = Store("sqlite:///:memory:", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(store.engine)
    return SimulationHub(settings, store=store, redis=fakeredis.FakeRedis())


def simulate(events: Iterable[CanonicalEvent], ruleset: RuleSet, *, now: datetime | None = None,
             settings: Any = None) -> list[SimulatedAction]:
    """Every action the rules would plan for ``events``, in due-time order."""
    from hub.config import load_settings
    from hub.ingest.pipeline import record_events
    from hub.store import Action
    from hub.store.models import ActionStatus

    # the simulated hub reads the same rules files (segments and tiers live there too)
    settings = settings or load_settings(environ={"HUB_RULES_PATH": ",".join(ruleset.files)}, dotenv_path=None)
    hub = _sim_hub(ruleset, settings)
    ordered = sorted(events, key=lambda e: parse_time(e.time))
    replanned_by: dict[int, str] = {}
    clock = now
    try:
        for event in ordered:
            clock = now or max(parse_time(event.time), clock or parse_time(event.time))
            with hub.store.session() as session:
                session.execute(update(Action).where(Action.status == ActionStatus.SCHEDULED, Action.due_at <= clock)
                                .values(status=SIM_SENT))
                before = set(session.execute(select(Action.id).where(Action.status == ActionStatus.CANCELLED,
                                                                     Action.cancelled_by.is_(None))).scalars())
                record_events(hub, session, [event], now=clock)
                after = session.execute(select(Action.id).where(Action.status == ActionStatus.CANCELLED,
                                                                Action.cancelled_by.is_(None))).scalars()
                replanned_by.update({i: event.id for i in after if i not in before})
        with hub.store.session() as session:
            if clock is not None:
                session.execute(update(Action).where(Action.status == ActionStatus.SCHEDULED, Action.due_at <= clock)
                                .values(status=SIM_SENT))
            rows = session.execute(select(Action).order_by(Action.due_at, Action.id)).scalars().all()
            return [_simulated(row, replanned_by) for row in rows]
    finally:
        hub.close()


def _simulated(row: Any, replanned_by: dict[int, str]) -> SimulatedAction:
    reason = row.note
    if row.status == "cancelled":
        status = "replanned" if row.cancelled_by is None else "cancelled"
        cancelled_by = row.cancelled_by or replanned_by.get(row.id)
        why = (row.last_error or "the anchor date moved") if row.cancelled_by is None else \
            f"cancel_on of rule {row.rule_id}: event {row.cancelled_by}"
        reason = f"{why}; {reason}" if reason else why
    elif row.status == "suppressed":
        status, cancelled_by = row.suppressed, None
    else:
        status, cancelled_by = ("due" if row.status == SIM_SENT else "scheduled"), None
    return SimulatedAction(rule=row.rule_id, action=f"{row.connector}.{row.name}", subject=row.subject,
                           due_at=rfc3339(row.due_at), step=row.step, params=row.params, cancelled_by=cancelled_by,
                           status=status, event=row.event_id, reason=reason, via=row.via, variant=row.variant,
                           converted_by=row.converted_by)


def stored_events(hub: Any, since: datetime) -> list[CanonicalEvent]:
    """Events stored at or after ``since`` (by their time), read-only, oldest first."""
    from hub.store import Event

    with hub.store.session() as session:
        rows = session.execute(select(Event).where(Event.time >= since).order_by(Event.time, Event.id)).scalars().all()
        return [CanonicalEvent(type=r.type, time=rfc3339(r.time), provider=r.provider,
                               providereventid=r.provider_event_id, providertype=r.provider_type, data=r.data or {},
                               subject=r.subject, id=r.id) for r in rows]
