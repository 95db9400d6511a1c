"""Restarting `hub serve` while webhooks keep coming: what the senders see.

Two clients post signed Stripe webhooks without pause (one opens a connection per post, one keeps its
connection alive), against `hub serve` (gunicorn, 2 workers x 4 threads) on the machine's PostgreSQL
(a throwaway database) and Redis (a database number no test session holds). Three ways to restart,
each in a fresh server, counting posts answered 200, posts refused (nothing listening), and posts
failed otherwise (reset, no answer, an error status), and how long the clients saw nothing answered:

  - baseline: stop and start (`kill -TERM`, wait for exit, start again: what a plain process restart
    or `docker restart` does);
  - `kill -HUP`: new workers, the old ones drain;
  - `kill -USR2`, then `kill -TERM` of the old master once the new one runs: a new master, same socket.

Every answered post is checked to be stored.

    .venv/bin/python benchmarks/restart.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.test_restart import Poster, _children, _free_port, _get_health  # noqa: E402

SECRET = "whsec_restart"  # what tests.web.test_restart.Poster signs with


def _wait(check, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting: {what}")
        time.sleep(0.05)
    return value


def _serve(env: dict[str, str], port: int, pidfile: Path) -> subprocess.Popen:
    hub_bin = str(Path(sys.executable).with_name("hub"))
    return subprocess.Popen([hub_bin, "serve", "--port", str(port), "--workers", "2", "--threads", "4",
                             "--pid", str(pidfile)], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(os.environ.get("BENCH_PROC_LOG", os.devnull), "ab"))


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def run(way: str, env: dict[str, str], stored: "callable") -> dict[str, object]:  # type: ignore[valid-type]
    port, folder = _free_port(), Path(tempfile.mkdtemp())
    pidfile = folder / "hub.pid"
    proc = _serve(env, port, pidfile)
    procs = [proc]
    _wait(lambda: _get_health(port), "hub serve answering")
    master = _wait(lambda: _read_pid(pidfile), "pid file")
    posters = [Poster(port, f"{way}-fresh", keep_alive=False), Poster(port, f"{way}-kept", keep_alive=True)]
    answered = lambda: sum(len(p.answered) for p in posters)  # noqa: E731
    _wait(lambda: answered() >= 50, "50 answers before the restart")
    began = time.monotonic()
    if way == "baseline: TERM, then start again":
        os.kill(master, signal.SIGTERM)
        proc.wait(60)
        procs.append(_serve(env, port, pidfile))
    elif way == "kill -HUP":
        before = _children(master)
        os.kill(master, signal.SIGHUP)
        _wait(lambda: len(_children(master)) == 2 and not _children(master) & before, "workers replaced")
    else:
        os.kill(master, signal.SIGUSR2)
        second = pidfile.with_name(pidfile.name + ".2")
        new = _wait(lambda: _read_pid(second), "the new master")
        _wait(lambda: len(_children(new)) == 2, "the new master's workers")
        os.kill(master, signal.SIGTERM)
        proc.wait(60)
    mark = answered()
    _wait(lambda: answered() >= mark + 50, "50 answers after the restart")
    took = time.monotonic() - began
    for poster in posters:
        poster.finish()
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    time.sleep(1.0)
    failed = [f for p in posters for f in p.failed]
    refused = [f for f in failed if "ConnectionRefusedError" in f]
    ids = {e for p in posters for e in p.answered}
    times = sorted(t for p in posters for t in p.times)
    gap = max(b - a for a, b in zip(times, times[1:]))
    return {"way": way, "answered": len(ids), "refused attempts": len(refused),
            "other failures": len(failed) - len(refused), "answered, not stored": len(ids - stored()),
            "longest time without an answer": f"{gap:.2f} s", "restart to 50 more answers": f"{took:.1f} s"}


def main() -> None:
    import sqlalchemy as sa

    from tests.services import claimed_redis_db, fresh_database

    server_url = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    with fresh_database(server_url) as db_url, claimed_redis_db(
            os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")) as claim:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
               "HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": claim.url, "HUB_STRIPE_WEBHOOK_SECRET": SECRET,
               "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp()}
        hub_bin = str(Path(sys.executable).with_name("hub"))
        subprocess.run([hub_bin, "db", "upgrade"], env=env, check=True, stderr=subprocess.DEVNULL)
        engine = sa.create_engine(db_url)

        def stored() -> set[str]:
            with engine.connect() as conn:
                return set(conn.execute(sa.text("SELECT dedup_key FROM deliveries")).scalars())

        try:
            for way in ("baseline: TERM, then start again", "kill -HUP", "kill -USR2, then TERM the old master"):
                print(run(way, env, stored), flush=True)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
