"""Slow clients against the web server setups a Flask app can run under.

For each setup, in one run on loopback: start the hub's web app, measure /healthz and a signed
Stripe webhook with no load (the baseline), then again while ``--slow`` sockets each dribble one
byte a second (half of them in the headers, half in a declared 64 KiB body). Prints, per setup,
how many probes answered, p50/max latency and the ratio of p50 under attack to the baseline, and
the price paid in normal operation: signed webhooks per second with 8 concurrent clients, as a
ratio to gunicorn gthread 4x4 measured in the same run.

Setups:
  gunicorn-gthread   gunicorn, 4 processes x 4 threads (what `hub serve` ran before issue 13)
  gunicorn-gthread64 gunicorn, 2 processes x 64 threads (more threads: a bigger but finite pool)
  hypercorn          hypercorn, asyncio, 2 processes (buffers the body, then runs the app in a thread)
  hub-serve          `hub serve` as shipped: gunicorn, 2 processes x 8 threads, each process serving with
                     waitress (reads the whole request first, per-request deadline)

Uses a throwaway SQLite file and the in-process queue (the server, not the database, is measured).

    .venv/bin/python benchmarks/slow_clients.py [--slow 200] [--hold 20] [--setups hub-serve,gunicorn-gthread]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.stripe.verify import header as stripe_header  # noqa: E402

SECRET = "whsec_bench_slow"
BIN = Path(sys.executable).parent
APP = "hub.web:create_app()"


def setups(port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    return {
        "gunicorn-gthread": [str(BIN / "gunicorn"), "-k", "gthread", "-w", "4", "--threads", "4", "-b", bind, APP],
        "gunicorn-gthread64": [str(BIN / "gunicorn"), "-k", "gthread", "-w", "2", "--threads", "64", "-b", bind, APP],
        "hypercorn": [str(BIN / "hypercorn"), "-w", "2", "--read-timeout", "10", "-b", bind, APP],
        "hub-serve": [str(BIN / "hub"), "serve", "--host", "127.0.0.1", "--port", str(port)],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def probe(port: int, kind: str, n: int) -> tuple[float, int] | None:
    """Latency (s) and status of one /healthz GET or one signed webhook POST; None on timeout."""
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        if kind == "healthz":
            conn.request("GET", "/healthz")
        else:
            body = f'{{"id": "evt_slow_{n}_{time.time_ns()}", "type": "customer.created", "data": {{}}}}'.encode()
            conn.request("POST", "/webhooks/stripe", body,
                         {"Stripe-Signature": stripe_header(body, SECRET), "Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
        return time.perf_counter() - started, status
    except OSError:
        return None


def slow_sockets(port: int, count: int, stop: threading.Event) -> list[socket.socket]:
    """Open ``count`` connections; each sends one byte a second until ``stop`` (header or body)."""
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:  # complete headers, then a body that never finishes
            s.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n")
        else:  # headers that never finish
            s.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)

    def dribble() -> None:
        while not stop.wait(1.0):
            for s in socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass

    threading.Thread(target=dribble, daemon=True).start()
    return socks


def measure(port: int, seconds: float) -> dict[str, list[tuple[float, int] | None]]:
    out: dict[str, list[tuple[float, int] | None]] = {"healthz": [], "webhook": []}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        for kind in out:
            out[kind].append(probe(port, kind, n))
        n += 1
        time.sleep(0.25)
    return out


def throughput(port: int, requests: int = 400, concurrency: int = 8) -> float:
    """Signed webhooks acknowledged per second by ``concurrency`` clients in a loop."""
    done: list[int] = []

    def client(k: int) -> None:
        for n in range(k, requests, concurrency):
            result = probe(port, "webhook", n)
            if result is not None and result[1] == 200:
                done.append(n)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(done) / (time.perf_counter() - started)


def summary(results: list[tuple[float, int] | None]) -> tuple[int, int, float, float]:
    ok = [r[0] for r in results if r is not None and r[1] == 200]
    if not ok:
        return 0, len(results), float("nan"), float("nan")
    return len(ok), len(results), statistics.median(ok), max(ok)


def run(name: str, command: list[str], port: int, slow: int, hold: float, env: dict[str, str]) -> float:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_up(port)
        rate = throughput(port)
        base = measure(port, 3.0)
        stop = threading.Event()
        socks = slow_sockets(port, slow, stop)
        time.sleep(2.0)  # let every slow socket reach the server
        attacked = measure(port, hold)
        stop.set()
        for s in socks:
            s.close()
        for kind in ("healthz", "webhook"):
            b_ok, b_n, b_p50, _ = summary(base[kind])
            a_ok, a_n, a_p50, a_max = summary(attacked[kind])
            ratio = a_p50 / b_p50 if b_p50 == b_p50 and a_p50 == a_p50 else float("nan")
            print(f"{name:20} {kind:8} baseline {b_ok:3}/{b_n:<3} p50 {b_p50 * 1000:7.1f} ms | "
                  f"{slow} slow sockets: {a_ok:3}/{a_n:<3} answered, p50 {a_p50 * 1000:7.1f} ms, "
                  f"max {a_max * 1000:7.1f} ms, p50 ratio {ratio:5.2f}", flush=True)
        return rate
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--setups", default="gunicorn-gthread,gunicorn-gthread64,hypercorn,hub-serve")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="hub-slow-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATABASE_URL=f"sqlite:///{workdir}/hub.db", HUB_STRIPE_WEBHOOK_SECRET=SECRET,
               HUB_RULES_PATH=str(ROOT / "rules"), PATH=f"{BIN}:{env.get('PATH', '')}")
    subprocess.run([str(BIN / "hub"), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    rates = {}
    for name in args.setups.split(","):
        port = free_port()
        rates[name] = run(name, setups(port)[name], port, args.slow, args.hold, env)
    base = rates.get("gunicorn-gthread")
    for name, rate in rates.items():
        versus = f", {rate / base:4.2f}x gunicorn-gthread" if base else ""
        print(f"{name:20} no attack: {rate:6.1f} signed webhooks/s (8 clients){versus}")


if __name__ == "__main__":
    main()
