"""What the planner may ask the store: a small, read-only view used inside the ingest transaction
(usage history for ``usage_ratio``, the outbox for ``throttle`` and for re-planning cancelled steps)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any, Iterable, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from hub.kernel.events import EventType
from hub.kernel.values import rfc3339


class Facts(Protocol):
    def usage_ratio(self, metric: str, days: float, now: datetime) -> float: ...

    def steps_since(self, rule_id: str, since: datetime, exclude_keys: set[str],
                    replacing: str | None = None, key: str | None = None) -> int: ...

    def channel_near(self, channel: str, due: datetime, window: timedelta, exclude_keys: set[str]) -> str | None: ...

    def cancelled(self, keys: Iterable[str]) -> dict[str, tuple[int, str | None]]: ...


class NoFacts:
    """No history: no usage, nothing planned before (benchmarks, unit tests of pure planning)."""

    def usage_ratio(self, metric: str, days: float, now: datetime) -> float:
        return 0.0

    def steps_since(self, rule_id: str, since: datetime, exclude_keys: set[str],
                    replacing: str | None = None, key: str | None = None) -> int:
        return 0

    def channel_near(self, channel: str, due: datetime, window: timedelta, exclude_keys: set[str]) -> str | None:
        return None

    def cancelled(self, keys: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        return {}


class StoreFacts:
    """Facts read through the ingest transaction's session, scoped to one subscriber (or, for events
    without one, to the subject)."""

    def __init__(self, session: Session, subscriber_id: int | None, subject: str | None):
        self.session = session
        self.subscriber_id = subscriber_id
        self.subject = subject
        self._locked = False

    def _scope(self, column_subscriber, column_subject):  # type: ignore[no-untyped-def]
        if self.subscriber_id is not None:
            return column_subscriber == self.subscriber_id
        return column_subject == self.subject

    def usage_ratio(self, metric: str, days: float, now: datetime) -> float:
        """Highest ``usage.total`` (else ``usage.quantity``) / ``usage.limit`` reported for ``metric``
        in the last ``days`` days; 0.0 when nothing was reported."""
        from hub.store import Event

        if self.subscriber_id is None:
            return 0.0
        rows = self.session.execute(select(Event.data).where(
            Event.subscriber_id == self.subscriber_id, Event.type == EventType.USAGE_RECORDED,
            Event.time >= now - timedelta(days=float(days)), Event.time <= now,
        )).scalars().all()
        best = 0.0
        for data in rows:
            usage = (data or {}).get("usage") or {}
            if usage.get("metric") != metric:
                continue
            used = usage.get("total", usage.get("quantity"))
            try:
                ratio = float(used) / float(usage["limit"])
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                continue
            best = max(best, ratio)
        return best

    def _lock(self) -> None:
        from hub.store import Subscriber

        if self.subscriber_id is not None and not self._locked:
            self.session.execute(select(Subscriber.id).where(Subscriber.id == self.subscriber_id).with_for_update())
            self._locked = True

    def steps_since(self, rule_id: str, since: datetime, exclude_keys: set[str],
                    replacing: str | None = None, key: str | None = None) -> int:
        """Steps of ``rule_id`` planned for this subscriber (and ``key``: the throttle's invoice,
        subscription...) and due after ``since`` (cancelled and suppressed ones do not count). The
        subscriber row is locked first, so two events for one subscriber in parallel transactions
        cannot both pass a throttle.

        ``replacing``: the occurrence (anchor date) a scheduled rule is planning now. Its pending
        steps for this subject from another anchor are about to be replaced (``outbox.write_planned``
        cancels them), so they do not count either; counting them made planning an event twice
        differ from once (the second time they were already cancelled)."""
        from hub.store import Action
        from hub.store.models import ActionStatus

        self._lock()
        query = select(Action.key, Action.occurrence, Action.step, Action.subject, Action.status).where(
            Action.rule_id == rule_id, self._scope(Action.subscriber_id, Action.subject),
            Action.status.not_in([ActionStatus.CANCELLED, ActionStatus.SUPPRESSED]), Action.due_at > since)
        if key is not None:
            query = query.where(Action.throttle_key == key)
        rows = self.session.execute(query).all()
        return len({(occurrence, step) for key, occurrence, step, subject, status in rows
                    if key not in exclude_keys and not (
                        replacing is not None and status == ActionStatus.SCHEDULED and subject == self.subject
                        and occurrence != replacing)})

    def channel_near(self, channel: str, due: datetime, window: timedelta, exclude_keys: set[str]) -> str | None:
        """A message of ``channel`` planned for this subscriber within ``window`` of ``due`` (sent or
        pending; cancelled and suppressed ones do not count), as "rule due time"; None when none."""
        from hub.store import Action
        from hub.store.models import ActionStatus

        if self.subscriber_id is None:
            return None
        self._lock()
        row = self.session.execute(select(Action.rule_id, Action.due_at, Action.key).where(
            Action.subscriber_id == self.subscriber_id, Action.channel == channel,
            Action.status.not_in([ActionStatus.CANCELLED, ActionStatus.SUPPRESSED]),
            Action.due_at > due - window, Action.due_at < due + window,
        ).order_by(Action.due_at)).all()
        found = next((r for r in row if r.key not in exclude_keys), None)
        return None if found is None else f"{found.rule_id} due {rfc3339(found.due_at)}"

    def cancelled(self, keys: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """key -> (row id, the event that planned it), for those of ``keys`` whose row is cancelled."""
        keys = list(keys)
        if not keys:
            return {}
        rows = self.session.execute(_cancelled_query(), {"keys": keys}).all()
        return {key: (id_, event_id) for key, id_, event_id in rows}


@cache
def _cancelled_query() -> Any:
    """Built once: constructing the statement per call cost more than running it (every event that
    triggers a scheduled rule asks this)."""
    from hub.store import Action
    from hub.store.models import ActionStatus

    actions = Action.__table__
    return select(actions.c.key, actions.c.id, actions.c.event_id).where(
        actions.c.key.in_(bindparam("keys", expanding=True)), actions.c.status == ActionStatus.CANCELLED)
