"""Delivered actions per second per worker process: the hub against one RQ job per action.

A loopback mock API answers every request after 50 ms. Measured in the same run:

- baseline: N jobs on RQ's default (forking) ``Worker``, each a plain function doing one
  ``requests.post`` (``rq worker --burst``, one process);
- hub: N ActiveCampaign ``sync_contact`` actions in the outbox, dispatched, then one
  ``hub worker --burst`` process (the same forking Worker) delivering them through the real path:
  claims, circuit and rate-limit checks (limit raised out of the way), concurrent calls, one
  attempt row per action.

What the figure measures: wall time from the worker's start to its exit with every action
recorded, divided into the number of actions. The hub's gain comes from bulk claims (one job
delivers many due actions) and concurrent calls inside the job; it is not batching (sync_contact
has no bulk endpoint). Uses Redis db 14 (flushed) and a throwaway PostgreSQL database.

    .venv/bin/python benchmarks/delivery.py [--actions 1500] [--baseline 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("HUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PG_SERVER = os.environ.get("HUB_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LATENCY = 0.05


def baseline_post(url: str, n: int) -> int:
    """The baseline job: one request per job."""
    return requests.post(url, json={"contact": {"email": f"p{n}@example.com"}}, timeout=10).status_code


class MockApi:
    def __init__(self) -> None:
        self.count = 0
        lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(LATENCY)
                with lock:
                    api.count += 1
                body = b'{"contact":{"id":"1"}}'
                self.send_response(201)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 256
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


def run_baseline(api: MockApi, n: int) -> float:
    from redis import Redis
    from rq import Queue

    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    queue = Queue("baseline", connection=redis)
    for i in range(n):
        queue.enqueue("delivery.baseline_post", f"{api.url}/api/3/contact/sync", i, result_ttl=0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    rq_bin = str(Path(sys.executable).with_name("rq"))
    before = api.count
    started = time.perf_counter()
    subprocess.run([rq_bin, "worker", "--burst", "--url", REDIS_URL, "--logging_level", "WARNING", "baseline"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    assert api.count - before == n, (api.count - before, n)
    return n / elapsed


def run_hub(api: MockApi, n: int, db_url: str) -> float:
    from redis import Redis

    from hub.config import load_settings
    from hub.outbound import outbox
    from hub.runtime import Hub
    from hub.store import Action, insert_ignore, utcnow
    from hub.store.migrate import upgrade

    env = {"HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": REDIS_URL, "HUB_LOG_LEVEL": "WARNING",
           "HUB_ACTIVECAMPAIGN_API_TOKEN": "bench-token", "HUB_ACTIVECAMPAIGN_API_URL": api.url,
           "HUB_ACTIVECAMPAIGN_RATE_LIMIT": "100000/1s", "HUB_RULES_PATH": str(ROOT / "rules")}
    Redis.from_url(REDIS_URL).flushdb()
    hub = Hub(load_settings(environ=env, dotenv_path=None))
    upgrade(hub.store)
    now = utcnow()
    rows = [{"key": f"bench:{uuid.uuid4().hex}", "connector": "activecampaign", "name": "sync_contact",
             "params": {"email": f"p{i}@example.com"}, "due_at": now, "status": "scheduled", "attempts": 0,
             "dispatch_seq": 0, "dry_run": False, "created_at": now, "updated_at": now} for i in range(n)]
    with hub.store.session() as session:
        insert_ignore(session, Action.__table__, rows, ["key"])
    while outbox.dispatch(hub) > 0:
        pass
    hub_bin = str(Path(sys.executable).with_name("hub"))
    worker_env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")}, **env}
    before = api.count
    started = time.perf_counter()
    subprocess.run([hub_bin, "worker", "--burst", "-q", "deliver-activecampaign"], env=worker_env, check=True,
                   stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    from sqlalchemy import func, select

    with hub.store.session() as session:
        done = session.execute(select(func.count()).select_from(Action).where(Action.status == "done")).scalar()
    hub.close()
    assert done == n and api.count - before == n, (done, api.count - before, n)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1500)
    parser.add_argument("--baseline", type=int, default=300)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        api = MockApi()
        base = run_baseline(api, args.baseline)
        ours = run_hub(api, args.actions, make_url(PG_SERVER).set(database=name).render_as_string(False))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        from redis import Redis

        Redis.from_url(REDIS_URL).flushdb()
    print(f"mock API latency {LATENCY * 1000:.0f} ms, one worker process each")
    print(f"baseline (RQ default worker, one job per action): {base:8.1f} actions/s ({args.baseline} actions)")
    print(f"hub worker (bulk claims, concurrent calls):       {ours:8.1f} actions/s ({args.actions} actions)")
    print(f"ratio: {ours / base:.1f}x")


if __name__ == "__main__":
    main()
