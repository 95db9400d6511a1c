"""The deliver worker: claim due actions for one destination, call it, record every outcome.

A deliver job names one action, but claims (row locks, SKIP LOCKED) up to ``CLAIM_SIZE`` due
actions of that destination and keeps claiming for up to ``TIME_BUDGET`` seconds while more are
due. The claimed actions are sent concurrently (``CONCURRENCY`` threads), and actions whose
ActionSpec has a BatchSpec are coalesced into bulk calls (same action and group, up to
``max_items``). Before each call:

- the destination's circuit (hub/circuit.py) must be closed, or this call is its half-open probe;
- the rate limiter (hub/ratelimit.py) must grant a request in the action's bucket.

Otherwise the action goes back to the schedule for exactly as long as it was told to wait,
without using an attempt; the worker never sleeps. Outcomes by what to do next: done (2xx or dry
run); retriable -> rescheduled with jittered exponential backoff (never sooner than
``Retry-After``; a 429 also pauses the bucket); permanent -> failed with the response kept
(401/403 also mark the credentials invalid); retries exhausted -> dead. In a batch each item gets
its own outcome and attempt, so a partial failure retries only the failed items.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import and_, case, insert, or_, select, update

import connectors
from connectors.base import ActionContext, ActionSpec, Connector, ItemOutcome, windows
from connectors.http import ApiClient, Outcome

from . import outbox, state, telemetry
from .circuit import Circuit, Credentials
from .errors import ActionError, CredentialsError, PermanentError, RetriableError
from .outbox import backoff_seconds
from .ratelimit import RateLimiter, Throttled, limit_key
from .store import Action, Attempt, Subscriber, utcnow
from .store.models import ActionStatus

if TYPE_CHECKING:
    from .runtime import Hub

log = logging.getLogger(__name__)

CLAIM_SIZE = 100  # actions claimed at once (also the largest batch a job can form)
CONCURRENCY = 16  # calls in flight per deliver job
TIME_BUDGET = 10.0  # seconds a job keeps claiming more due work for its destination
PROBE_HOLD = 2.0  # while a half-open circuit's probe is out, the others wait this long
DEFAULT_429_PAUSE = 1.0  # a 429 without Retry-After pauses the bucket this long


# -- what a job works on --------------------------------------------------------------------------
@dataclass
class Item:
    """One claimed action."""

    id: int
    key: str
    name: str
    params: dict[str, Any]
    attempt: int
    ctx: ActionContext
    connector: str = ""
    due_at: datetime | None = None


@dataclass
class Result:
    """One item's outcome, ready to record."""

    outcome: str  # ok | dry_run | retry | failed | held (back for ``wait``) | released (back in line)
    status_code: int | None = None
    request: Any = None
    response: Any = None
    error: str | None = None
    retry_after: float | None = None
    exc: Exception | None = None
    wait: float = 0.0  # held: seconds until it may try again ...
    decided_at: float = 0.0  # ... counted from this moment (time.time())


@dataclass
class Unit:
    """One call: a single action, or a batch of actions of the same kind and group."""

    spec: ActionSpec
    items: list[Item]
    results: list[Result] = field(default_factory=list)
    sent: bool = False  # a request was made (not held, not dry)
    call_error: Exception | None = None  # the whole call failed with this


class RedisCache:
    """The shared id cache clients use (``ApiClient.cache``), namespaced per connector account."""

    def __init__(self, redis: Any, prefix: str):
        self.redis, self.prefix = redis, prefix

    def get(self, key: str) -> str | None:
        value = self.redis.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: int = 86400) -> None:
        self.redis.set(self.prefix + key, value, ex=ttl)


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
                    Action.dispatch_seq, Action.due_at)).all()
        profiles: dict[int, dict[str, Any]] = {}
        items = []
        for row in sorted(rows, key=lambda r: (r.id != lead, r.due_at, r.id)):
            profile: dict[str, Any] = {}
            if row.subscriber_id is not None:
                if row.subscriber_id not in profiles:
                    profiles[row.subscriber_id] = state.profile(session, session.get(Subscriber, row.subscriber_id))
                profile = profiles[row.subscriber_id]
            subscriber = {**profile, "external_id": (profile.get("external_ids") or {}).get(connector)}
            items.append(Item(row.id, row.key, row.name, row.params or {}, row.attempts,
                              ActionContext(key=row.key, action_id=row.id, subscriber=subscriber),
                              connector, row.due_at))
    outbox.withdraw_jobs(hub, connector, [(row.id, row.dispatch_seq) for row in rows if row.id != lead])
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


class Sender:
    """Sends units for one connector through the circuit and the rate limiter, concurrently."""

    def __init__(self, hub: "Hub", connector: Connector):
        self.hub, self.connector = hub, connector
        self.settings = hub.settings
        self.dry_run = connector.dry_run(hub.settings)
        self.account = connector.rate_limit_account(hub.settings)
        self.limits = {b: windows(w) for b, w in connector.rate_limits_for(hub.settings).items()}
        self.limiter = RateLimiter(hub.redis)
        self.circuit = Circuit(hub.redis)
        self.credentials = Credentials(hub.redis)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    def client(self) -> ApiClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.connector.client(self.settings)
            client.cache = RedisCache(self.hub.redis, f"hub:cache:{self.connector.name}:{self.account}:")
        return client

    def send(self, units: list[Unit]) -> None:
        if len(units) <= 1:
            for unit in units:
                self._run(unit)
            return
        if self._pool is None:  # kept for the job's rounds: its threads keep their clients' connections
            self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix=f"deliver-{self.connector.name}")
        list(self._pool.map(self._run, units))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _hold_all(self, units: list[Unit], wait: float, reason: str) -> None:
        now = time.time()
        for unit in units:
            unit.results = [Result("held", wait=wait, error=reason, decided_at=now) for _ in unit.items]

    def _wait_for_room(self, unit: Unit, wait: float, booked: bool) -> None:
        telemetry.rate_limit_wait(self.connector.name, unit.spec.bucket)
        if booked:  # a room is kept for it: back in the schedule for exactly that long
            self._hold_all([unit], wait, f"rate limit {unit.spec.bucket}: room booked in {wait:.2f}s")
        else:  # every room is booked: back in the outbox line, the next freed room is handed to it
            reason = f"rate limit {unit.spec.bucket}: waiting in line"
            unit.results = [Result("released", wait=wait, error=reason) for _ in unit.items]

    def has_room(self, action: str, token: str) -> bool:
        """Whether the rate limit of ``action`` has booked a room for ``token``."""
        spec = self.connector.actions.get(action)
        if spec is None:
            return True  # not a known action: let the claim record that
        return self.limiter.has_booking(limit_key(self.connector.name, self.account, spec.bucket), token)

    def open_rooms(self) -> int | None:
        """Rooms the rate limits of this connector's actions can still give (None: unlimited)."""
        total = 0
        for bucket in {spec.bucket for spec in self.connector.actions.values()}:
            windows = self.limits.get(bucket) or self.limits.get("default") or ()
            rooms = self.limiter.open_rooms(limit_key(self.connector.name, self.account, bucket), windows)
            if rooms is None:
                return None
            total += rooms
        return total

    def _run(self, unit: Unit) -> None:
        try:
            # dry runs send nothing: no circuit, no rate limit
            if not self.dry_run and not (self._circuit_allows(unit) and self._acquire(unit)):
                return
            unit.sent = not self.dry_run
            client = self.client()
            client.throttle = None if self.dry_run else self._throttle(unit)
            if len(unit.items) == 1 or unit.spec.batch is None:
                item = unit.items[0]
                outcome = unit.spec.run(client, item.params, item.ctx)
                unit.results = [_done(outcome, outcome.request)]
            else:
                outcome, per_item = unit.spec.batch.run(client, [(i.params, i.ctx) for i in unit.items])
                unit.results = _batch_results(outcome, per_item, len(unit.items), self.hub.scrub)
        except Throttled as exc:  # a later request of this action must wait: nothing was lost
            self._wait_for_room(unit, exc.wait, exc.booked)
        except ActionError as exc:
            unit.call_error = exc
            unit.results = [_error(exc, self.hub.scrub) for _ in unit.items]
        except Exception as exc:  # a bug in an action: retry later rather than lose the action
            log.exception("action %s raised", unit.items[0].key)
            unit.results = [Result("retry", error=self.hub.scrub(f"{type(exc).__name__}: {exc}"), exc=exc)
                            for _ in unit.items]
        if unit.sent:  # at once, so the next call already sees an opened circuit or a pause
            self._health([unit])

    def _circuit_allows(self, unit: Unit) -> bool:
        """Checked before every call, so calls stop as soon as the circuit opens; when half-open,
        exactly one call (the probe) goes and the others wait a little for its outcome."""
        gate = self.circuit.allow(self.connector.name)
        if gate.allowed:
            return True
        if gate.state == "half-open":
            self._hold_all([unit], min(gate.wait, PROBE_HOLD), "circuit half-open: waiting for the probe")
        else:
            self._hold_all([unit], gate.wait, "circuit open: waiting for the destination to recover")
        return False

    def _throttle(self, unit: Unit) -> Callable[[], None]:
        """The first request of a call uses the token ``_acquire`` took; each later one takes its own."""
        calls = [0]

        def throttle() -> None:
            calls[0] += 1
            if calls[0] == 1:
                return
            key = limit_key(self.connector.name, self.account, unit.spec.bucket)
            limits = self.limits.get(unit.spec.bucket) or self.limits.get("default") or ()
            decision = self.limiter.acquire(key, limits, unit.items[0].key)
            if not decision.granted:
                raise Throttled(decision.wait, decision.booked)

        return throttle

    def _acquire(self, unit: Unit) -> bool:
        key = limit_key(self.connector.name, self.account, unit.spec.bucket)
        limits = self.limits.get(unit.spec.bucket) or self.limits.get("default") or ()
        decision = self.limiter.acquire(key, limits, unit.items[0].key)
        if not decision.granted:
            self._wait_for_room(unit, decision.wait, decision.booked)
        return decision.granted

    def _health(self, units: list[Unit]) -> None:
        """Feed the outcomes to the circuit, the credentials mark and the rate limiter's pause."""
        name = self.connector.name
        sent = [u for u in units if u.sent]
        answered = [u for u in sent if u.call_error is None or (isinstance(u.call_error, PermanentError)
                                                                and not isinstance(u.call_error, CredentialsError))]
        if answered:
            self.circuit.success(name)  # it answered (even a 4xx): the destination is up
        if any(u.call_error is None for u in sent):
            self.credentials.clear(name)
        for unit in sent:
            exc = unit.call_error
            if isinstance(exc, CredentialsError):
                self.credentials.mark_invalid(name, exc.status, self.hub.scrub(str(exc)))
            elif isinstance(exc, RetriableError) and exc.status == 429:
                telemetry.throttled(name)
                key = limit_key(name, self.account, unit.spec.bucket)
                self.limiter.pause(key, exc.retry_after if exc.retry_after is not None else DEFAULT_429_PAUSE)
            elif isinstance(exc, RetriableError):
                self.circuit.failure(name, self.connector.circuit_failures, self.connector.circuit_cooldown,
                                     self.hub.scrub(str(exc)))


def _done(outcome: Outcome, request: Any) -> Result:
    return Result("dry_run" if outcome.dry_run else "ok", outcome.status_code, request, outcome.response)


def _error(exc: ActionError, scrub: Callable[[str], str]) -> Result:
    kind = "retry" if isinstance(exc, RetriableError) else "failed"
    return Result(kind, exc.status, None, exc.response, scrub(str(exc)),
                  exc.retry_after if isinstance(exc, RetriableError) else None, exc)


def _batch_results(outcome: Outcome, per_item: list[ItemOutcome], n: int, scrub: Callable[[str], str]
                   ) -> list[Result]:
    if len(per_item) != n:
        exc = RetriableError(f"batch call returned {len(per_item)} outcomes for {n} items")
        return [_error(exc, scrub) for _ in range(n)]
    results = []
    for index, item in enumerate(per_item):
        # the first item keeps the whole request; the others point at it (no copies of a big body)
        request = outcome.request if index == 0 else {
            k: v for k, v in (outcome.request or {}).items() if k != "body"}
        request = {**(request or {}), "batch": {"size": n, "index": index}}
        if item.ok:
            result = _done(outcome, request)
            if item.response is not None:
                result.response = item.response
        elif isinstance(item.error, ActionError):
            result = _error(item.error, scrub)
            result.request = request
        else:
            result = Result("retry", outcome.status_code, request, item.response,
                            scrub(f"{type(item.error).__name__}: {item.error}"), exc=item.error)
        results.append(result)
    return results


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
                values["status"] = ActionStatus.DONE
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
