"""The whole path on loopback: signed webhooks -> `hub serve` -> `hub worker`s -> a mock Klaviyo API.

In one run, with the machine's PostgreSQL and Redis (a throwaway database; Redis db 12 flushed),
`hub serve` (gunicorn 2 x 4 threads), `hub scheduler` and one then two `hub worker` processes, the
rule `payment.failed -> klaviyo.track_event` and a local HTTP server standing in for Klaviyo:

  - idle latency: one signed Stripe invoice.payment_failed at a time, post -> the vendor request
    (p50, p99);
  - sustained throughput with 1 and with 2 worker processes: a batch posted by 8 clients, webhooks
    processed and delivered per second (first post -> last vendor request), and the ratio 2 / 1;
  - a burst of 1,000 with 2 workers: time to the first vendor call after the first ack, and until
    all 1,000 are delivered;
  - SQL statements per event of ingest (pipeline.process in this process, counted by SQLAlchemy);
  - the baseline: a bare receiver (HMAC check + LPUSH, benchmarks/ingest.py) ack rate, measured in
    the same run, and the hub's delivered rate as a ratio of it.

    .venv/bin/python benchmarks/pipeline.py [--idle 50] [--batch 300] [--burst 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import SECRET, _free_port, _wait_up, load  # noqa: E402
from tests.mockapi import MockApi, always  # noqa: E402

RULES = ROOT / "tests" / "fixtures" / "rules" / "payment_failed_only.yaml"


def signed_requests(n: int, kind: str = "payment") -> list[tuple[bytes, dict[str, str]]]:
    """Signed Stripe ``invoice.payment_failed`` webhooks, each for a new customer with an e-mail; with
    ``kind="pause"``, ``customer.subscription.updated`` pausing collection (a subscription event, which
    also looks for the hub's own event of a change it made: hub/ingest/reconcile.py)."""
    import json

    from connectors.stripe.verify import header

    out, now = [], int(time.time())
    for _ in range(n):
        u = uuid.uuid4().hex[:12]
        obj = {"id": f"in_{u}", "object": "invoice", "customer": f"cus_{u}", "customer_email": f"{u}@example.com",
               "currency": "usd", "amount_due": 2900, "attempt_count": 1, "status": "open"}
        data: dict = {"object": obj}
        if kind == "pause":
            obj = {"id": f"sub_{u}", "object": "subscription", "customer": f"cus_{u}", "status": "active",
                   "currency": "usd", "pause_collection": {"behavior": "void"},
                   "items": {"data": [{"quantity": 1, "price": {"id": "price_1", "unit_amount": 2900,
                                                                 "recurring": {"interval": "month"}}}]}}
            data = {"object": obj, "previous_attributes": {"pause_collection": None}}
        type_ = "customer.subscription.updated" if kind == "pause" else "invoice.payment_failed"
        body = json.dumps({"id": f"evt_{u}", "object": "event", "type": type_, "created": now,
                           "data": data}).encode()
        out.append((body, {"Stripe-Signature": header(body, SECRET, now), "Content-Type": "application/json"}))
    return out


def _post_one(port: int, body: bytes, headers: dict[str, str]) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
    assert conn.getresponse().status == 200
    conn.close()


def _wait_count(api: MockApi, n: int, timeout: float = 120) -> float:
    deadline = time.time() + timeout
    while len(api.requests) < n:
        if time.time() > deadline:
            import sqlalchemy as sa

            engine = sa.create_engine(os.environ["BENCH_HUB_DATABASE_URL"])
            with engine.connect() as c:
                states = {t: dict(c.execute(sa.text(f"SELECT status, count(*) FROM {t} GROUP BY status")).all())
                          for t in ("deliveries", "actions")}
            raise RuntimeError(f"only {len(api.requests)} of {n} vendor requests arrived; {states}")
        time.sleep(0.005)
    return api.requests[n - 1].at


def idle_latency(port: int, api: MockApi, n: int) -> list[float]:
    out = []
    for body, headers in signed_requests(n):
        before = len(api.requests)
        start = time.time()
        _post_one(port, body, headers)
        out.append(_wait_count(api, before + 1, 30) - start)
        time.sleep(0.05)
    return sorted(out)


def batch(port: int, api: MockApi, n: int) -> tuple[float, float, float]:
    """(delivered per second, seconds to the first vendor call after the first ack, seconds total)."""
    before = len(api.requests)
    reqs = signed_requests(n)
    start = time.time()
    load(port, reqs, 8)
    last = _wait_count(api, before + n)
    first = api.requests[before].at
    return n / (last - start), first - start, last - start


def queries_per_event(env: dict[str, str], n: int = 40, kind: str = "payment") -> float:
    """Statements ingest runs per delivery (new subscriber each, in the batches ``env`` sets),
    counted in this process."""
    from sqlalchemy import event, func, select

    from hub import jobs
    from hub.config import load_settings
    from hub.ingest import pipeline
    from hub.runtime import Hub, use
    from hub.store import Delivery
    from hub.web import create_app

    hub = Hub(load_settings(environ=env))
    use(hub)
    client = create_app(hub).test_client()
    for body, headers in signed_requests(n, kind):
        assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    hub.relay.flush()
    counted = [0]

    def count(*_a: object) -> None:
        counted[0] += 1

    def processed() -> int:
        with hub.store.session() as s:
            return s.execute(select(func.count()).select_from(Delivery).where(Delivery.status == "processed")).scalar()

    before = processed()
    queue = jobs.queue(hub.redis, jobs.INGEST_QUEUE)
    event.listen(hub.store.engine, "before_cursor_execute", count)
    while job_ids := queue.get_job_ids():  # as a worker takes them (a batch withdraws the jobs it took)
        queue.remove(job_ids[0])
        pipeline.process(hub, jobs.parse_job_id(job_ids[0])[1])
    event.remove(hub.store.engine, "before_cursor_execute", count)
    done = processed() - before
    hub.redis.flushdb()
    hub.close()
    return counted[0] / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()

    import redis

    from tests.services import fresh_database

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    server_url = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    redis.Redis.from_url(redis_url).flushdb()
    with fresh_database(server_url) as db_url:
        try:
            run(args, redis_url, db_url)
        finally:
            redis.Redis.from_url(redis_url).flushdb()


def run(args: argparse.Namespace, redis_url: str, db_url: str) -> None:
    api = MockApi(always(202))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")}, "BENCH_REDIS_URL": redis_url,
           "HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": redis_url, "HUB_STRIPE_WEBHOOK_SECRET": SECRET,
           "HUB_LOG_LEVEL": "WARNING", "HUB_RULES_PATH": str(RULES), "HUB_KLAVIYO_API_KEY": "pk_bench",
           "HUB_KLAVIYO_API_URL": api.url}
    os.environ["BENCH_HUB_DATABASE_URL"] = db_url
    hub_bin = str(Path(sys.executable).with_name("hub"))
    subprocess.run([hub_bin, "db", "upgrade"], env=env, check=True, stderr=subprocess.DEVNULL)

    def spawn(*cmd: str) -> subprocess.Popen:
        return subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL,
                                stderr=open(os.environ.get("BENCH_PROC_LOG", os.devnull), "ab"))

    procs: list[subprocess.Popen] = []
    try:
        base_port, port = _free_port(), _free_port()
        procs.append(spawn(sys.executable, str(ROOT / "benchmarks" / "ingest.py"), "--serve-baseline",
                           str(base_port)))
        procs.append(spawn(hub_bin, "serve", "--workers", "2", "--threads", "4", "--port", str(port)))
        procs.append(spawn(hub_bin, "scheduler"))
        procs.append(spawn(hub_bin, "worker"))
        _wait_up(base_port)
        _wait_up(port)
        load(base_port, signed_requests(200), 8)  # warm-up
        baseline = load(base_port, signed_requests(1000), 8)["rps"]
        idle_latency(port, api, 5)  # warm-up (imports, connections)
        print(f"whole path on loopback, {os.cpu_count()} CPUs, load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the start (shared machine)", flush=True)
        print(f"  baseline receiver (HMAC + LPUSH) ack rate: {baseline:.0f} req/s", flush=True)
        ms = [x * 1000 for x in idle_latency(port, api, args.idle)]
        print(f"  idle post -> vendor request ({args.idle} sequential): p50 {statistics.median(ms):.0f} ms, "
              f"p99 {ms[max(int(len(ms) * 0.99) - 1, 0)]:.0f} ms   (goal p50 < 100, p99 < 250)", flush=True)
        one = batch(port, api, args.batch)
        print(f"  sustained, 1 worker:  {one[0]:6.1f} webhooks/s processed and delivered ({args.batch} posted)",
              flush=True)
        procs.append(spawn(hub_bin, "worker"))
        time.sleep(3)  # the second worker is up
        two = batch(port, api, args.batch)
        print(f"  sustained, 2 workers: {two[0]:6.1f} webhooks/s   ratio 2/1 {two[0] / one[0]:.2f}   "
              f"(goal >= 100/s, ratio >= 1.6); delivered / baseline ack rate {two[0] / baseline:.3f}", flush=True)
        burst = batch(port, api, args.burst)
        print(f"  burst of {args.burst}, 2 workers: first vendor call {burst[1]:.2f} s after the burst began, "
              f"all delivered in {burst[2]:.1f} s   (goal < 1 s, < 15 s)", flush=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        procs = []
        os.environ.update(env)
        one_by_one = queries_per_event({**env, "HUB_INGEST_BATCH": "1"})
        batched = queries_per_event(env)
        print(f"  ingest SQL statements per event (new subscriber): {batched:.1f} in batches of "
              f"{env.get('HUB_INGEST_BATCH', 20)}, {one_by_one:.1f} one by one", flush=True)
        paused = queries_per_event(env, kind="pause")
        print(f"  ingest SQL statements per subscription event (collection paused, new subscriber): {paused:.1f} "
              f"in batches of {env.get('HUB_INGEST_BATCH', 20)}", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        api.close()


if __name__ == "__main__":
    main()
