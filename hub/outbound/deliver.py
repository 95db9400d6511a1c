"""The deliver worker: claim due actions for one destination, call it, record every outcome.

A deliver job names one action, but claims (row locks, SKIP LOCKED) up to ``CLAIM_SIZE`` due
actions of that destination and keeps claiming for up to ``TIME_BUDGET`` seconds while more are
due. The claimed actions are sent concurrently by the sender (``sender.py``), and actions whose
ActionSpec has a BatchSpec are coalesced into bulk calls (same action and group, up to
``max_items``). An action the circuit or the rate limiter holds back goes back to the schedule
for exactly as long as it was told to wait, without using an attempt; the worker never sleeps. Outcomes by what to do next: done (2xx or dry
run); retriable -> rescheduled with jittered exponential backoff (never sooner than
``Retry-After``; a 429 also pauses the bucket); permanent -> failed with the response kept
(401/403 also mark the credentials invalid); retries exhausted -> dead. In a batch each item gets
its own outcome and attempt, so a partial failure retries only the failed items.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import and_, case, func, insert, or_, select, update

import connectors
from connectors.base import ActionContext, Connector
from hub import jobs, telemetry
from hub.kernel.errors import PermanentError
from hub.outbound import outbox
from hub.outbound.outbox import backoff_seconds
from hub.outbound.sender import Item, Result, Sender, Unit
from hub.store import Action, Attempt, utcnow
from hub.store.models import ActionStatus
from hub.subscribers import profile

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

CLAIM_SIZE = 100  # actions claimed at once (also the largest batch a job can form)
TIME_BUDGET = 10.0  # seconds a job keeps claiming more due work for its destination
#: billing actions that may be a subscription change (hub/changes/confirm.py records its events)
CHANGE_ACTIONS = frozenset({"pause_subscription", "resume_subscription", "cancel_subscription", "change_subscription"})


# -- what a job works on --------------------------------------------------------------------------


def deliver(hub: "Hub", action_id: int) -> str | None:
    """Deliver ``action_id`` and the other due work of its destination.

    Claims only as many actions as the destination's rate limits have rooms for (now or booked
    within one window), so the rest wait in the outbox instead of being claimed and put back; after
    each round of sends it claims again, which hands every room a send frees to the next waiting
    action at once. Returns the action's new status, or None if another worker had claimed it.
    """
    with hub.store.session() as session:
        lead_row = session.execute(select(Action.connector, Action.key, Action.name, Action.status)
                                   .where(Action.id == action_id)).one_or_none()
    if lead_row is None or lead_row.status not in (ActionStatus.QUEUED, ActionStatus.SCHEDULED):
        return None  # another job delivered it (it claimed it with other due work)
    connector_name = lead_row.connector
    connector = connectors.get(connector_name)
    sender = Sender(hub, connector) if connector is not None else None
    try:
        return _deliver_rounds(hub, connector_name, connector, sender, action_id, lead_row)
    finally:
        if sender is not None:
            sender.close()


def _deliver_rounds(hub: "Hub", connector_name: str, connector: Connector | None, sender: "Sender | None",
                    action_id: int, lead_row: Any) -> str | None:
    status: str | None = None
    deadline = time.monotonic() + TIME_BUDGET
    lead: int | None = action_id
    while True:
        rooms = sender.open_rooms() if sender is not None else None
        if rooms == 0 and lead is not None and not sender.has_room(lead_row.name, lead_row.key):
            # every room is booked and none for this action: it waits in the outbox line (queued)
            # for the job of a send that frees a room; claiming it would only put it back
            return lead_row.status
        limit = CLAIM_SIZE if rooms is None else min(CLAIM_SIZE, rooms + (lead is not None))
        if limit <= 0:
            break
        items = claim(hub, connector_name, lead, limit)
        if not items:
            break
        statuses, moved = _deliver(hub, connector, items, sender)
        if lead is not None:
            status, lead = statuses.get(action_id), None
        # stop when the due work ran out, the budget is spent, or this round could do nothing
        if len(items) < limit or time.monotonic() > deadline or not moved:
            break
    return status


def claim(hub: "Hub", connector: str, lead: int | None = None, limit: int = CLAIM_SIZE) -> list[Item]:
    """Lease up to ``limit`` due actions of ``connector`` (``lead`` first), counting one attempt each."""
    now = utcnow()
    lease = now + timedelta(seconds=hub.settings["HUB_LEASE_SECONDS"])
    pending = or_(Action.status == ActionStatus.QUEUED,
                  and_(Action.status == ActionStatus.SCHEDULED, Action.due_at <= now))
    order = [Action.due_at, Action.id]
    if lead is not None:
        order.insert(0, case((Action.id == lead, 0), else_=1))
    # one statement: pick (row locks, SKIP LOCKED) and lease
    picked = (select(Action.id).where(Action.connector == connector, pending).order_by(*order).limit(limit)
              .with_for_update(skip_locked=True))
    with hub.store.session() as session:
        rows = session.execute(update(Action).where(Action.id.in_(picked), pending).values(
            status=ActionStatus.SENDING, attempts=Action.attempts + 1, lease_until=lease, updated_at=now,
        ).returning(Action.id, Action.key, Action.name, Action.params, Action.attempts, Action.subscriber_id,
                    Action.dispatch_seq, Action.due_at, Action.created_at)).all()
        profiles = profile.for_rules_many(session, (row.subscriber_id for row in rows if row.subscriber_id))
        # a retry may follow a try that reached the destination unanswered: destinations that keep no
        # idempotency key are asked what arrived since the first try (docs/delivery.md)
        retries = [row.id for row in rows if row.attempts > 1]
        first_tries = dict(session.execute(select(Attempt.action_id, func.min(Attempt.started_at))
                                           .where(Attempt.action_id.in_(retries)).group_by(Attempt.action_id)
                                           ).all()) if retries else {}
        items = []
        for row in sorted(rows, key=lambda r: (r.id != lead, r.due_at, r.id)):
            seen = profiles.get(row.subscriber_id, {})
            subscriber = {**seen, "external_id": (seen.get("external_ids") or {}).get(connector)}
            context = ActionContext(key=row.key, action_id=row.id, subscriber=subscriber, attempt=row.attempts,
                                    tried_since=first_tries.get(row.id, row.created_at) if row.attempts > 1 else None)
            items.append(Item(row.id, row.key, row.name, row.params or {}, row.attempts, context, connector,
                              row.due_at))
    jobs.withdraw(hub.redis, jobs.deliver_queue_name(connector),
                  [jobs.action_job_id(row.id, row.dispatch_seq) for row in rows if row.id != lead])
    return items


def deliver_claimed(hub: "Hub", connector_name: str, items: list[Item]) -> dict[int, str]:
    """Send claimed actions (gates, batching, concurrency) and record every outcome."""
    connector = connectors.get(connector_name)
    sender = Sender(hub, connector) if connector is not None else None
    try:
        return _deliver(hub, connector, items, sender)[0]
    finally:
        if sender is not None:
            sender.close()


def _deliver(hub: "Hub", connector: Connector | None, items: list[Item], sender: "Sender | None"
             ) -> tuple[dict[int, str], bool]:
    """Returns the new statuses and whether anything moved (a request went or a room was booked)."""
    units, invalid = _units(connector, items)
    if sender is not None and units:
        sender.send(units)
    results = [(item, result) for unit in units for item, result in zip(unit.items, unit.results)] + invalid
    moved = any(r.outcome != "released" for _, r in results)
    return record(hub, results), moved


def _units(connector: Connector | None, items: list[Item]) -> tuple[list[Unit], list[tuple[Item, Result]]]:
    """Group items into calls: batchable ones by (action, group), ``max_items`` per call."""
    units: list[Unit] = []
    invalid: list[tuple[Item, Result]] = []
    batches: dict[tuple[str, str], Unit] = {}
    for item in items:
        spec = connector.actions.get(item.name) if connector is not None else None
        if spec is None:
            invalid.append((item, Result("failed", error=f"unknown action {connector and connector.name}."
                                                          f"{item.name}")))
            continue
        try:
            item.params = spec.schema().load(item.params)
        except ValidationError as exc:
            invalid.append((item, Result("failed", error=f"invalid parameters: {exc.normalized_messages()}")))
            continue
        if spec.batch is None:
            units.append(Unit(spec, [item]))
            continue
        group = (item.name, str(spec.batch.group(item.params)))
        unit = batches.get(group)
        if unit is None or len(unit.items) >= spec.batch.max_items:
            unit = batches[group] = Unit(spec, [])
            units.append(unit)
        unit.items.append(item)
    return units, invalid


def record(hub: "Hub", results: list[tuple[Item, Result]]) -> dict[int, str]:
    """Write every outcome and attempt in one transaction; held and released items go back
    without an attempt."""
    settings = hub.settings
    now = utcnow()
    statuses: dict[int, str] = {}
    holds: dict[int, float] = {}
    reasons: dict[int, str] = {}
    released: dict[str, list[int]] = {}
    finished: dict[tuple[str, int | None, str | None], list[int]] = {}  # one UPDATE per kind of end
    attempts: list[dict[str, Any]] = []
    accepted: list[int] = []  # billing actions the provider took: a subscription change's events follow
    by_id = {item.id: item for item, _ in results}
    with hub.store.session() as session:
        for item, r in results:
            if r.outcome == "released":
                released.setdefault(r.error or "waiting in line", []).append(item.id)
                statuses[item.id] = ActionStatus.QUEUED
                continue
            if r.outcome == "held":  # exactly as long as it was told, from when it was told
                holds[item.id] = max(r.wait - (time.time() - r.decided_at), 0.0) if r.decided_at else r.wait
                reasons[item.id] = r.error or "waiting"
                statuses[item.id] = ActionStatus.SCHEDULED
                continue
            outcome = r.outcome
            values: dict[str, Any] = {"lease_until": None, "last_status_code": r.status_code,
                                      "last_error": r.error, "updated_at": now}
            if outcome in ("ok", "dry_run"):
                values["status"] = ActionStatus.DRY_RUN if outcome == "dry_run" else ActionStatus.DONE
                if outcome == "ok" and item.name in CHANGE_ACTIONS:
                    accepted.append(item.id)
            elif outcome == "failed":
                values["status"] = ActionStatus.FAILED
            elif item.attempt >= settings["HUB_RETRY_MAX_ATTEMPTS"]:
                values["status"], outcome = ActionStatus.DEAD, "dead"
            else:
                delay = backoff_seconds(item.attempt, settings["HUB_RETRY_BASE_SECONDS"],
                                        settings["HUB_RETRY_MAX_SECONDS"], random.random())
                if r.retry_after is not None:  # the server's hint wins over our backoff
                    delay = r.retry_after + random.uniform(0, 0.5)
                values["status"], values["due_at"] = ActionStatus.SCHEDULED, now + timedelta(seconds=delay)
            if "due_at" in values:
                session.execute(update(Action).where(Action.id == item.id, Action.status == ActionStatus.SENDING)
                                .values(**values))
            else:
                finished.setdefault((values["status"], r.status_code, r.error), []).append(item.id)
            attempts.append({"action_id": item.id, "number": item.attempt, "started_at": now, "finished_at": now,
                             "outcome": outcome, "status_code": r.status_code, "request": r.request,
                             "response": r.response, "error": r.error})
            statuses[item.id] = values["status"]
            log.info("action %s attempt %s: %s%s", item.id, item.attempt, outcome,
                     f" ({r.error})" if r.error else "",
                     extra={"action_id": item.id, "subscriber_id": item.ctx.subscriber.get("id")})
        for (status, code, error), ids in finished.items():
            session.execute(update(Action).where(Action.id.in_(ids), Action.status == ActionStatus.SENDING).values(
                status=status, lease_until=None, last_status_code=code, last_error=error, updated_at=now))
        if attempts:
            session.execute(insert(Attempt), attempts)
        for reason in set(reasons.values()):
            outbox.hold(session, {i: w for i, w in holds.items() if reasons[i] == reason}, reason, now)
        for reason, ids in released.items():
            outbox.release(session, ids, reason, now)
        # in the same transaction as their outcome: a change's events are recorded once, with it
        claimed = outbox.claim_due(session, hub.change_events(session, accepted)) if accepted else []
    outbox.enqueue_claimed(hub, claimed)
    for attempt in attempts:  # committed: count them
        item = by_id[attempt["action_id"]]
        telemetry.action_attempted(item.connector, item.name, attempt["outcome"], item.due_at)
    if holds:
        outbox.wake_scheduler(hub, min(holds.values()))
    return statuses


# -- one action now, for operators (``hub send``) -------------------------------------------------
def perform(hub: "Hub", qualified: str, params: dict[str, Any], key: str,
            subscriber: dict[str, Any] | None = None, wait: bool = True) -> dict[str, Any]:
    """Run one action now through the same gates (circuit, rate limit) and health bookkeeping.

    Nothing is written to the outbox. With ``wait`` a rate-limit or circuit wait is slept through
    (this is an operator's command, not a worker); otherwise it is reported.
    """
    found = connectors.action_spec(qualified)
    if found is None:
        raise PermanentError(f"unknown action {qualified!r}")
    connector, spec = found
    item = Item(0, key, spec.name, params, 1, ActionContext(key=key, subscriber=subscriber or {}))
    units, invalid = _units(connector, [item])
    if invalid:
        return _as_json(invalid[0][1])
    sender = Sender(hub, connector)
    for _ in range(20):
        units[0].results = []
        sender.send(units)
        result = units[0].results[0]
        if result.outcome not in ("held", "released") or not wait:
            return _as_json(result)
        time.sleep(min(max(result.wait, 0.01), 60.0))
    return _as_json(result)


def _as_json(r: Result) -> dict[str, Any]:
    out = {"outcome": r.outcome, "status_code": r.status_code, "request": r.request, "response": r.response,
           "error": r.error}
    if r.outcome in ("held", "released"):
        out["retry_in"] = round(r.wait, 3)
    return {k: v for k, v in out.items() if v is not None}
