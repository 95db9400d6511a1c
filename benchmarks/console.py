"""Console page render times at 100,000 subscribers and 1,000,000 events (throwaway PostgreSQL).

Loads 100k subscribers (each with a provider id, a subscription and a segment), 250k deliveries that
produced 1M events over a year, 200k actions with attempts for the failed ones, and a year of MRR
movements; then renders every console page through the Flask app (the test client: the whole
request, routing, queries and templates, no network) and prints the first render and the best of 5
more. Goal: every page under 200 ms. The baseline in the same run is ``/healthz`` (a request
that does no work), so each figure also reads as "N bare requests".

    .venv/bin/python benchmarks/console.py [--subscribers 100000] [--events 1000000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.config import load_settings  # noqa: E402
from hub.kpis import ledger  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.store import Store  # noqa: E402
from hub.store.migrate import upgrade  # noqa: E402
from hub.web import create_app  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TYPES = (["subscriber.updated"] * 30 + ["payment.succeeded"] * 30 + ["subscription.renewed"] * 20
         + ["subscription.created"] * 8 + ["subscription.changed"] * 5 + ["subscription.cancelled"] * 4
         + ["payment.failed"] * 3)
ACTION_STATUSES = ["done"] * 90 + ["scheduled"] * 5 + ["failed"] * 3 + ["dead"] * 2


def populate(dsn: str, subscribers: int, events: int, seed: int = 11) -> dict[str, int]:
    rnd = random.Random(seed)
    deliveries = events // 4
    actions = events // 5
    counts = {"subscribers": subscribers, "events": events, "deliveries": deliveries, "actions": actions}
    body = json.dumps({"id": "evt_x", "type": "invoice.paid", "data": {"object": {"id": "in_x", "amount": 2900}}})
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY subscribers (id, email, first_name, last_name, consent, attributes, currency, mrr_minor, "
                      "total_paid_minor, points, tier, segments, first_seen_at, last_engaged_at, created_at, "
                      "updated_at) FROM STDIN") as cp:
            for i in range(1, subscribers + 1):
                first = NOW - timedelta(days=rnd.randint(1, 900))
                cp.write_row((i, f"s{i}@example.com", f"First{i}", f"Last{i}", '{"email": "subscribed"}', "{}", "USD",
                              rnd.choice([0, 900, 1900, 4900]), rnd.randint(0, 400_000), rnd.randint(0, 3000),
                              rnd.choice(["bronze", "silver", "gold"]), '["subscribers"]', first, None, first, first))
        with cur.copy("COPY external_ids (provider, external_id, subscriber_id, created_at) FROM STDIN") as cp:
            for i in range(1, subscribers + 1):
                cp.write_row(("stripe", f"cus_{i}", i, NOW))
        with cur.copy("COPY subscriptions (provider, external_id, subscriber_id, status, plan, currency, mrr_minor, "
                      "data, created_at, updated_at) FROM STDIN") as cp:
            for i in range(1, subscribers + 1):
                cp.write_row(("stripe", f"sub_{i}", i, "active", '{"id": "pro"}', "USD", 1900, "{}", NOW, NOW))
        with cur.copy("COPY segment_memberships (subscriber_id, segment, entered_at) FROM STDIN") as cp:
            for i in range(1, subscribers + 1):
                cp.write_row((i, rnd.choice(["subscribers", "engaged", "at-risk", "loyal"]), NOW))
        with cur.copy("COPY deliveries (id, connector, dedup_key, headers, body, received_at, status, attempts, "
                      "enqueued, processed_at, event_count, error) FROM STDIN") as cp:
            for i in range(1, deliveries + 1):
                when = NOW - timedelta(seconds=(deliveries - i) * 365 * 86400 // deliveries)
                failed = rnd.random() < 0.002
                cp.write_row((i, rnd.choice(["stripe", "stripe", "chargebee", "shopify", "klaviyo"]), f"evt_{i}",
                              '{"content-type": "application/json"}', body.encode(), when,
                              "failed" if failed else "processed", 1, 1, None if failed else when,
                              0 if failed else 4, "PayloadError: bad" if failed else None))
        with cur.copy("COPY events (id, delivery_id, type, time, subject, provider, provider_event_id, provider_type, "
                      "origin, data, subscriber_id, recorded_at) FROM STDIN") as cp:
            for i in range(events):
                delivery = i // 4 + 1
                when = NOW - timedelta(seconds=(events - i) * 365 * 86400 // events)
                sid = rnd.randint(1, subscribers)
                cp.write_row((str(uuid.UUID(int=i + 1)), delivery, rnd.choice(TYPES), when, f"sub_{sid}", "stripe",
                              f"evt_{delivery}", "invoice.paid", "provider",
                              '{"subscriber": {"email": "s@example.com"}, "payment": {"amount": {"minor": 2900, '
                              '"currency": "USD"}}}', sid, when))
        with cur.copy("COPY actions (id, key, rule_id, rules_hash, event_id, subscriber_id, subject, connector, name, "
                      "params, due_at, status, attempts, dispatch_seq, dry_run, last_error, created_at, updated_at) "
                      "FROM STDIN") as cp:
            for i in range(1, actions + 1):
                status = rnd.choice(ACTION_STATUSES)
                when = NOW - timedelta(seconds=(actions - i) * 365 * 86400 // actions)
                if status == "scheduled":  # planned steps fall due later (a due backlog is an incident)
                    when = NOW + timedelta(days=rnd.randint(1, 30))
                cp.write_row((i, f"key-{i}", "payment-failed-notify", "h", str(uuid.UUID(int=i * 5)),
                              rnd.randint(1, subscribers), f"sub_{i}", "klaviyo", "track_event",
                              '{"metric": "Payment Failed"}', when, status, 1, 1, False,
                              "HTTP 500" if status in ("failed", "dead") else None, when, when))
        with cur.copy("COPY attempts (action_id, number, started_at, finished_at, outcome, status_code, request, "
                      "response, error) FROM STDIN") as cp:
            for i in range(1, actions + 1, 50):
                cp.write_row((i, 1, NOW, NOW, "retry", 500, '{"method": "POST", "url": "https://a.klaviyo.com/api/events"}',
                              '{"status": 500}', "HTTP 500"))
        with cur.copy("COPY mrr_movements (subscriber_id, event_id, time, kind, currency, delta_minor, "
                      "mrr_before_minor, mrr_after_minor) FROM STDIN") as cp:
            for i in range(1, subscribers + 1):
                when = NOW - timedelta(days=rnd.randint(1, 360))
                cp.write_row((i, str(uuid.uuid4()), when, "new", "USD", 1900, 0, 1900))
                if rnd.random() < 0.2:
                    cp.write_row((i, str(uuid.uuid4()), when + timedelta(days=1), "churn", "USD", -1900, 1900, 0))
        for table, n in (("subscribers", subscribers), ("deliveries", deliveries), ("actions", actions)):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum would have done by now
    return counts


def render(client, path: str, rounds: int = 5) -> tuple[float, float, int]:
    """The first render (cold caches) and the best of ``rounds`` more."""
    t0 = time.perf_counter()
    answer = client.get(path)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        client.get(path)
        best = min(best, time.perf_counter() - t0)
    return first, best, answer.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", metavar="NAME", help="Keep the database as NAME (and reuse it when it exists).")
    args = parser.parse_args()

    name = args.keep or f"hub_bench_console_{uuid.uuid4().hex[:8]}"
    admin = Store(args.pg, isolation_level="AUTOCOMMIT")
    with admin.engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    hub = None
    try:
        hub = Hub(load_settings(environ={"HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "WARNING"}))
        upgrade(hub.store)
        t0 = time.perf_counter()
        if exists:
            counts = {"subscribers": args.subscribers, "events": args.events, "deliveries": args.events // 4,
                      "actions": args.events // 5}
        else:
            counts = populate(url.replace("postgresql+psycopg", "postgresql"), args.subscribers, args.events)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with hub.store.session() as s:  # what the first KPI read after the load would do
            derived = ledger.derive(s)
        derive_s = time.perf_counter() - t0
        if derived:
            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE mrr_movements")  # the rows just updated, as autovacuum would
        with hub.store.session() as s:
            middle = s.execute(text("SELECT time, id FROM events ORDER BY time DESC, id DESC OFFSET :n LIMIT 1"),
                               {"n": args.events // 2}).one()
        client = create_app(hub).test_client()  # no HUB_ADMIN_TOKEN: loopback clients need no sign-in
        sid = args.subscribers // 2
        cursor = f"{middle.time.isoformat()}|{middle.id}".replace("+", "%2B")
        pages = [
            "/?refresh=0", "/deliveries", "/deliveries?status=failed", "/deliveries?connector=shopify",
            f"/deliveries?before={counts['deliveries'] // 2}", f"/deliveries/{counts['deliveries'] // 2}",
            f"/deliveries?status=failed&before={counts['deliveries'] // 2}",
            f"/deliveries?connector=shopify&before={counts['deliveries'] // 2}",
            "/events", "/events?type=payment.failed", f"/events?subscriber={sid}",
            f"/events?before={cursor}", f"/events?type=payment.failed&before={cursor}", "/events?type=subscription.*",
            f"/events?type=no.such.type&before={cursor}",
            "/actions", "/actions?status=dead", f"/actions?before={counts['actions'] // 2}",
            f"/actions?status=dead&before={counts['actions'] // 2}", "/actions?status=cancelled",
            "/actions?rule=no-such-rule", f"/actions?subscriber={sid}", "/actions/51",
            "/subscribers", f"/subscribers?q=s{sid}@example.com", f"/subscribers?q=cus_{sid}",
            f"/subscribers?q=First{sid}", f"/subscribers?q=first{sid}%20last{sid}", f"/subscribers?q=S{sid // 10}",
            f"/subscribers?q=cus_{sid // 100}", f"/subscribers?q=Last{sid // 10}", "/subscribers?q=first",
            f"/subscribers?q=nobody{sid}", f"/subscribers/{sid}", "/rules", "/segments", "/kpis", "/kpis?cohorts=1", "/connectors",
        ]
        _, baseline, _ = render(client, "/healthz")
        print(f"subscribers: {counts['subscribers']:,}  events: {counts['events']:,}  deliveries: "
              f"{counts['deliveries']:,}  actions: {counts['actions']:,}  (bulk load {load_s:.0f} s; ledger "
              f"figures of {derived:,} subscribers derived in {derive_s:.1f} s)")
        print(f"baseline /healthz: {baseline * 1000:.1f} ms. Per page: first render, then the best of 5 "
              "(goal 200 ms)")
        worst = 0.0
        for path in pages:
            first, took, status = render(client, path)
            worst = max(worst, took)
            print(f"  {path[:62]:<62} {status} {first * 1000:7.1f} ms {took * 1000:7.1f} ms "
                  f"({took / baseline:4.0f}x baseline)" + ("" if took < 0.2 else "  OVER GOAL"))
        print(f"slowest page: {worst * 1000:.1f} ms ({'under' if worst < 0.2 else 'over'} the 200 ms goal)")
    finally:
        if hub is not None:
            hub.close()
        if not args.keep:
            with admin.engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
