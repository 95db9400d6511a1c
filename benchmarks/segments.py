"""Segments and KPIs at scale: 100,000 subscribers in a throwaway PostgreSQL database.

Measures (1) a full segment recompute when everyone is new to their segments (every membership
written, every segment.entered / tier.changed event recorded), (2) the steady-state recompute the
scheduler's sweep runs (nothing or little changed), and (3) a year of monthly KPIs from the ledgers
(about 150,000 MRR movements and 25,000 trial/dunning facts). Goals: recompute under 30 s, KPI
query under 1 s. The baseline in the same run is one sequential scan of the movements ledger
(``SELECT sum(delta_minor) FROM mrr_movements``), so the KPI figure reads as "N scans".

Both recomputes are ``hub.segments.sweep.recompute_all`` as the scheduler and ``hub segments recompute``
run it: one transaction, wall time including the load, the evaluation, the writes and the commit
(the shipped rules/segments.yaml; no sync targets configured, so no sync actions are planned).

    .venv/bin/python benchmarks/segments.py [--subscribers 100000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.config import load_settings  # noqa: E402
from hub.kpis import Rates, ledger, report  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.segments.sweep import recompute_all  # noqa: E402
from hub.store import Store  # noqa: E402
from hub.store.migrate import upgrade  # noqa: E402

YEAR = date(2025, 1, 1)
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def populate(dsn: str, n: int, seed: int = 7) -> dict[str, int]:
    """COPY n subscribers with stats, one subscription each, and a year of ledger rows."""
    rnd = random.Random(seed)
    counts = {"movements": 0, "facts": 0}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY subscribers (id, email, consent, attributes, currency, mrr_minor, total_paid_minor, "
                      "points, segments, first_seen_at, last_engaged_at, created_at, updated_at) FROM STDIN") as cp:
            for i in range(1, n + 1):
                first = NOW - timedelta(days=rnd.randint(1, 900))
                engaged = NOW - timedelta(days=rnd.randint(0, 120)) if rnd.random() < 0.7 else None
                cp.write_row((i, f"s{i}@example.com", "{}", "{}", "USD", 0, rnd.randint(0, 400_000), 0, "[]",
                              first, engaged, first, first))
        with cur.copy("COPY profile_stats (subscriber_id, engagement_score, engagement_at, engagement_count, "
                      "active_months, paid, emails, consent_at, updated_at) FROM STDIN") as cp:
            for i in range(1, n + 1):
                score = rnd.choice([0.0, 0.0, 1.5, 4.0, 9.0])
                months = json.dumps(sorted({f"2025-{m:02d}" for m in rnd.sample(range(9, 13), rnd.randint(0, 4))}))
                cp.write_row((i, score, NOW - timedelta(days=rnd.randint(0, 30)), 3, months,
                              json.dumps({"USD": rnd.randint(0, 400_000)}), "[]", "{}", NOW))
        statuses = ["active"] * 70 + ["past_due"] * 5 + ["trialing"] * 10 + ["cancelled"] * 15
        with cur.copy("COPY subscriptions (id, provider, external_id, subscriber_id, status, plan, currency, "
                      "mrr_minor, cancel_at, data, created_at, updated_at) FROM STDIN") as cp:
            for i in range(1, n + 1):
                status = rnd.choice(statuses)
                mrr = rnd.choice([900, 1900, 2900, 4900, 9900, 19900]) if status in ("active", "past_due") else 0
                cancel_at = NOW + timedelta(days=20) if status == "active" and rnd.random() < 0.05 else None
                cp.write_row((i, rnd.choice(["stripe", "chargebee", "shopify"]), f"sub_{i}", i, status, "{}", "USD",
                              mrr, cancel_at, "{}", NOW, NOW))
        with cur.copy("COPY mrr_movements (subscriber_id, event_id, time, kind, currency, delta_minor, "
                      "mrr_before_minor, mrr_after_minor) FROM STDIN") as cp:
            for i in range(1, n + 1):
                day = YEAR + timedelta(days=rnd.randint(0, 300))
                mrr = rnd.choice([900, 1900, 2900, 4900])
                rows = [(day, "new", mrr, 0, mrr)]
                if rnd.random() < 0.3:
                    up = mrr * 2
                    rows.append((day + timedelta(days=30), "expansion", up - mrr, mrr, up))
                    mrr = up
                if rnd.random() < 0.15:
                    rows.append((day + timedelta(days=45), "churn", -mrr, mrr, 0))
                for d, kind, delta, before, after in rows:
                    if d.year != 2025:
                        continue
                    when = datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc)
                    cp.write_row((i, str(uuid.uuid4()), when, kind, "USD", delta, before, after))
                    counts["movements"] += 1
        with cur.copy("COPY kpi_facts (subscriber_id, provider, subscription_id, event_id, time, kind, currency, "
                      "amount_minor) FROM STDIN") as cp:
            for i in range(1, n + 1, 4):
                when = datetime(2025, rnd.randint(1, 12), rnd.randint(1, 28), tzinfo=timezone.utc)
                kind = rnd.choice(["trial_started", "trial_converted", "trial_lost", "dunning_started",
                                   "dunning_recovered", "dunning_lost"])
                cp.write_row((i, "stripe", f"sub_{i}", str(uuid.uuid4()), when, kind, "USD", 2900))
                counts["facts"] += 1
        for table in ("subscribers", "subscriptions"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})")
        cur.execute("ANALYZE")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    name = f"hub_bench_segments_{uuid.uuid4().hex[:8]}"
    admin = Store(args.pg, isolation_level="AUTOCOMMIT")
    with admin.engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    rules = Path(tempfile.mkdtemp())
    shutil.copy(ROOT / "rules" / "segments.yaml", rules / "segments.yaml")
    hub = None
    try:
        hub = Hub(load_settings(environ={"HUB_DATABASE_URL": url, "HUB_RULES_PATH": str(rules),
                                         "HUB_LOG_LEVEL": "WARNING"}))
        upgrade(hub.store)
        t0 = time.perf_counter()
        counts = populate(url.replace("postgresql+psycopg", "postgresql"), args.subscribers)
        load_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        first = recompute_all(hub, now=NOW)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        steady = recompute_all(hub, now=NOW + timedelta(hours=1))
        steady_s = time.perf_counter() - t0

        rates = Rates(None, {})
        with hub.store.session() as session:  # the ledger figures cohort KPIs read (the first KPI read's work)
            t0 = time.perf_counter()
            derived = ledger.derive(session)
            derive_s = time.perf_counter() - t0
        with hub.store.session() as session:
            t0 = time.perf_counter()
            session.execute(text("SELECT sum(delta_minor) FROM mrr_movements")).scalar()
            baseline_s = time.perf_counter() - t0
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                result = report(session, date(2025, 1, 1), date(2025, 12, 31), "month", rates)
                timings.append(time.perf_counter() - t0)
        kpi_s = min(timings)
        dec = result["per_currency"]["USD"][-1]

        print(f"subscribers: {args.subscribers:,}  movements: {counts['movements']:,}  facts: {counts['facts']:,}  "
              f"(bulk load {load_s:.1f} s)")
        print(f"full recompute, everyone new to their segments: {first_s:.2f} s  "
              f"({first['entered']:,} entered, {first['tier_changes']:,} tiers set; goal 30 s: "
              f"{first_s / 30:.2f} of it)")
        print(f"steady-state recompute (the sweep):             {steady_s:.2f} s  ({steady['changed']:,} changed)")
        print(f"a year of monthly KPIs (best of 3):             {kpi_s * 1000:.0f} ms  (goal 1 s: {kpi_s:.2f} of it; "
              f"{kpi_s / baseline_s:.1f}x one scan of the ledger, {baseline_s * 1000:.0f} ms; the ledger figures "
              f"of {derived:,} subscribers derived once before, in {derive_s:.1f} s)")
        print(f"  December: MRR {dec['mrr']:,}, active {dec['active']:,}, churn {dec['customer_churn_rate']}, "
              f"NRR {dec['net_revenue_retention']}")
    finally:
        if hub is not None:
            hub.close()
        shutil.rmtree(rules, ignore_errors=True)
        with admin.engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
