"""Webhook acknowledgement throughput and latency: the hub against a minimal baseline.

In one run, on loopback, the same load generator drives
  (a) a minimal Flask app that checks a Stripe HMAC and pushes the body to Redis, and
  (b) the hub's POST /webhooks/stripe (verify, one PostgreSQL insert + commit, enqueue, 200),
both under gunicorn with the same worker/thread counts. Prints requests/s, p50 and p99 for each and
the ratio b/a. Goal: ratio >= 0.5 with the hub's ack p99 under 50 ms.

Uses the machine's PostgreSQL and Redis (override with BENCH_DATABASE_URL / BENCH_REDIS_URL): a
throwaway database is created and dropped; Redis database 13 is flushed.

    .venv/bin/python benchmarks/ingest.py [--requests 2000] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "whsec_bench_secret"
WORKERS, THREADS = 2, 4


# -- (a) the baseline: HMAC check + Redis push, nothing else ----------------------------------
def baseline_app():  # type: ignore[no-untyped-def]
    import redis
    from flask import Flask, request

    app = Flask("baseline")
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])

    @app.post("/webhooks/stripe")
    def receive():  # type: ignore[no-untyped-def]
        body = request.get_data()
        parts = dict(p.split("=", 1) for p in request.headers.get("Stripe-Signature", "").split(","))
        expected = hmac.new(SECRET.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            return {"error": "unauthorized"}, 401
        client.lpush("baseline", body)
        return {"ok": True}

    return app


def serve_baseline(port: int) -> None:
    from gunicorn.app.base import BaseApplication

    class App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in {"bind": f"127.0.0.1:{port}", "workers": WORKERS, "worker_class": "gthread",
                         "threads": THREADS, "loglevel": "warning"}.items():
                self.cfg.set(k, v)

        def load(self):  # type: ignore[no-untyped-def]
            return baseline_app()

    App().run()


# -- the load generator -----------------------------------------------------------------------
def signed_requests(n: int) -> list[tuple[bytes, dict[str, str]]]:
    from connectors.stripe.verify import header

    out = []
    now = int(time.time())
    for i in range(n):
        body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "invoice.payment_failed",
                           "created": now, "data": {"object": {"id": f"in_{i}", "customer": f"cus_{i}",
                                                               "currency": "usd", "amount_due": 2900}}}).encode()
        out.append((body, {"Stripe-Signature": header(body, SECRET, now), "Content-Type": "application/json"}))
    return out


def load(port: int, reqs: list[tuple[bytes, dict[str, str]]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    index = iter(range(len(reqs)))

    def run() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        bad = 0
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                break
            body, headers = reqs[i]
            start = time.perf_counter()
            conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            bad += response.status != 200
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "errors": errors, "n": len(latencies)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def _wait_enqueued(client, expected: int) -> int:  # type: ignore[no-untyped-def]
    """Every acknowledged delivery must also be on the ingest queue (the relay is asynchronous)."""
    deadline = time.time() + 15
    while time.time() < deadline and client.llen("rq:queue:ingest") < expected:
        time.sleep(0.1)
    return int(client.llen("rq:queue:ingest"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return

    import redis
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    server_url = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    redis.Redis.from_url(redis_url).flushdb()
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")}, "BENCH_REDIS_URL": redis_url,
           "HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": redis_url, "HUB_STRIPE_WEBHOOK_SECRET": SECRET,
           "HUB_LOG_LEVEL": "WARNING", "HUB_RULES_PATH": str(ROOT / "rules")}
    hub_bin = str(Path(sys.executable).with_name("hub"))
    subprocess.run([hub_bin, "db", "upgrade"], env=env, check=True, stderr=subprocess.DEVNULL)
    servers = {
        "baseline (HMAC + Redis push)": [sys.executable, __file__, "--serve-baseline"],
        "hub (verify + PostgreSQL commit + enqueue)": [hub_bin, "serve", "--workers", str(WORKERS), "--threads",
                                                       str(THREADS), "--port"],
    }
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
    procs, ports = [], {}
    try:
        for label, cmd in servers.items():
            ports[label] = _free_port()
            procs.append(subprocess.Popen(cmd + [str(ports[label])], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for label, port in ports.items():
            _wait_up(port)
            load(port, signed_requests(200), args.concurrency)  # warm-up
        # alternate the two servers round by round, so both see the same machine
        for _ in range(args.rounds):
            for label, port in ports.items():
                rounds[label].append(load(port, signed_requests(args.requests), args.concurrency))
        enqueued = _wait_enqueued(redis.Redis.from_url(redis_url), 200 + args.rounds * args.requests)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        redis.Redis.from_url(redis_url).flushdb()
    results = {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for label, runs in rounds.items()}
    ratios = [h["rps"] / b["rps"] for b, h in zip(*rounds.values())]
    print(f"{args.rounds} rounds x {args.requests} signed webhooks per server (medians shown), "
          f"{args.concurrency} concurrent keep-alive clients, "
          f"gunicorn {WORKERS} workers x {THREADS} threads each, loopback, {os.cpu_count()} CPUs")
    for label, r in results.items():
        print(f"  {label:45s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
              f"   non-200: {int(sum(x['errors'] for x in rounds[label]))}")
    print(f"  ingest jobs enqueued for the hub's {200 + args.rounds * args.requests} acknowledged deliveries: "
          f"{enqueued}")
    print(f"  ratio hub/baseline (req/s), per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}   (goal >= 0.5; hub ack p99 goal < 50 ms)")


if __name__ == "__main__":
    main()
