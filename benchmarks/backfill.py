"""Objects backfilled per second against a Stripe mock enforcing the vendor's rate limit, as a share
of that limit.

A loopback Stripe list API (tests/fakeproviders.py) serves N customers, ``--page`` per page, and
answers 429 with ``Retry-After`` beyond ``--limit`` requests per second (a sliding window, as
Stripe counts). Measured in the same run:

- baseline: a plain paging loop with ``requests`` (next page at once, ``Retry-After`` obeyed on a
  429), reading the same pages and recording nothing;
- hub: ``hub backfill stripe --dry-run`` over the same customers (``HUB_STRIPE_RATE_LIMIT`` set to
  the vendor's limit, as an operator would): pages through the shared Redis limiter, every record
  checked against what the hub holds;
- the same backfill recording every customer (delivery, normalize, event, subscriber, rules), at
  the limit, with no limit (what the recording alone manages on this machine), and at a lower
  limit the recording keeps up with (``--slow-limit``: the backfill's own use of a limit).

The mock runs in a process of its own, as a vendor does. The figure is objects per second over
the most the limit allows (limit x page size; 100% = every request the vendor allows was used, for
a full page) and the number of 429 answers. Where the recording alone is slower than the vendor
allows, the database, not the limit, bounds the recorded run, and the last line says so. Uses a
Redis database number claimed like a test session's (so no parallel test run is disturbed) and a
throwaway PostgreSQL database.

    .venv/bin/python benchmarks/backfill.py [--objects 1500] [--recorded 1000] [--page 10] [--limit 10]
                                          [--slow-limit 2] [--slow-recorded 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = os.environ.get("HUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_SERVER = os.environ.get("HUB_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class Vendor:
    """The Stripe mock in a process of its own, as a vendor is: its request handling never waits on
    this process's interpreter (in one process, the recording thread delays the mock's clock and
    shows 429s no vendor would send). ``url``, ``served`` (answers given), ``refused`` (429s)."""

    def __init__(self, objects: int, limit: int | None, prefix: str = ""):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, objects, limit, prefix), daemon=True)
        self._process.start()
        self.url = self._pipe.recv()

    def _ask(self, command: str) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    @property
    def served(self) -> int:
        return int(self._ask("served"))

    @property
    def refused(self) -> int:
        return int(self._ask("refused"))

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        self._ask("close")
        self._process.join(5)


def _serve(pipe: Any, objects: int, limit: int | None, prefix: str) -> None:
    from tests.fakeproviders import FakeStripe, RateLimit

    fake = FakeStripe(rate=RateLimit(limit, 1.0) if limit else None)
    created = int(time.time()) - 60 * 86400
    for n in range(objects):
        fake.lists["customers"].append({"id": f"cus_{prefix}{n:06d}", "object": "customer",
                                        "email": f"{prefix}p{n}@example.com", "name": f"Person {n}",
                                        "created": created + n})
    pipe.send(fake.url)
    while True:
        command = pipe.recv()
        refused = fake.rate.refused if fake.rate else 0
        if command == "served":
            pipe.send(len(fake.api.requests) - refused)
        elif command == "refused":
            pipe.send(refused)
        elif command == "reset":
            fake.api.requests.clear()
            if fake.rate:
                fake.rate.refused = 0
            pipe.send(None)
        else:
            fake.close()
            pipe.send(None)
            return


def make_fake(objects: int, limit: int | None, prefix: str = "") -> Vendor:
    return Vendor(objects, limit, prefix)


def run_baseline(fake: Any, page: int) -> tuple[int, float]:
    """A plain client: next page at once, sleeping Retry-After on a 429. Returns (pages, seconds)."""
    pages, after, began = 0, None, time.monotonic()
    while True:
        params: dict[str, Any] = {"limit": page}
        if after:
            params["starting_after"] = after
        answer = requests.get(f"{fake.url}/v1/customers", params=params, timeout=10)
        if answer.status_code == 429:
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        body = answer.json()
        pages += 1
        if not body["has_more"]:
            return pages, time.monotonic() - began
        after = body["data"][-1]["id"]


def run_hub(fake: Any, page: int, limit: int | None, db_url: str, redis_url: str,
            dry_run: bool) -> tuple[Any, int, float]:
    """``hub backfill stripe [--dry-run]`` over the fake. Returns (counts, pages read, seconds)."""
    import connectors
    from connectors.stripe import backfill as stripe_backfill
    from hub import backfill
    from hub.config import load_settings
    from hub.runtime import Hub
    from hub.store import utcnow
    from hub.store.migrate import upgrade

    env = {"HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": redis_url, "HUB_STRIPE_API_KEY": "sk_bench",
           "HUB_STRIPE_API_URL": fake.url, "HUB_LOG_LEVEL": "WARNING", "HUB_RULES_PATH": str(ROOT / "rules")}
    if limit:
        env["HUB_STRIPE_RATE_LIMIT"] = f"{limit}/1s"
    hub = Hub(load_settings(environ=env, dotenv_path=None))
    upgrade(hub.store)
    hub.rules  # loaded before the clock starts, as in a running hub
    from hub.ingest.pipeline import planning_for
    planning_for(hub)
    stripe_backfill.PAGE_SIZE = page
    fake.reset()
    began = time.monotonic()
    counts = backfill.Run(hub, connectors.get("stripe"), dry_run=dry_run).start(utcnow() - timedelta(days=90))
    elapsed = time.monotonic() - began
    hub.close()
    return counts, fake.served, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1500, help="customers read by the baseline and the dry run")
    parser.add_argument("--recorded", type=int, default=1000, help="customers read and recorded by the full backfill")
    parser.add_argument("--page", type=int, default=10)
    parser.add_argument("--limit", type=int, default=10, help="the vendor's limit, requests per second")
    parser.add_argument("--slow-limit", type=int, default=2,
                        help="a limit the recording keeps up with: the full backfill's own use of it")
    parser.add_argument("--slow-recorded", type=int, default=300, help="customers recorded at --slow-limit")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from tests.services import claimed_redis_db

    with claimed_redis_db(REDIS_SERVER) as claim:
        measure(args, sa, make_url, claim.url)


def measure(args: argparse.Namespace, sa: Any, make_url: Any, redis_url: str) -> None:
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(PG_SERVER).set(database=name).render_as_string(False)
    results = []
    capacity = 0.0
    try:
        fake = make_fake(args.objects, args.limit)
        base_pages, base_time = run_baseline(fake, args.page)
        results.append(("baseline: plain paging loop, Retry-After on 429 (reads only)", base_pages, base_time,
                        fake.refused, None))
        time.sleep(1.1)  # the vendor's window empties between runs
        counts, pages, elapsed = run_hub(fake, args.page, args.limit, db_url, redis_url, dry_run=True)
        results.append(("hub backfill --dry-run: shared limiter, every record checked", pages, elapsed,
                        fake.refused, counts))
        fake.close()
        # what the recording alone manages on this machine: the same backfill with no vendor limit
        fake = make_fake(args.recorded, None, prefix="cap")
        counts, pages, elapsed = run_hub(fake, args.page, None, db_url, redis_url, dry_run=False)
        capacity = counts.fetched / elapsed
        fake.close()
        time.sleep(1.1)
        fake = make_fake(args.recorded, args.limit)
        counts, pages, elapsed = run_hub(fake, args.page, args.limit, db_url, redis_url, dry_run=False)
        results.append(("hub backfill: every customer recorded (events, profiles, rules)", pages, elapsed,
                        fake.refused, counts))
        fake.close()
        time.sleep(1.1)
        fake = make_fake(args.slow_recorded, args.slow_limit, prefix="slow")
        slow = run_hub(fake, args.page, args.slow_limit, db_url, redis_url, dry_run=False) + (fake.refused,)
        fake.close()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"vendor limit {args.limit} requests/s (sliding 1 s window), {args.page} objects per page: at most "
          f"{args.limit * args.page} objects/s")
    base_share = results[0][1] * args.page / results[0][2] / (args.limit * args.page)
    for label, pages, elapsed, refused, counts in results:
        objects = counts.fetched if counts else pages * args.page
        share = objects / elapsed / (args.limit * args.page)
        print(f"{label:<64} {objects / elapsed:7.1f} objects/s = {share:6.1%} of the limit "
              f"({share / base_share:.2f}x baseline), {refused} x 429, {pages} pages in {elapsed:.1f}s")
    counts, pages, elapsed, refused = slow
    slow_share = counts.fetched / elapsed / (args.slow_limit * args.page)
    print(f"{f'hub backfill at {args.slow_limit} requests/s, every customer recorded':<64} "
          f"{counts.fetched / elapsed:7.1f} objects/s = {slow_share:6.1%} of that limit, {refused} x 429, "
          f"{pages} pages in {elapsed:.1f}s")
    allowed = args.limit * args.page
    label, pages, elapsed, _, counts = results[-1]
    achieved = counts.fetched / elapsed
    print(f"recording alone (no vendor limit): {capacity:.1f} objects/s on this machine, against {allowed} the limit "
          f"allows: the recorded run ({achieved:.1f} objects/s) is bound by "
          f"{'the vendor limit' if capacity >= allowed else 'the recording (the database), not the limit'}")


if __name__ == "__main__":
    main()
