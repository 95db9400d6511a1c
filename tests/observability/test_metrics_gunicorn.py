"""``/metrics`` under ``hub serve`` with two gunicorn workers and a separate ``hub worker`` (which forks
a work-horse per job): after scripted traffic, every scrape, whichever worker answers it, shows the
same counts and histogram buckets, added up across all those processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hub.store import Action, Attempt
from hub.telemetry import ACK_BUCKETS
from tests.conftest import FIXTURES
from tests.helpers import stripe_event, stripe_headers
from tests.mockapi import MockApi, sequence, wait_for

pytestmark = pytest.mark.slow
TOKEN = "metrics-test-token"


def payment_failed(n: int) -> bytes:
    return stripe_event("invoice.payment_failed", {
        "id": f"in_{n}", "object": "invoice", "customer": f"cus_{n}", "customer_email": f"p{n}@example.com",
        "currency": "usd", "amount_due": 1000 + n, "attempt_count": 1, "status": "open",
    }, event_id=f"evt_{n}")


def _env(hub, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") or k.startswith("HUB_TEST_")}
    for name, value in hub.settings.values.items():
        if value is not None:
            env[name] = ",".join(value) if isinstance(value, list) else str(value)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return env


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen:
    hub_bin = str(Path(sys.executable).with_name("hub"))
    return subprocess.Popen([hub_bin, *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(os.environ.get("HUB_TEST_PROC_LOG", os.devnull), "ab"))


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).ok
    except requests.RequestException:  # not listening yet, or still loading the app
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(base: str) -> dict[tuple[str, tuple], float]:
    answer = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                      "Connection": "close"}, timeout=10)
    answer.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture
def klaviyo():
    # the first call fails (retried later), the rest are accepted
    server = MockApi(sequence((500, {}, b"", 0.0), (202, {}, b"", 0.0)))
    yield server
    server.close()


def test_metrics_add_up_across_gunicorn_workers_and_rq_work_horses(make_hub, klaviyo, tmp_path):
    hub = make_hub(HUB_KLAVIYO_API_URL=klaviyo.url, HUB_METRICS_TOKEN=TOKEN,
                   HUB_RULES_PATH=str(FIXTURES / "rules" / "payment_failed_only.yaml"))
    env = _env(hub, tmp_path / "prometheus")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs = [_spawn(env, "serve", "--port", str(port), "--workers", "2", "--threads", "2")]
    try:
        wait_for(lambda: _up(base), timeout=60)
        bodies = [payment_failed(n) for n in range(6)]
        sends = ([(b, stripe_headers(b)) for b in bodies] + [(bodies[0], stripe_headers(bodies[0]))] * 2
                 + [(b, stripe_headers(b, secret="whsec_forged")) for b in bodies[:3]])

        def post(item):
            body, headers = item
            return requests.post(f"{base}/webhooks/stripe", data=body, timeout=10,
                                 headers={**headers, "Connection": "close"}).status_code

        with ThreadPoolExecutor(4) as pool:  # separate connections, so both workers take some
            codes = sorted(pool.map(post, sends))
        assert codes == [200] * 8 + [401] * 3

        worker = _spawn(env, "worker", "--burst")  # ingest, then the deliver jobs the ingest enqueued
        procs.append(worker)
        assert worker.wait(120) == 0

        with hub.store.session() as s:
            done = s.execute(select(func.count()).select_from(Action).where(Action.status == "done")).scalar()
            attempts = s.execute(select(Attempt.outcome, func.count()).group_by(Attempt.outcome)).all()
        assert done >= 1 and dict(attempts).get("retry") == 1

        for _ in range(4):  # each scrape on a fresh connection: either worker answers, the same numbers
            samples = _scrape(base)
            assert _value(samples, "hub_webhooks_received_total", connector="stripe", outcome="stored") == 6
            assert _value(samples, "hub_webhooks_received_total", connector="stripe", outcome="duplicate") == 2
            assert _value(samples, "hub_webhooks_received_total", connector="stripe", outcome="refused") == 3
            assert _value(samples, "hub_webhook_ack_seconds_count", connector="stripe") == 11
            buckets = [_value(samples, "hub_webhook_ack_seconds_bucket", connector="stripe", le=str(b))
                       for b in ACK_BUCKETS] + [_value(samples, "hub_webhook_ack_seconds_bucket",
                                                       connector="stripe", le="+Inf")]
            assert buckets == sorted(buckets) and buckets[-1] == 11
            # recorded by the RQ work-horses
            assert _value(samples, "hub_deliveries_processed_total", connector="stripe", outcome="processed") == 6
            assert _value(samples, "hub_ingest_latency_seconds_count", connector="stripe") == 6
            assert _value(samples, "hub_ingest_latency_seconds_bucket", connector="stripe", le="+Inf") == 6
            assert _value(samples, "hub_actions_total", connector="klaviyo", action="track_event",
                          outcome="done") == done
            assert _value(samples, "hub_actions_total", connector="klaviyo", action="track_event",
                          outcome="retried") == 1
            assert _sum(samples, "hub_action_send_delay_seconds_count") == sum(n for _, n in attempts)
            # read at scrape time
            assert _value(samples, "hub_deliveries", connector="stripe", status="processed") == 6
            assert _value(samples, "hub_circuit_state", destination="klaviyo", state="closed") == 1
            assert _value(samples, "hub_credentials_valid", connector="klaviyo") == 1
            assert _value(samples, "hub_webhook_last_received_timestamp_seconds", connector="stripe") > 0
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
        assert requests.get(f"{base}/readyz", timeout=10).json() == {"ready": True}
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(20)
