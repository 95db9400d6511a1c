"""The outbox: write planned actions, cancel moot ones, hand due ones to the queues."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

import connectors
from hub import jobs, telemetry, tracing
from hub.kernel.events import CanonicalEvent
from hub.rules import Cancellation, Facts, PlannedAction, RuleSet, plan
from hub.store import Action, insert_ignore, utcnow
from hub.store.models import ActionStatus

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planning:
    """What planning reads, once per transaction: the rules in force, which of them are anchored to a
    date, which destinations run dry, and (ingest adds them, ``pipeline.planning_for``) the segment
    config and the currency rates the segment engine evaluates with."""

    ruleset: RuleSet
    anchored: frozenset[str]
    dry_run: frozenset[str]
    segments: Any = None
    rates: Any = None

    @classmethod
    def of(cls, hub: "Hub") -> "Planning":
        ruleset = hub.rules
        return cls(ruleset, frozenset(ruleset.anchored), connectors.dry_run_connectors(hub.settings))


def plan_event(session: Session, planning: Planning, event: CanonicalEvent, profile: dict[str, Any],
               subscriber_id: int | None, subject: str, now: datetime, facts: Facts | None = None) -> list[int]:
    """Plan one event's rules into the outbox: cancel what it cancels, insert what it plans; new ids."""
    planned, cancels = plan(planning.ruleset, event, profile, now, subject, facts)
    cancel(session, cancels, subscriber_id=subscriber_id, subject=subject)
    return write_planned(session, planned, subscriber_id=subscriber_id, dry_run_connectors=planning.dry_run,
                         anchored_rules=planning.anchored)


def write_planned(session: Session, planned: Sequence[PlannedAction], *, subscriber_id: int | None,
                  dry_run_connectors: frozenset[str], anchored_rules: frozenset[str]) -> list[int]:
    """Insert planned actions (a key seen before is left alone); return the new rows' ids.

    For scheduled rules, pending steps planned from an older anchor date (the renewal moved)
    are cancelled so the new plan replaces them instead of adding to them.
    """
    now = utcnow()
    for rule_id, subject, occurrence in {(p.rule_id, p.subject, p.occurrence) for p in planned
                                         if p.rule_id in anchored_rules}:
        session.execute(update(Action).where(
            Action.rule_id == rule_id, Action.subject == subject, Action.occurrence != occurrence,
            Action.status == ActionStatus.SCHEDULED,
        ).values(status=ActionStatus.CANCELLED, last_error="re-planned: the anchor date moved", updated_at=now))
    rows = [{
        "key": p.key, "rule_id": p.rule_id, "rules_hash": p.rules_hash, "event_id": p.event_id,
        "subscriber_id": subscriber_id, "subject": p.subject, "occurrence": p.occurrence, "step": p.step,
        "connector": p.connector, "name": p.name, "params": p.params, "due_at": p.due_at,
        "status": ActionStatus.SUPPRESSED if p.suppressed else ActionStatus.SCHEDULED, "attempts": 0,
        "dispatch_seq": 0, "dry_run": p.connector in dry_run_connectors, "created_at": now, "updated_at": now,
        "suppressed": p.suppressed, "note": p.note, "via": p.via, "channel": p.channel,
        "throttle_key": p.throttle_key, "variant": p.variant, "goal": p.goal, "goal_until": p.goal_until,
        "converted_by": None,
    } for p in planned]
    return insert_ignore(session, Action.__table__, rows, ["key"])


def cancel(session: Session, cancellations: Iterable[Cancellation], *, subscriber_id: int | None,
           subject: str | None) -> int:
    """Cancel the pending (not yet queued) steps of the named rules. An event about a subscription
    (``c.subscription``) cancels those planned for that subscription and the subscriber's own
    (subject ``subscriber:<id>``), not those of the subscriber's other subscriptions: pausing one
    keeps the others' renewal reminders. An event about the subscriber only cancels all of the
    subscriber's; with no subscriber known, those of ``subject``. For a rule with ``per:``, an event
    naming the instance (``c.occurrence``: its invoice) cancels only that instance's steps."""
    total = 0
    for c in cancellations:
        scope = []
        if subscriber_id is not None:
            scope.append(Action.subscriber_id == subscriber_id)
            if c.occurrence:
                scope.append(Action.occurrence == c.occurrence)
            elif c.subscription:
                scope.append(Action.subject.in_([c.subscription, f"subscriber:{subscriber_id}"]))
        elif subject:
            scope.append(Action.subject == subject)
            if c.occurrence:
                scope.append(Action.occurrence == c.occurrence)
        else:
            continue
        rows = session.execute(update(Action).where(
            Action.rule_id == c.rule_id, Action.status == ActionStatus.SCHEDULED, *scope,
        ).values(status=ActionStatus.CANCELLED, cancelled_by=c.event_id, updated_at=utcnow())
            .returning(Action.connector, Action.name)).all()
        telemetry.actions_cancelled(rows)  # counted before the commit: a rollback is rare here
        total += len(rows)
    return total


def dispatch(hub: "Hub", action_ids: Sequence[int] | None = None, *, limit: int = 500,
             now: datetime | None = None) -> int:
    """Move due scheduled actions to ``queued`` (committed first) and enqueue a deliver job for each.

    A deliver job also claims other due work of its destination (as much as its rate limits have
    room for) and withdraws the jobs of what it claimed (``jobs.withdraw``), so a backlog is
    delivered by a few jobs while an action coming back for its booked room always has a job of
    its own. If enqueueing fails after the commit, the sweeper finds the queued rows with no live job.
    """
    if action_ids is not None and not action_ids:
        return 0
    with hub.store.session() as session:
        claimed = claim_due(session, action_ids, limit=limit, now=now)
    enqueue_claimed(hub, claimed)
    return len(claimed)


def claim_due(session: Session, action_ids: Sequence[int] | None = None, *, limit: int = 500,
              now: datetime | None = None) -> list[tuple[int, str, int]]:
    """In the caller's transaction, move due scheduled actions (of ``action_ids`` if given) to
    ``queued``; return ``(id, connector, dispatch seq)`` for ``enqueue_claimed`` after the commit.
    Ingest calls it in the transaction that planned the actions (no second transaction per event)."""
    now = now or utcnow()
    query = select(Action.id).where(Action.status == ActionStatus.SCHEDULED, Action.due_at <= now)
    if action_ids is not None:
        if not action_ids:
            return []
        query = query.where(Action.id.in_(list(action_ids)))
    picked = query.order_by(Action.due_at).limit(limit).with_for_update(skip_locked=True)
    # one statement: pick (row locks, SKIP LOCKED) and queue
    return [tuple(r) for r in session.execute(update(Action).where(  # type: ignore[misc]
        and_(Action.id.in_(picked), Action.status == ActionStatus.SCHEDULED)
    ).values(status=ActionStatus.QUEUED, dispatch_seq=Action.dispatch_seq + 1, queued_at=now,
             updated_at=now).returning(Action.id, Action.connector, Action.dispatch_seq)).all()]


def enqueue_claimed(hub: "Hub", claimed: Sequence[tuple[int, str, int]]) -> None:
    """Enqueue a deliver job per claimed action (call after the claim's commit)."""
    if not claimed:
        return
    try:
        # at the front of the destination's queue: what falls due now is the time-critical work
        # (an action coming back for its booked room), not the jobs of a backlog waiting in line;
        # pushed highest id first, so the lowest ends up in front
        jobs.enqueue_deliver(hub.redis, sorted(claimed, reverse=True), tracing.carrier())
    except Exception as exc:  # Redis down: the sweeper re-enqueues stranded rows
        log.warning("could not enqueue %d actions (%s); the sweeper will retry", len(claimed), type(exc).__name__)


def hold(session: Session, holds: dict[int, float], reason: str, now: datetime | None = None) -> None:
    """Put claimed actions back in the schedule for ``holds[id]`` seconds without using an attempt
    (rate limit, open circuit): the claim counted one, this takes it back."""
    now = now or utcnow()
    for action_id, wait in holds.items():
        session.execute(update(Action).where(Action.id == action_id, Action.status == ActionStatus.SENDING)
                        .values(status=ActionStatus.SCHEDULED, due_at=now + timedelta(seconds=wait),
                                attempts=Action.attempts - 1, lease_until=None, last_error=reason,
                                updated_at=now))


def release(session: Session, action_ids: Sequence[int], reason: str, now: datetime | None = None) -> None:
    """Put claimed actions back in the outbox line, still queued and due, without using an attempt:
    every room of their rate limit is booked, and the next claim of their destination (the job of
    a send that frees a room) takes them in due order. If that never happens (its destination
    went quiet), the sweeper re-dispatches them like any queued action whose job is gone."""
    if not action_ids:
        return
    session.execute(update(Action)
                    .where(Action.id.in_(list(action_ids)), Action.status == ActionStatus.SENDING)
                    .values(status=ActionStatus.QUEUED, attempts=Action.attempts - 1, lease_until=None,
                            last_error=reason, updated_at=now or utcnow()))


#: a worker that puts an action back publishes here (after commit) so a sleeping scheduler wakes
#: for the new due time: precise returns without a short polling interval
WAKE_CHANNEL = "hub:scheduler:wake"


def wake_scheduler(hub: "Hub", due_in: float) -> None:
    """Tell sleeping schedulers that an action falls due in ``due_in`` seconds."""
    if hub.settings.embedded_queue:
        return
    try:
        hub.redis.publish(WAKE_CHANNEL, f"{due_in:.3f}")
    except Exception as exc:  # the scheduler's own interval still brings the action back
        log.warning("could not wake the scheduler (%s)", type(exc).__name__)


def seconds_to_next_due(hub: "Hub", now: datetime | None = None) -> float | None:
    """Seconds until the earliest scheduled action falls due (<= 0: due now), or None."""
    with hub.store.session() as session:
        soonest = session.execute(select(func.min(Action.due_at)).where(
            Action.status == ActionStatus.SCHEDULED)).scalar()
    return None if soonest is None else (soonest - (now or utcnow())).total_seconds()


class Alarm:
    """The scheduler's sleep between ticks: until a given time, a worker's wake-up message, or stop.

    Waits on a Redis pub/sub subscription with a client-side timeout (precise to a millisecond or
    so; a server-side blocking timeout such as BLPOP's can fire up to 100 ms late).
    """

    def __init__(self, hub: "Hub", stop: threading.Event):
        self.hub, self.stop = hub, stop
        self.pubsub: Any = None

    def _subscribed(self) -> Any:
        if self.pubsub is None and not self.hub.settings.embedded_queue:
            pubsub = self.hub.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(WAKE_CHANNEL)
            self.pubsub = pubsub
        return self.pubsub

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        try:
            pubsub = self._subscribed()
            while pubsub is not None and not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if pubsub.get_message(timeout=min(left, 1.0)) is not None:
                    while pubsub.get_message(timeout=0) is not None:  # several wake-ups: one tick
                        pass
                    return
        except Exception:  # Redis away: sleep the pause out and subscribe again next time
            self.close()
        self.stop.wait(max(deadline - time.monotonic(), 0.0))

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:
                pass
            self.pubsub = None


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter: base * 2**(attempt-1), capped, scaled by a factor in [0.5, 1]."""
    delay = min(base * (2 ** max(attempt - 1, 0)), cap)
    return delay * (0.5 + 0.5 * jitter)
