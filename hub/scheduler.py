"""The scheduler process: moves due actions onto the queues and sweeps for stranded work (Redis
flushed or restarted, a worker killed, a crash between commit and enqueue). The sweeps (stranded
work, time-based segment transitions) run in a housekeeping thread of their own, so a long segment
sweep never holds up the dispatch of due actions. Between ticks it sleeps
until the next action falls due (at most ``HUB_SCHEDULER_INTERVAL_SECONDS``), and a worker that puts
an action back wakes it, so an action waiting for its rate-limit room leaves on time.
Several schedulers may run at once: claims use row locks with SKIP LOCKED."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update

import connectors
from hub import jobs
from hub.changes import batch as change_batch
from hub.outbound import outbox
from hub.store import Action, Attempt, Delivery, utcnow
from hub.store.models import ActionStatus, DeliveryStatus

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)


def sweep(hub: "Hub", stranded_after: float | None = None) -> dict[str, int]:
    """Recover stranded work (older than ``stranded_after`` seconds, by default the setting).
    Returns how many of each kind were recovered."""
    now = utcnow()
    if stranded_after is None:
        stranded_after = hub.settings["HUB_STRANDED_AFTER_SECONDS"]
    stale = now - timedelta(seconds=stranded_after)
    counts = {"leases": 0, "actions": 0, "deliveries": 0}
    with hub.store.session() as session:
        # 1. a worker died holding an action: take it back, record the lost attempt
        expired = session.execute(select(Action.id, Action.attempts).where(
            Action.status == ActionStatus.SENDING, Action.lease_until < now).with_for_update(skip_locked=True)).all()
        for action_id, attempts in expired:
            session.add(Attempt(action_id=action_id, number=attempts, started_at=now, finished_at=now,
                                outcome="lost", error="worker stopped before recording an outcome (lease expired)"))
        if expired:
            session.execute(update(Action).where(Action.id.in_([a for a, _ in expired]))
                            .values(status=ActionStatus.SCHEDULED, due_at=now, lease_until=None, updated_at=now))
        counts["leases"] = len(expired)
        # 2. queued actions whose job vanished (Redis flushed, enqueue failed after commit)
        queued = session.execute(select(Action.id, Action.dispatch_seq).where(
            Action.status == ActionStatus.QUEUED, Action.queued_at < stale).with_for_update(skip_locked=True)).all()
        lost = [a for a, seq in queued if not jobs.job_alive(hub.redis, jobs.action_job_id(a, seq))]
        if lost:
            session.execute(update(Action).where(Action.id.in_(lost), Action.status == ActionStatus.QUEUED)
                            .values(status=ActionStatus.SCHEDULED, due_at=now, updated_at=now))
        counts["actions"] = len(lost)
        # 3. deliveries never processed whose job vanished
        waiting = session.execute(select(Delivery.id, Delivery.enqueued).where(
            Delivery.status == DeliveryStatus.RECEIVED,
            or_(Delivery.enqueued_at < stale, Delivery.enqueued_at.is_(None) & (Delivery.received_at < stale)),
        ).with_for_update(skip_locked=True)).all()
        to_enqueue = []
        for delivery_id, seq in waiting:
            if not jobs.job_alive(hub.redis, jobs.delivery_job_id(delivery_id, seq or 1)):
                to_enqueue.append((delivery_id, (seq or 1) + 1))
        for delivery_id, seq in to_enqueue:
            session.execute(update(Delivery).where(Delivery.id == delivery_id)
                            .values(enqueued=seq, enqueued_at=now))
        counts["deliveries"] = len(to_enqueue)
    if to_enqueue:
        jobs.enqueue_ingest(hub.redis, to_enqueue)

    if lost or expired:
        outbox.dispatch(hub, lost + [a for a, _ in expired])
    # 4. change batches being planned whose job vanished: run again, they plan only the rows left
    counts["change_batches"] = change_batch.requeue_stranded(hub, stale)
    if any(counts.values()):
        log.warning("sweeper recovered stranded work: %s", counts)
    return counts


def recover_dead_jobs(hub: "Hub") -> dict[str, int]:
    """Re-run the jobs of workers that stopped beating (killed mid-job): found in RQ's started-job
    registries within ``jobs.LEASE_TTL`` seconds of the kill, whatever HUB_STRANDED_AFTER_SECONDS.
    A send cut short stays with its action's lease (HUB_LEASE_SECONDS), which outlasts the HTTP
    timeout so a slow send is never taken for a lost one."""
    found = [p for p in map(jobs.parse_job_id, jobs.take_dead_started(hub.redis, jobs.all_queue_names(
        connectors.senders()))) if p is not None]
    now = utcnow()
    deliveries = [(i, seq) for kind, i, seq in found if kind == "delivery"]
    actions = [(i, seq) for kind, i, seq in found if kind == "action"]
    to_enqueue: list[tuple[int, int]] = []
    requeued: list[int] = []
    with hub.store.session() as session:
        for delivery_id, seq in deliveries:  # only if no newer job was enqueued meanwhile
            if session.execute(update(Delivery).where(
                    Delivery.id == delivery_id, Delivery.status == DeliveryStatus.RECEIVED,
                    Delivery.enqueued == seq).values(enqueued=seq + 1, enqueued_at=now)).rowcount:
                to_enqueue.append((delivery_id, seq + 1))
        for action_id, seq in actions:  # still queued under that job: not yet claimed by a send
            if session.execute(update(Action).where(
                    Action.id == action_id, Action.status == ActionStatus.QUEUED, Action.dispatch_seq == seq,
            ).values(status=ActionStatus.SCHEDULED, due_at=now, updated_at=now)).rowcount:
                requeued.append(action_id)
    if to_enqueue:
        jobs.enqueue_ingest(hub.redis, to_enqueue)
    if requeued:
        outbox.dispatch(hub, requeued)
    if to_enqueue or requeued:
        log.warning("re-ran the jobs of a stopped worker: %d deliveries, %d actions", len(to_enqueue), len(requeued))
    return {"deliveries": len(to_enqueue), "actions": len(requeued)}


def housekeeping(hub: "Hub", stop: threading.Event) -> None:
    """Loop until ``stop`` is set: re-run dead workers' jobs every few seconds, sweep stranded work
    every HUB_SWEEP_INTERVAL_SECONDS and run the time-based segment sweep when due."""
    import time

    from hub import alerts, sync
    from hub.segments import sweep as segment_sweep

    every = hub.settings["HUB_SWEEP_INTERVAL_SECONDS"]
    tick = min(every, jobs.LEASE_TTL / 2)
    last_sweep = 0.0
    failing = False
    while not stop.is_set():
        try:
            recover_dead_jobs(hub)
            if time.monotonic() - last_sweep >= every:
                last_sweep = time.monotonic()
                sweep(hub)
                segment_sweep.sweep_if_due(hub)  # time-based segment transitions, every HUB_SEGMENT_SWEEP_SECONDS
                sync.health_if_due(hub)  # webhook subscriptions and gap repair, every HUB_SYNC_HEALTH_SECONDS
                alerts.evaluate_if_due(hub)  # alert.raised / alert.resolved, every HUB_ALERT_INTERVAL_SECONDS
            failing = False
        except Exception:  # the database or Redis is away: log once, try again next tick
            if not failing:
                log.exception("housekeeping failed; retrying every %s s", tick)
            failing = True
        stop.wait(tick)


def run(hub: "Hub", stop: threading.Event) -> None:
    """Loop until ``stop`` is set: dispatch due actions every tick (the sweeps run in a
    housekeeping thread beside it)."""
    interval = hub.settings["HUB_SCHEDULER_INTERVAL_SECONDS"]
    keeper = threading.Thread(target=housekeeping, args=(hub, stop), name="housekeeping", daemon=True)
    keeper.start()
    alarm = outbox.Alarm(hub, stop)
    failing = False
    while not stop.is_set():
        pause = interval
        try:
            while outbox.dispatch(hub) >= 500:
                pass
            soonest = outbox.seconds_to_next_due(hub)
            if soonest is not None:
                pause = min(pause, max(soonest, 0.002))
            failing = False
        except Exception:  # the database or Redis is away: keep the loop alive and try again
            if not failing:
                log.exception("scheduler tick failed; retrying every tick until it succeeds")
            failing = True
        alarm.sleep(pause)
    alarm.close()
    keeper.join(30)
