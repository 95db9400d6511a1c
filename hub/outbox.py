"""The outbox: write planned actions, cancel moot ones, hand due ones to the queues."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable, Sequence

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from .rules import Cancellation, PlannedAction
from .store import Action, insert_ignore, utcnow
from .store.models import ActionStatus

if TYPE_CHECKING:
    from .runtime import Hub

log = logging.getLogger(__name__)


def write_planned(session: Session, planned: Sequence[PlannedAction], *, subscriber_id: int | None,
                  dry_run_connectors: set[str], anchored_rules: set[str]) -> list[int]:
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
        "status": ActionStatus.SCHEDULED, "attempts": 0, "dispatch_seq": 0,
        "dry_run": p.connector in dry_run_connectors, "created_at": now, "updated_at": now,
    } for p in planned]
    return insert_ignore(session, Action.__table__, rows, ["key"])


def cancel(session: Session, cancellations: Iterable[Cancellation], *, subscriber_id: int | None,
           subject: str | None) -> int:
    """Cancel the pending (not yet queued) steps of the named rules. An event about a subscription
    (``c.subscription``) cancels those planned for that subscription and the subscriber's own
    (subject ``subscriber:<id>``), not those of the subscriber's other subscriptions: pausing one
    keeps the others' renewal reminders. An event about the subscriber only cancels all of the
    subscriber's; with no subscriber known, those of ``subject``."""
    total = 0
    for c in cancellations:
        scope = []
        if subscriber_id is not None:
            scope.append(Action.subscriber_id == subscriber_id)
            if c.subscription:
                scope.append(Action.subject.in_([c.subscription, f"subscriber:{subscriber_id}"]))
        elif subject:
            scope.append(Action.subject == subject)
        else:
            continue
        result = session.execute(update(Action).where(
            Action.rule_id == c.rule_id, Action.status == ActionStatus.SCHEDULED, *scope,
        ).values(status=ActionStatus.CANCELLED, cancelled_by=c.event_id, updated_at=utcnow()))
        total += result.rowcount or 0
    return total


def job_id(action_id: int, seq: int) -> str:
    return f"a{action_id}-{seq}"


#: due actions of one destination handed to one deliver job (it claims them, and any other due
#: work of that destination, itself: see hub/delivery.py)
DISPATCH_CHUNK = 50


def dispatch(hub: "Hub", action_ids: Sequence[int] | None = None, *, limit: int = 500,
             now: datetime | None = None) -> int:
    """Move due scheduled actions to ``queued`` (committed first) and enqueue deliver jobs for them.

    One job per destination and chunk of ``DISPATCH_CHUNK`` actions, named after its first action:
    a deliver job claims every due action of its destination, so per-action jobs would mostly be
    no-ops. If enqueueing fails after the commit, the sweeper finds the queued rows with no live job.
    """
    now = now or utcnow()
    with hub.store.session() as session:
        query = select(Action.id).where(Action.status == ActionStatus.SCHEDULED, Action.due_at <= now)
        if action_ids is not None:
            if not action_ids:
                return 0
            query = query.where(Action.id.in_(list(action_ids)))
        ids = session.execute(query.order_by(Action.due_at).limit(limit).with_for_update(skip_locked=True)
                              ).scalars().all()
        if not ids:
            return 0
        claimed = session.execute(update(Action).where(
            and_(Action.id.in_(ids), Action.status == ActionStatus.SCHEDULED)
        ).values(status=ActionStatus.QUEUED, dispatch_seq=Action.dispatch_seq + 1, queued_at=now,
                 updated_at=now).returning(Action.id, Action.connector, Action.dispatch_seq)).all()
    from .runtime import deliver_queue_name

    by_connector: dict[str, list[tuple[int, int]]] = {}
    for action_id, connector, seq in sorted(claimed):
        by_connector.setdefault(connector, []).append((action_id, seq))
    for connector, items in by_connector.items():
        for start in range(0, len(items), DISPATCH_CHUNK):
            action_id, seq = items[start]
            try:
                hub.enqueue(deliver_queue_name(connector), "hub.tasks.deliver_action", action_id,
                            job_id(action_id, seq))
            except Exception as exc:  # Redis down: the sweeper re-enqueues stranded rows
                log.warning("could not enqueue action %s (%s); the sweeper will retry", action_id,
                            type(exc).__name__)
    return len(claimed)


def hold(session: Session, holds: dict[int, float], reason: str, now: datetime | None = None) -> None:
    """Put claimed actions back in the schedule for ``holds[id]`` seconds without using an attempt
    (rate limit, open circuit): the claim counted one, this takes it back."""
    now = now or utcnow()
    for action_id, wait in holds.items():
        session.execute(update(Action).where(Action.id == action_id, Action.status == ActionStatus.SENDING)
                        .values(status=ActionStatus.SCHEDULED, due_at=now + timedelta(seconds=wait),
                                attempts=Action.attempts - 1, lease_until=None, last_error=reason,
                                updated_at=now))


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter: base * 2**(attempt-1), capped, scaled by a factor in [0.5, 1]."""
    delay = min(base * (2 ** max(attempt - 1, 0)), cap)
    return delay * (0.5 + 0.5 * jitter)


def retry_horizon(attempts: int, base: float, cap: float) -> timedelta:
    """Longest time from the first attempt to the last (no jitter): the documented horizon."""
    return timedelta(seconds=sum(min(base * 2 ** i, cap) for i in range(attempts - 1)))
