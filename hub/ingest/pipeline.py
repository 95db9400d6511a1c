"""The ingest worker: a stored delivery -> canonical events -> subscriber state -> planned actions,
all in one transaction that is safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import connectors
from connectors.base import RawDelivery
from hub import jobs, logs, telemetry
from hub.ingest import reconcile
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.kernel.values import parse_time
from hub.kpis import Rates
from hub.outbound import outbox
from hub.rules import StoreFacts, goals
from hub.segments import config as segment_config
from hub.segments import derive
from hub.store import Delivery, Event, insert_ignore, utcnow
from hub.store.models import DeliveryStatus
from hub.subscribers import identity, privacy, profile, state

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)


def process(hub: "Hub", delivery_id: int) -> None:
    """Normalize, apply and plan ``delivery_id`` and, in the same transaction, up to
    ``HUB_INGEST_BATCH - 1`` other received deliveries no other worker holds (oldest first).

    A burst then costs one job and one commit per batch instead of per webhook. Deliveries are
    applied in arrival order, each in its own savepoint: a payload we cannot read, or a bug, marks
    that delivery failed without touching the rest. The batch's other ingest jobs are withdrawn
    from the queue once it commits (one already running elsewhere finds its delivery done).

    When another transaction holds ``delivery_id`` (another worker's batch, or the leftover of a
    killed worker), the job first does other waiting work, then waits for that transaction to end
    and processes the delivery if it is still waiting: a re-run job never gives up on its delivery.
    """
    if not _process_batch(hub, delivery_id, wait=False):
        _process_batch(hub, delivery_id, wait=True)


def _process_batch(hub: "Hub", delivery_id: int, *, wait: bool) -> bool:
    """One batch in one transaction; False if ``delivery_id`` was held by another transaction."""
    finished: list[tuple[str, str, datetime]] = []  # (connector, outcome, received_at) once committed
    claimed: list[tuple[int, str, int]] = []  # due actions queued in the transaction, enqueued after it
    with hub.store.session() as session:
        lead = session.execute(select(Delivery).where(Delivery.id == delivery_id)
                               .with_for_update(skip_locked=not wait)).scalar()
        held = lead is None and session.get(Delivery, delivery_id) is not None
        if lead is not None and lead.status in (DeliveryStatus.PROCESSED, DeliveryStatus.REDACTED):
            lead = None
        size = hub.settings["HUB_INGEST_BATCH"] - (lead is not None)
        more = session.execute(select(Delivery).where(
            Delivery.status == DeliveryStatus.RECEIVED, Delivery.id != delivery_id
        ).order_by(Delivery.id).limit(size).with_for_update(skip_locked=True)).scalars().all() if size > 0 else []
        batch = sorted([lead, *more] if lead is not None else more, key=lambda d: d.id)
        if batch:
            planning = planning_for(hub)
            due: list[int] = []
            for delivery in batch:
                with logs.context(delivery_id=delivery.id):
                    _process(hub, session, delivery, planning, due, finished)
            claimed = outbox.claim_due(session, due)  # queued in this transaction, enqueued once it commits
        taken = [jobs.delivery_job_id(d.id, d.enqueued or 1) for d in batch if d.id != delivery_id]
    for connector, outcome, received_at in finished:
        telemetry.delivery_processed(connector, outcome, received_at)
    outbox.enqueue_claimed(hub, claimed)
    jobs.withdraw(hub.redis, jobs.INGEST_QUEUE, taken)
    return not held


def _process(hub: "Hub", session: Session, delivery: Delivery, planning: outbox.Planning, due: list[int],
             finished: list[tuple[str, str, datetime]]) -> None:
    connector = connectors.get(delivery.connector)
    try:
        if connector is None:
            raise PayloadError(f"no connector named {delivery.connector!r}")
        raw = RawDelivery(delivery.id, delivery.connector, delivery.headers or {}, delivery.body,
                          delivery.received_at)
        events = connector.normalize(raw)
    except PayloadError as exc:
        _fail(delivery, str(exc), finished)
        return
    except Exception as exc:  # a bug in a normalizer must not become a crash loop
        log.exception("normalizing delivery %s failed", delivery.id)
        _fail(delivery, f"internal error while normalizing: {type(exc).__name__}: {hub.scrub(str(exc))}",
              finished)
        return
    try:
        with session.begin_nested():  # a savepoint: a bug below rolls back to here, not the batch
            new_due = record_events(hub, session, events, delivery_id=delivery.id, planning=planning)
    except OperationalError:
        raise  # the database went away (or a deadlock): the job retries the whole batch
    except Exception as exc:  # a bug in state, rules or segments must not become a crash loop either
        log.exception("processing delivery %s failed", delivery.id)
        _fail(delivery, f"internal error while processing: {type(exc).__name__}: {hub.scrub(str(exc))}",
              finished)
        return
    due.extend(new_due)
    delivery.attempts += 1  # counted with the outcome: one UPDATE of the delivery, not two
    delivery.status = DeliveryStatus.PROCESSED
    delivery.processed_at = utcnow()
    delivery.event_count = len(events)
    delivery.error = None
    finished.append((delivery.connector, "processed", delivery.received_at))


def _fail(delivery: Delivery, reason: str, finished: list[tuple[str, str, datetime]]) -> None:
    finished.append((delivery.connector, "failed", delivery.received_at))
    delivery.attempts += 1
    delivery.status = DeliveryStatus.FAILED
    delivery.error = reason[:4000]
    log.warning("delivery %s (%s) failed: %s", delivery.id, delivery.connector, reason)


def planning_for(hub: "Hub") -> outbox.Planning:
    """One ingest transaction's planning value: the rules, anchored rules and dry-run connectors, the
    segment config and the currency rates, read once and handed down to every event it records."""
    return replace(outbox.Planning.of(hub), segments=segment_config.current(hub.settings["HUB_RULES_PATH"]),
                   rates=Rates.from_settings(hub.settings))


def record_events(hub: "Hub", session: Session, events: Iterable[CanonicalEvent], *,
                  delivery_id: int | None = None, origin: str = "provider",
                  now: datetime | None = None, planning: outbox.Planning | None = None,
                  _depth: int = 0) -> list[int]:
    """Store new events, apply them and plan their actions; return the new actions' ids.

    An event already stored (a replay or a duplicate delivery) is skipped entirely. ``now`` is the
    planning clock (``hub rules simulate`` replays events at their own time). A change's event and
    the provider's webhook for the same fact are reconciled (``reconcile.py``): the second is applied
    to state but plans nothing.
    """
    planning = planning or planning_for(hub)
    weights = (planning.segments or segment_config.current(hub.settings["HUB_RULES_PATH"])).engagement
    now = now or utcnow()
    due: list[int] = []
    for event in events:
        inserted = insert_ignore(session, Event.__table__, {
            "id": event.id, "delivery_id": delivery_id, "type": event.type, "time": parse_time(event.time),
            "subject": event.subject, "provider": event.provider, "provider_event_id": event.providereventid,
            "provider_type": event.providertype, "origin": origin, "data": event.data, "recorded_at": now,
        }, ["id"])
        if not inserted:
            continue
        privacy.before_apply(session, event, delivery_id=delivery_id)  # a redact request erases, then forgets
        subscriber = identity.resolve_subscriber(session, event, weights)
        logs.bind(event_id=event.id, subscriber_id=subscriber.id if subscriber else None)
        applied = state.apply(session, event, subscriber)
        confirmed = applied.subscription is not None and reconcile.pair(session, event, origin)
        privacy.after_apply(session, event, subscriber)  # a data request stores an export
        if subscriber is not None:
            session.execute(update(Event).where(Event.id == event.id).values(subscriber_id=subscriber.id))
        # ledgers, segments, tier and segment syncs; the derived events are recorded below
        derived, sync_ids = derive.update(hub, session, event, subscriber, applied, depth=_depth, now=now,
                                          planning=planning)
        due.extend(sync_ids)
        if confirmed:  # its rules fired on the first of the pair
            if derived:
                due.extend(record_events(hub, session, derived, origin="derived", now=now, planning=planning,
                                         _depth=_depth + 1))
            continue
        subject = str(event.part("subscription").get("id") or (f"subscriber:{subscriber.id}" if subscriber
                                                                else event.subject or event.id))
        facts = StoreFacts(session, subscriber.id if subscriber else None, subject)
        new_ids = outbox.plan_event(session, planning, event, profile.for_rules(session, subscriber),
                                    subscriber.id if subscriber else None, subject, now, facts)
        due.extend(new_ids)  # dispatch() queues only those already due
        goals.track(session, event, subscriber.id if subscriber else None)  # split/goal conversions
        if derived:
            due.extend(record_events(hub, session, derived, origin="derived", now=now, planning=planning,
                                     _depth=_depth + 1))
    return due
