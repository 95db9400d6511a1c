"""The sender: calls one destination for a deliver job's units, through the circuit breaker and the
rate limiter, concurrently, and turns each response into a result (done, retry, failed, held).

- the destination's circuit (``circuit.py``) must be closed, or this call is its half-open probe;
- the rate limiter (``ratelimit.py``) must grant a request in the action's bucket;
otherwise the unit goes back to the schedule for exactly as long as it was told to wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connectors.base import ActionContext, ActionSpec, Connector, ItemOutcome, windows
from connectors.http import ApiClient, Outcome
from hub import telemetry
from hub.kernel.errors import ActionError, CredentialsError, PermanentError, RetriableError
from hub.outbound.circuit import Circuit, Credentials
from hub.outbound.ratelimit import RateLimiter, Throttled, limit_key

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

CONCURRENCY = 16  # calls in flight per deliver job
PROBE_HOLD = 2.0  # while a half-open circuit's probe is out, the others wait this long
DEFAULT_429_PAUSE = 1.0  # a 429 without Retry-After pauses the bucket this long


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
        cleared = any(u.call_error is None for u in sent)
        if answered or cleared:  # one round trip for both
            with self.hub.redis.pipeline(transaction=False) as pipe:
                if answered:
                    self.circuit.success(name, pipe)  # it answered (even a 4xx): the destination is up
                if cleared:
                    self.credentials.clear(name, pipe)
                pipe.execute()
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
