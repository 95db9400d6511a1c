"""Prometheus counters and histograms recorded where things happen (web, ingest and deliver workers).

Every process records into prometheus_client's multiprocess files when ``PROMETHEUS_MULTIPROC_DIR`` is
set (``hub serve`` and ``hub worker`` set it to ``var/prometheus`` when it is not), and ``/metrics`` in
any web process adds up every process's files: gunicorn workers, RQ workers and the work-horses RQ
forks for each job. A work-horse writes under its worker's id (``HUB_METRICS_PROCESS_ID``, set by
``hub worker``): horses of one worker run one at a time, so they share the worker's files instead
of leaving one set of files per job. Without the variable (``hub run``, tests) the process's own
registry is used.

The gauges (backlogs, circuit and credentials state, last webhook) are read from the database and
Redis at scrape time instead (hub/web/prometheus.py), so every process reports the same numbers.
Label values are bounded: connector and action names come from the registry, outcomes from fixed lists.
"""

from __future__ import annotations

import glob
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

PROCESS_ID_ENV = "HUB_METRICS_PROCESS_ID"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _host() -> str:
    # containers sharing the folder have their own pid numbering: the host name keeps files apart
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def _process_id() -> str:
    return f"{_host()}-{os.environ.get(PROCESS_ID_ENV) or os.getpid()}"


if os.environ.get(MULTIPROC_ENV):
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)

# webhook acknowledgement: from the request reaching the view to the answer
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# queue latencies: seconds to hours
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)

WEBHOOKS = Counter("hub_webhooks_received_total", "Webhook requests by connector and outcome "
                   "(stored, duplicate, refused: failed verification, unavailable: database down)",
                   ["connector", "outcome"])
ACK_SECONDS = Histogram("hub_webhook_ack_seconds", "Time to answer a webhook request", ["connector"],
                        buckets=ACK_BUCKETS)
INGEST_SECONDS = Histogram("hub_ingest_latency_seconds", "From a webhook being received to its delivery "
                           "being processed (events recorded and actions planned)", ["connector"],
                           buckets=LAG_BUCKETS)
INGESTED = Counter("hub_deliveries_processed_total", "Deliveries the ingest worker finished, by outcome "
                   "(processed, failed: a payload it could not read)", ["connector", "outcome"])
SEND_DELAY = Histogram("hub_action_send_delay_seconds", "From an action falling due to its attempt being "
                       "recorded", ["connector"], buckets=LAG_BUCKETS)
ACTIONS = Counter("hub_actions_total", "Action outcomes by connector and action (done, retried, failed, "
                  "dead, cancelled)", ["connector", "action", "outcome"])
RATE_LIMIT_WAITS = Counter("hub_rate_limit_waits_total", "Sends put back to wait for a rate-limit room",
                           ["connector", "bucket"])
THROTTLED = Counter("hub_rate_limited_responses_total", "429 answers from a destination", ["connector"])

#: what ``record`` in hub/delivery.py calls each attempt's outcome -> the counter's label
ACTION_OUTCOMES = {"ok": "done", "dry_run": "done", "retry": "retried", "failed": "failed", "dead": "dead"}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess(default: str = "var/prometheus", *, worker: bool = False) -> str:
    """Before a server or worker starts: pick the shared metrics folder (creating it) and remove the
    files of processes that are gone. Must run before any metric is recorded in this process."""
    folder = os.environ.get(MULTIPROC_ENV) or str(Path(default).resolve())
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = folder
    if worker:
        os.environ[PROCESS_ID_ENV] = str(os.getpid())
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)
    for path in glob.glob(os.path.join(folder, f"*_{_host()}-*.db")):
        found = re.search(r"-(\d+)\.db$", path)
        if found and not _alive(int(found.group(1))):
            os.remove(path)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry() -> CollectorRegistry:
    """The registry ``/metrics`` serves: every process's files, or this process's metrics."""
    folder = multiprocess_dir()
    if folder:
        collected = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(collected, path=folder)
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


# -- the hooks the web app and the workers call (one line each where it happens) -----------------------------
def webhook_answered(connector: str, outcome: str, seconds: float) -> None:
    WEBHOOKS.labels(connector, outcome).inc()
    ACK_SECONDS.labels(connector).observe(seconds)


def delivery_processed(connector: str, outcome: str, received_at: datetime | None) -> None:
    INGESTED.labels(connector, outcome).inc()
    if received_at is not None:
        INGEST_SECONDS.labels(connector).observe(max((utcnow() - received_at).total_seconds(), 0.0))


def action_attempted(connector: str, action: str, outcome: str, due_at: datetime | None) -> None:
    """One recorded attempt (``outcome`` as ``record`` in hub/delivery.py names it)."""
    ACTIONS.labels(connector, action, ACTION_OUTCOMES.get(outcome, outcome)).inc()
    if due_at is not None:
        SEND_DELAY.labels(connector).observe(max((utcnow() - due_at).total_seconds(), 0.0))


def actions_cancelled(rows: Iterable[tuple[str, str]]) -> None:
    for connector, action in rows:
        ACTIONS.labels(connector, action, "cancelled").inc()


def rate_limit_wait(connector: str, bucket: str) -> None:
    RATE_LIMIT_WAITS.labels(connector, bucket).inc()


def throttled(connector: str) -> None:
    THROTTLED.labels(connector).inc()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
