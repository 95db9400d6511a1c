"""The full sweep: every subscriber re-evaluated for time-based transitions (segments, tiers,
lifecycle), in bulk, with the derived events recorded and the syncs planned. Runs from the scheduler
every ``HUB_SEGMENT_SWEEP_SECONDS`` and from ``hub segments recompute``."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from hub.kernel.events import CanonicalEvent
from hub.kpis import Rates
from hub.outbound import outbox
from hub.segments import bulk, derive, engine
from hub.segments import config as config_mod
from hub.segments import sync as sync_mod
from hub.segments.engine import Change, derived_events, diff, evaluate, load_rows, write
from hub.store import utcnow

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)
_SWEEP_LOCK = "hub:segments:sweep"
_last_sweep: float | None = None  # monotonic time of this process's last sweep


def sweep_if_due(hub: "Hub") -> dict[str, Any] | None:
    """Called from the scheduler loop: recompute everyone every HUB_SEGMENT_SWEEP_SECONDS. A Redis
    lock lets only one of several schedulers run each sweep."""
    global _last_sweep
    every = hub.settings["HUB_SEGMENT_SWEEP_SECONDS"]
    if not every or (_last_sweep is not None and time.monotonic() - _last_sweep < every):
        return None
    _last_sweep = time.monotonic()
    if not hub.redis.set(_SWEEP_LOCK, "1", nx=True, ex=max(int(every) - 1, 1)):
        return None
    counts = recompute_all(hub)
    if counts["changed"]:
        log.info("segment sweep: %s", counts)
    return counts


def recompute_all(hub: "Hub", *, now: datetime | None = None, sync: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate every subscriber (the sweep): write changes in bulk, record the derived events and plan
    the syncs for those who changed. Returns counts.

    One transaction. Subscribers are evaluated in batches; each batch's writes go to the database
    on a background thread (``bulk.Writer``) while the next batch is evaluated. ``progress(done,
    total)`` is called after each batch."""
    now = now or utcnow()
    tag = now.isoformat()
    config = config_mod.current(hub.settings["HUB_RULES_PATH"])
    rates = Rates.from_settings(hub.settings)
    counts = {"subscribers": 0, "changed": 0, "entered": 0, "exited": 0, "tier_changes": 0, "actions": 0}
    due: list[int] = []
    with bulk.collector_paused(), hub.store.session() as session:
        rows = list(load_rows(session).values())
        counts["subscribers"] = len(rows)
        changes: list[Change] = []
        events: list[CanonicalEvent] = []
        postgres = bulk.is_postgres(session)  # writes by COPY and set-based statements
        with bulk.Writer(session) as writes:
            for start in range(0, len(rows), engine.BATCH):
                found = [c for c in (diff(r, evaluate(config, rates, r, now)) for r in rows[start:start + engine.BATCH])
                         if c.profile_changed]
                derived = [e for c in found for e in derived_events(c, None, now, tag)]
                writes.submit(write, session, found, now, copy=postgres)
                writes.submit(derive.insert_events, session, derived, now)
                changes.extend(found)
                events.extend(derived)
                if progress is not None:
                    progress(min(start + engine.BATCH, len(rows)), len(rows))
        for c in changes:
            counts["entered"] += len(c.entered)
            counts["exited"] += len(c.exited)
            counts["tier_changes"] += int(c.tier_changed)
        counts["changed"] = len(changes)
        due.extend(derive.plan_rules(hub, session, events, now))
        if sync:
            due.extend(sync_mod.plan(hub, session, config, changes, None, now))
        counts["actions"] = len(due)
    outbox.dispatch(hub, due)
    return counts
