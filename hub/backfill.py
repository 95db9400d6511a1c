"""Bring a provider's history in (``hub backfill``) and close the gaps webhooks left (hub/sync.py).

Each page a connector's ``backfill.py`` reads (connectors/sync.py) is recorded the way a webhook
is: every record becomes a stored delivery under the key the webhook of the same fact is
deduplicated on, then the connector's normalizer, then ``pipeline.record_events``. So a backfill,
a second backfill, a repair and the live webhooks never record a fact twice: the delivery key
collides for events read from the provider's event log, the canonical event id collides for
facts keyed on their object (the mapping tables say which).

History older than the horizon (``HUB_BACKFILL_HORIZON_HOURS``) is recorded and applied to state,
but every action the rules plan for it is cancelled at once as ``historic`` (never sent) — the
same outcome issue 12's ``missed_horizon`` will give every import; until the planner has it, this
module applies it to the actions a backfilled event planned.

Pages are fetched through the same shared Redis rate limiter as deliveries (one request = one
room of the connector's ``default`` bucket), a 429 pauses that bucket for ``Retry-After``; the
run's cursor moves in the transaction that records its page, so ``--resume`` goes on after a crash
without re-reading or re-recording anything.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Full, Queue
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

import connectors
from connectors.base import Connector, RawDelivery
from connectors.sync import Page, Phase, Record, Source
from hub.kernel.errors import HubError, PayloadError, RetriableError
from hub.outbound import outbox
from hub.outbound.ratelimit import MARGIN, RateLimiter, limit_key
from hub.store import Action, Delivery, Event, utcnow
from hub.store.models import ActionStatus, DeliveryStatus
from hub.store.sync_models import BackfillRun

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

#: the reason stored on an action planned for history older than the horizon
HISTORIC = "historic"
#: pages read ahead of the recording
READ_AHEAD = 4


class BackfillError(HubError):
    """A backfill that cannot start or go on (no credentials, nothing to resume, no such source)."""


def source_for(connector: Connector) -> Source:
    """The connector's readable history (``connectors/<name>/backfill.py``)."""
    try:
        module = importlib.import_module(f"connectors.{connector.name}.backfill")
    except ModuleNotFoundError:
        raise BackfillError(f"{connector.name} has no backfill (available: {', '.join(available())})") from None
    return module.SOURCE  # type: ignore[no-any-return]


def available() -> list[str]:
    out = []
    for name in sorted(connectors.REGISTRY):
        try:
            importlib.import_module(f"connectors.{name}.backfill")
        except ModuleNotFoundError:
            continue
        out.append(name)
    return out


@dataclass
class Counts:
    """What a run did: records read, facts new / already present, actions planned and skipped."""

    fetched: int = 0
    recorded: int = 0  # records that brought at least one new canonical event
    present: int = 0  # records whose delivery or every event the hub already had
    failed: int = 0  # records the normalizer could not read (stored as failed deliveries)
    events: int = 0  # new canonical events
    actions: int = 0  # actions planned and left to run (recent history)
    skipped: int = 0  # actions planned for history older than the horizon: cancelled, never sent

    def add(self, other: "Counts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Reader:
    """Fetches a connector's pages through the shared rate limiter, retrying 429s and 5xx."""

    attempts = 10

    def __init__(self, hub: "Hub", connector: Connector, *, sleep: Callable[[float], None] = time.sleep,
                 source: Source | None = None):
        settings = hub.settings
        if connector.dry_run(settings):
            missing = [n for n in connector.outbound_settings if not settings[n]]
            raise BackfillError(f"set {', '.join(missing)} to read {connector.name}'s history")
        self.connector = connector
        self.client = connector.client(settings)
        source = source or source_for(connector)
        limits = connector.rate_limits_for(settings)
        self.windows = limits.get(source.bucket) or source.read_limit or limits.get("default", ())
        self.key = limit_key(connector.name, connector.rate_limit_account(settings), source.bucket)
        self.limiter = RateLimiter(hub.redis)
        self.sleep = sleep
        self.requests = 0
        self.throttled = 0  # 429 answers seen
        #: when this reader's own last requests left, per window (monotonic seconds), and the extra
        #: spacing it keeps after a 429 (see _space)
        self._sent = {window: deque(maxlen=int(window[0])) for window in self.windows}
        self.slack = 0.0
        self.client.throttle = self._take_room

    def _take_room(self) -> None:
        token = f"backfill:{uuid.uuid4()}"
        while True:
            decision = self.limiter.acquire(self.key, self.windows, token)
            if decision.granted:
                self.requests += 1
                self._space()
                return
            self.sleep(max(decision.wait, 0.001))

    def _space(self) -> None:
        """The shared limiter counts a request when it grants it; the vendor when it arrives. Under
        load the time between the two varies by tens of milliseconds, and a request granted a full
        window after an earlier one can still arrive less than a window after it (a 429 that costs
        a whole Retry-After). So the reader also keeps its own sends a window apart, measured just
        before each leaves, plus ``slack`` (widened by each 429 it meets, up to 10%)."""
        now = time.monotonic()
        ready = now
        for (n, w), sent in self._sent.items():
            if len(sent) >= int(n):
                ready = max(ready, sent[0] + float(w) * (1 + MARGIN + self.slack))
        if ready > now:
            self.sleep(ready - now)
        for sent in self._sent.values():
            sent.append(time.monotonic())

    def _backoff(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetriableError) and exc.status == 429:
            return 0.0  # the limiter's pause does the waiting, for every process sharing the bucket
        return min(0.5 * 2 ** (state.attempt_number - 1), 30.0)

    def page(self, phase: Phase, start: datetime, end: datetime, cursor: Any) -> Page:
        for attempt in Retrying(retry=retry_if_exception_type(RetriableError), stop=stop_after_attempt(self.attempts),
                                wait=self._backoff, sleep=self.sleep, reraise=True):
            with attempt:
                try:
                    page = phase.fetch(self.client, start, end, cursor)
                    if page.wait > 0:  # the provider's own budget (query cost) needs time to refill
                        self.limiter.pause(self.key, page.wait)
                    return page
                except RetriableError as exc:
                    if exc.status == 429:
                        self.throttled += 1
                        self.slack = min(self.slack + 0.02, 0.1)
                        self.limiter.pause(self.key, exc.retry_after if exc.retry_after is not None else 1.0)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def record_page(hub: "Hub", session: Session, connector: Connector, records: Iterable[Record], *,
                horizon_start: datetime, origin: str, dry_run: bool = False) -> tuple[Counts, list[int]]:
    """Record one page's records (oldest first) in ``session``; return the counts and the ids of the
    actions to dispatch after commit. With ``dry_run`` nothing is written: only counted.

    A page costs a fixed few statements besides the ingest of its new events: one query for the
    delivery keys the hub already holds, one for the canonical ids of the rest, one insert of every
    new delivery (already marked processed: the page commits whole or not at all), and one planning
    value (rules, segment config, rates) for every event of the page."""
    from hub.ingest.pipeline import planning_for, record_events

    counts = Counts()
    due: list[int] = []
    now = utcnow()
    batch = sorted(records, key=lambda r: r.time)
    keys = {r.key[:255] for r in batch}
    known_keys = set(session.execute(select(Delivery.dedup_key).where(
        Delivery.connector == connector.name, Delivery.dedup_key.in_(keys))).scalars()) if keys else set()
    counts.fetched = len(batch)
    todo: dict[str, tuple[Record, bytes, list[Any], str | None]] = {}
    for record in batch:
        key = record.key[:255]
        if key in known_keys or key in todo:  # a key twice in a page is one delivery, as for webhooks
            counts.present += 1
            continue
        body = record.body if isinstance(record.body, bytes) else \
            json.dumps(record.body, separators=(",", ":"), sort_keys=True).encode()  # (form bodies come as bytes)
        try:
            events = connector.normalize(RawDelivery(None, connector.name, dict(record.headers), body, now))
        except PayloadError as exc:
            events, error = [], str(exc)
            counts.failed += 1
            log.warning("%s %s: record %s cannot be read: %s", connector.name, origin, record.key, exc)
        else:
            error = None
        todo[key] = (record, body, events, error)
    ids = {e.id for _, _, events, _ in todo.values() for e in events}
    known_ids = set(session.execute(select(Event.id).where(Event.id.in_(ids))).scalars()) if ids else set()
    delivery_ids: dict[str, int] = {}
    if todo and not dry_run:
        delivery_ids = _insert_deliveries(session, connector.name, todo, origin, now)
    planning = planning_for(hub) if todo and not dry_run else None
    for key, (record, _, events, error) in todo.items():
        if not dry_run and key not in delivery_ids:  # a webhook of the same event arrived meanwhile
            counts.present += 1
            continue
        if error:
            continue
        new = [e for e in events if e.id not in known_ids]
        known_ids.update(e.id for e in new)
        counts.events += len(new)
        if new:
            counts.recorded += 1
        else:
            counts.present += 1
        if dry_run or not new:
            continue
        action_ids = record_events(hub, session, new, delivery_id=delivery_ids[key], origin=origin, now=now,
                                   planning=planning)
        if record.time < horizon_start:
            counts.skipped += skip_historic(session, action_ids, now)
        else:
            counts.actions += len(action_ids)
            due.extend(action_ids)
    return counts, due


def _insert_deliveries(session: Session, connector: str,
                       todo: dict[str, tuple[Record, bytes, list[Any], str | None]], origin: str,
                       now: datetime) -> dict[str, int]:
    """One INSERT ... ON CONFLICT DO NOTHING for a page's deliveries: {dedup key: id} of those inserted."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"connector": connector, "dedup_key": key, "headers": {**record.headers, "x-hub-origin": origin},
             "body": body,
             "received_at": now, "status": DeliveryStatus.FAILED if error else DeliveryStatus.PROCESSED,
             "error": error, "attempts": 1, "enqueued": 0, "event_count": len(events),
             "processed_at": None if error else now}
            for key, (record, body, events, error) in todo.items()]
    table = Delivery.__table__
    stmt = insert(table).values(rows).on_conflict_do_nothing(index_elements=["connector", "dedup_key"]) \
        .returning(table.c.id, table.c.dedup_key)
    return {key: id_ for id_, key in session.execute(stmt)}


def skip_historic(session: Session, action_ids: list[int], now: datetime) -> int:
    """History older than the horizon is recorded, never sent: the planner already records its steps as
    skipped-historic (``missed_horizon``); anything still pending for it is cancelled here."""
    if not action_ids:
        return 0
    suppressed = session.execute(select(func.count()).select_from(Action).where(
        Action.id.in_(action_ids), Action.status == ActionStatus.SUPPRESSED)).scalar_one()
    result = session.execute(update(Action).where(Action.id.in_(action_ids), Action.status.in_(ActionStatus.PENDING))
                             .values(status=ActionStatus.CANCELLED, cancelled_by=HISTORIC, updated_at=now,
                                     last_error="skipped: planned for history older than HUB_BACKFILL_HORIZON_HOURS"))
    return int(suppressed) + int(result.rowcount or 0)


def horizon_start(hub: "Hub", now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(hours=hub.settings["HUB_BACKFILL_HORIZON_HOURS"])


@dataclass
class Plan:
    """A run's window split between the provider's event log and its list endpoints."""

    start: datetime
    end: datetime
    events_from: datetime  # the event log covers [events_from, end); lists cover [start, events_from)

    def span(self, phase: Phase) -> tuple[datetime, datetime]:
        return (max(self.start, self.events_from), self.end) if phase.kind == "events" else (self.start, self.events_from)


def plan_window(source: Source, start: datetime, end: datetime) -> Plan:
    reach = source.events_reach
    # a day's margin inside the log's guaranteed reach: its oldest end may expire while we read it
    events_from = max(start, end - reach + timedelta(days=1)) if reach else end
    if source.events_phase() is None:
        events_from = end
    return Plan(start, end, events_from)


@dataclass
class Progress:
    """Where a run is, for the progress display: phase, pages, counts and the share of time covered."""

    connector: str
    phase: str
    phase_index: int
    phases: int
    pages: int
    counts: Counts
    done: float  # 0..1 over the whole run
    finished: bool = False


@dataclass
class Run:
    """One connector's backfill, page by page, with its cursor in ``backfill_runs``."""

    hub: "Hub"
    connector: Connector
    reader: Reader | None = None
    dry_run: bool = False
    on_progress: Callable[[Progress], None] = lambda p: None
    #: stop after this many pages (tests simulate a crash with it); None: run to the end
    max_pages: int | None = None
    counts: Counts = field(default_factory=Counts)

    def start(self, start: datetime, end: datetime | None = None) -> Counts:
        end = end or utcnow()
        if start >= end:
            raise BackfillError("the window is empty: --from must be in the past")
        if self.dry_run:
            return self._go(start, end, 0, None, 0)
        now = utcnow()
        with self.hub.store.session() as session:
            session.merge(BackfillRun(connector=self.connector.name, status="running", window_start=start,
                                      window_end=end, phase=0, cursor=None, pages=0, counts={},
                                      started_at=now, updated_at=now))
        return self._go(start, end, 0, None, 0)

    def resume(self) -> Counts:
        with self.hub.store.session() as session:
            run = session.get(BackfillRun, self.connector.name)
            if run is None or run.status != "running":
                raise BackfillError(f"no unfinished {self.connector.name} backfill to resume")
            start, end, phase, cursor, pages = run.window_start, run.window_end, run.phase, run.cursor, run.pages
            self.counts = Counts(**{k: v for k, v in (run.counts or {}).items() if k in Counts.__dataclass_fields__})
        return self._go(start, end, phase, cursor, pages)

    def _go(self, start: datetime, end: datetime, phase_index: int, cursor: Any, pages: int) -> Counts:
        source = source_for(self.connector)
        plan = plan_window(source, start, end)
        reader = self.reader or Reader(self.hub, self.connector)
        phases = source.phases

        def at(index: int, token: Any) -> tuple[int, Any] | None:
            """The next page to read from (phase ``index``, ``token``), skipping phases with nothing."""
            while index < len(phases):
                lo, hi = plan.span(phases[index])
                if lo < hi:
                    return index, token
                index, token = index + 1, None
            return None

        def fetch(where: tuple[int, Any]) -> Page:
            return reader.page(phases[where[0]], *plan.span(phases[where[0]]), where[1])

        # Pages are read ahead of the recording (one reader thread, up to READ_AHEAD pages queued):
        # reading waits on the vendor's limit, recording on the database, and neither waits for the
        # other while the queue absorbs the bursts of each. After a crash the pages read but not
        # recorded (at most READ_AHEAD + 1) are read again; nothing is recorded twice.
        first = at(phase_index, cursor)
        queue: Queue[Any] = Queue(maxsize=READ_AHEAD)
        stop = threading.Event()

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    return queue.put(item, timeout=0.1)
                except Full:
                    continue

        def read() -> None:
            where, read_now = first, 0
            budget = self.max_pages if self.max_pages is not None else float("inf")
            try:
                while where is not None and not stop.is_set() and read_now < budget:
                    page = fetch(where)
                    read_now += 1
                    following = at(where[0], page.next) if page.next is not None else at(where[0] + 1, None)
                    put((where, page, following))
                    where = following
                put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the recording thread, which raises it
                put(exc)

        reader_thread = threading.Thread(target=read, name="backfill-read", daemon=True)
        following: tuple[int, Any] | None = None
        if first is not None:
            reader_thread.start()
        try:
            while first is not None:
                item = queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                (index, _), page, following = item
                pages += 1
                lo_hi = plan.span(phases[index])
                nxt_index, nxt_cursor = following if following else (len(phases), None)
                due = self._record(page, nxt_index, nxt_cursor, pages)
                if due:
                    outbox.dispatch(self.hub, due)
                self.on_progress(Progress(self.connector.name, phases[index].name, index, len(phases), pages,
                                          self.counts, _done(phases, index, *lo_hi, page, page.next is None)))
        finally:
            stop.set()
            if reader_thread.is_alive():
                reader_thread.join()
        if following is not None:
            return self.counts  # stopped early (tests: a crash after max_pages)
        if not self.dry_run:
            with self.hub.store.session() as session:
                session.execute(update(BackfillRun).where(BackfillRun.connector == self.connector.name)
                                .values(status="done", updated_at=utcnow()))
        self.on_progress(Progress(self.connector.name, "done", len(phases), len(phases), pages, self.counts, 1.0,
                                  finished=True))
        return self.counts

    def _record(self, page: Page, phase_index: int, cursor: Any, pages: int) -> list[int]:
        with self.hub.store.session() as session:
            counts, due = record_page(self.hub, session, self.connector, page.records,
                                      horizon_start=horizon_start(self.hub), origin="backfill",
                                      dry_run=self.dry_run)
            self.counts.add(counts)
            if self.dry_run:  # nothing was written; no cursor either
                return []
            session.execute(update(BackfillRun).where(BackfillRun.connector == self.connector.name).values(
                phase=phase_index, cursor=cursor, pages=pages, counts=self.counts.as_dict(), updated_at=utcnow()))
        return due


def _done(phases: tuple[Phase, ...], index: int, lo: datetime, hi: datetime, page: Page, last: bool) -> float:
    """Share of the run done: whole phases before this one, and this phase's share of its time span
    (pages walk the span newest first or oldest first; either way the distance from the page's
    far end to where it started is what has been covered)."""
    within = 1.0
    if not last and page.reached is not None and hi > lo:
        span = (hi - lo).total_seconds()
        newest_first = page.records and page.records[0].time >= page.records[-1].time
        covered = (hi - page.reached).total_seconds() if newest_first else (page.reached - lo).total_seconds()
        within = min(max(covered / span, 0.0), 1.0)
    return (index + within) / len(phases)


def status(hub: "Hub", name: str) -> dict[str, Any] | None:
    with hub.store.session() as session:
        run = session.get(BackfillRun, name)
        if run is None:
            return None
        return {"connector": run.connector, "status": run.status, "from": run.window_start, "until": run.window_end,
                "phase": run.phase, "pages": run.pages, "counts": run.counts, "started_at": run.started_at,
                "updated_at": run.updated_at}
