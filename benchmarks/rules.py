"""Rule evaluation cost: 1,000 rules loaded, one event that matches ten of them.

Each sample is one ``plan()`` call, the function the ingest pipeline calls, timed with two clocks
at once: wall time (perf_counter) and this thread's CPU time (thread_time, which leaves out the
time the OS gave to other processes: the machine is shared, so read both). Printed per round:
p50 and p99 of both, for

- evaluation: ``plan()`` with no store behind it (conditions, schedules, keys, rendered params);
- with store facts: ``plan()`` with the pipeline's ``StoreFacts`` inside an open transaction, on
  the embedded SQLite store (in memory) and, with ``--pg``, on a throwaway PostgreSQL database.
  A quarter of the matching rules are scheduled, so each event asks the outbox once whether any of
  their steps was cancelled before (it finds nothing: the common case).

and the cost of an event type no rule names (the index makes that free). Goal: p99 under 1 ms for
the event that matches ten rules.

    .venv/bin/python benchmarks/rules.py [--rules 1000] [--matching 10] [--events 5000] [--rounds 3]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import text
from sqlalchemy.pool import StaticPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.kernel.events import ALL_TYPES, CanonicalEvent  # noqa: E402
from hub.rules import Facts, NoFacts, RuleSet, StoreFacts, load_rules, plan  # noqa: E402
from hub.store import Base, Store  # noqa: E402

OTHER_TYPES = sorted(t for t in ALL_TYPES if t not in ("payment.failed", "provider.unmapped"))
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
PROFILE = {"id": 1, "email": "ann@example.com", "timezone": None}


def rules_file(total: int, matching: int) -> str:
    out = ["rules:"]
    for i in range(total):
        on = "payment.failed" if i < matching else OTHER_TYPES[i % len(OTHER_TYPES)]
        out += [f"  - id: rule-{i}",
                f"    on: [{on}]",
                "    when: \"payment.attempt >= 1 and subscriber.email and invoice.status != 'paid'\"",
                "    actions:",
                "      - klaviyo.track_event:",
                f"          metric: Metric {i}",
                "          value: \"{{ payment.amount }}\"",
                "          properties: {attempt: \"{{ payment.attempt }}\", invoice: \"{{ invoice.id }}\", "
                "note: \"Invoice {{ invoice.number }} for {{ subscriber.email }}\"}"]
        if i % 3 == 0:
            out += ["    schedule: {after: event.time, offsets: [3d, 7d]}"]
    return "\n".join(out) + "\n"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(ruleset: RuleSet, event: CanonicalEvent, n: int, facts: Facts) -> tuple[list[float], list[float], int]:
    """Milliseconds per plan() call, wall and CPU time of the same calls; the actions planned."""
    wall, cpu, planned = [], [], 0
    for _ in range(n):
        w, c = time.perf_counter(), time.thread_time()
        actions, _ = plan(ruleset, event, PROFILE, NOW, "sub_1", facts)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
        planned = len(actions)
    return wall, cpu, planned


def figures(wall: list[float], cpu: list[float]) -> str:
    return (f"wall p50 {statistics.median(wall):.3f} p99 {percentile(wall, 0.99):.3f} ms | "
            f"CPU p50 {statistics.median(cpu):.3f} p99 {percentile(cpu, 0.99):.3f} ms")


@contextmanager
def sqlite_store() -> Iterator[Store]:
    store = Store("sqlite:///:memory:", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(store.engine)
    try:
        yield store
    finally:
        store.engine.dispose()


@contextmanager
def postgres_store(server_url: str) -> Iterator[Store]:
    name = f"hub_bench_rules_{uuid.uuid4().hex[:8]}"
    admin = Store(server_url, isolation_level="AUTOCOMMIT")
    with admin.engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    store = Store(server_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        Base.metadata.create_all(store.engine)
        yield store
    finally:
        store.engine.dispose()
        with admin.engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.engine.dispose()


def run(label: str, ruleset: RuleSet, event: CanonicalEvent, args: Any, facts: Facts) -> int:
    measure(ruleset, event, 200, facts)  # warm up
    planned = 0
    for r in range(args.rounds):
        wall, cpu, planned = measure(ruleset, event, args.events, facts)
        print(f"  {label:<34} round {r + 1}: {figures(wall, cpu)}")
    return planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--matching", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", help="a PostgreSQL server URL: also measure with store facts there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.yaml"
        path.write_text(rules_file(args.rules, args.matching))
        start = time.perf_counter()
        ruleset = load_rules([path])
        load_s = time.perf_counter() - start
    data = {"subscriber": {"email": "ann@example.com"}, "invoice": {"id": "in_1", "number": "A-1", "status": "open"},
            "payment": {"amount": {"minor": 2900, "currency": "USD"}, "attempt": 1}, "subscription": {"id": "sub_1"}}
    matching = CanonicalEvent(type="payment.failed", time="2026-01-01T00:00:00Z", provider="stripe",
                              providereventid="evt_1", providertype="invoice.payment_failed", data=data)
    unmatched = CanonicalEvent(type="provider.unmapped", time="2026-01-01T00:00:00Z", provider="klaviyo",
                               providereventid="evt_2", providertype="bounce", data=data)
    collections = [0]
    gc.callbacks.append(lambda phase, info: collections.__setitem__(0, collections[0] + (phase == "start")))

    print(f"rules loaded: {len(ruleset.rules)} in {load_s:.2f} s ({load_s / len(ruleset.rules) * 1000:.2f} ms per rule)")
    print(f"plan() for an event matching {args.matching} of them, {args.events} events per round "
          f"(goal: p99 < 1 ms):")
    planned = run("evaluation (no store)", ruleset, matching, args, NoFacts())
    with sqlite_store() as store, store.session() as session:
        run("with store facts, SQLite in memory", ruleset, matching, args, StoreFacts(session, 1, "sub_1"))
    if args.pg:
        with postgres_store(args.pg) as store, store.session() as session:
            run("with store facts, PostgreSQL", ruleset, matching, args, StoreFacts(session, 1, "sub_1"))
    print(f"  ({planned} actions planned per event; {collections[0]} garbage collections during the run; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    wall, _, _ = measure(ruleset, unmatched, args.events, NoFacts())
    print(f"event matching no rule: p50 {statistics.median(wall) * 1000:.1f} us, "
          f"p99 {percentile(wall, 0.99) * 1000:.1f} us")


if __name__ == "__main__":
    main()
