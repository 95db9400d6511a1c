"""``GET /metrics`` (``Authorization: Bearer $HUB_METRICS_TOKEN`` when set).

Two parts: the counters and histograms every process records (hub/telemetry.py, added up across
gunicorn workers, RQ workers and their work-horses), and gauges read from the database and Redis at
scrape time, so every web process reports the same numbers: stored deliveries and actions by status,
backlog size and oldest age per queue, RQ jobs waiting, each destination's circuit and credentials,
and when each connector last received a webhook.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

from flask import Blueprint, Response, abort, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from hub import alerts, telemetry
from hub.store import Action, Delivery, utcnow
from hub.web.auth import metrics_allowed

bp = Blueprint("prometheus", __name__)

CIRCUIT_STATES = ("closed", "open", "half-open")


class HubCollector:
    def __init__(self, hub: Any):
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._store()
        yield from self._queues()
        yield from self._destinations()

    def _store(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        deliveries = GaugeMetricFamily("hub_deliveries", "Stored webhook deliveries by connector and status",
                                       labels=["connector", "status"])
        actions = GaugeMetricFamily("hub_actions", "Planned actions by connector and status",
                                    labels=["connector", "status"])
        backlog = GaugeMetricFamily("hub_backlog_items", "Work waiting per queue: deliveries received and not "
                                    "yet processed (ingest), actions due and not yet sent (deliver-<connector>)",
                                    labels=["queue"])
        oldest = GaugeMetricFamily("hub_backlog_oldest_age_seconds", "Age of the oldest waiting item per queue "
                                   "(since received, or since due)", labels=["queue"])
        last = GaugeMetricFamily("hub_webhook_last_received_timestamp_seconds", "When each connector last "
                                 "stored a webhook (Unix time)", labels=["connector"])
        with self.hub.store.session() as s:
            for connector, status, n in s.execute(select(Delivery.connector, Delivery.status, func.count())
                                                  .group_by(Delivery.connector, Delivery.status)):
                deliveries.add_metric([connector, status], n)
            for connector, status, n in s.execute(select(Action.connector, Action.status, func.count())
                                                  .group_by(Action.connector, Action.status)):
                actions.add_metric([connector, status], n)
            for queue, (n, first) in alerts.backlog(s, now).items():
                backlog.add_metric([queue], n)
                oldest.add_metric([queue], _age(now, first))
            for connector, at in s.execute(select(Delivery.connector, func.max(Delivery.received_at))
                                           .group_by(Delivery.connector)):
                last.add_metric([connector], at.timestamp())
        yield from (deliveries, actions, backlog, oldest, last)

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        import connectors
        from hub import jobs

        queued = GaugeMetricFamily("hub_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"])
        oldest = GaugeMetricFamily("hub_queue_oldest_job_age_seconds", "Age of the oldest job waiting in each "
                                   "RQ queue", labels=["queue"])
        now = utcnow()
        for name in jobs.all_queue_names(connectors.senders()):
            count, first = jobs.queue_depth(self.hub.redis, name)
            queued.add_metric([name], count)
            oldest.add_metric([name], _age(now, first.replace(tzinfo=now.tzinfo) if first else None))
        yield from (queued, oldest)

    def _destinations(self) -> Iterator[GaugeMetricFamily]:
        import connectors
        from hub.outbound.circuit import Circuit, Credentials

        circuit = GaugeMetricFamily("hub_circuit_state", "1 for the circuit state each destination is in",
                                    labels=["destination", "state"])
        valid = GaugeMetricFamily("hub_credentials_valid", "0 when a destination answered 401/403 and no call "
                                  "has succeeded since", labels=["connector"])
        dry = GaugeMetricFamily("hub_outbound_dry_run", "1 when a destination's API settings are missing and "
                                "its actions are recorded instead of sent", labels=["connector"])
        for name, connector in connectors.REGISTRY.items():
            if not connector.actions:
                continue
            state = Circuit(self.hub.redis).state(name)["state"]
            for each in CIRCUIT_STATES:
                circuit.add_metric([name, each], 1.0 if state == each else 0.0)
            valid.add_metric([name], 0.0 if Credentials(self.hub.redis).invalid(name) else 1.0)
            dry.add_metric([name], 1.0 if connector.dry_run(self.hub.settings) else 0.0)
        yield from (circuit, valid, dry)


def _age(now: Any, first: Any) -> float:
    return max((now - first) / timedelta(seconds=1), 0.0) if first is not None else 0.0


@bp.get("/metrics")
def metrics() -> Response:
    if not metrics_allowed():
        abort(401, "send HUB_METRICS_TOKEN as a Bearer token")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(current_app.extensions["hub"]))
    body = generate_latest(telemetry.registry()) + generate_latest(registry)
    return Response(body, mimetype="text/plain; version=0.0.4")
