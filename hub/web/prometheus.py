"""``GET /metrics``: Prometheus gauges read from the database and Redis at scrape time, so every
web process reports the same numbers (no multiprocess registry to manage)."""

from __future__ import annotations

from typing import Any, Iterator

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from hub.store import Action, Delivery

bp = Blueprint("prometheus", __name__)


class HubCollector:
    def __init__(self, hub: Any):
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        deliveries = GaugeMetricFamily("hub_deliveries", "Stored webhook deliveries by connector and status",
                                       labels=["connector", "status"])
        actions = GaugeMetricFamily("hub_actions", "Planned actions by connector and status",
                                    labels=["connector", "status"])
        with self.hub.store.session() as s:
            for connector, status, n in s.execute(select(Delivery.connector, Delivery.status, func.count())
                                                  .group_by(Delivery.connector, Delivery.status)):
                deliveries.add_metric([connector, status], n)
            for connector, status, n in s.execute(select(Action.connector, Action.status, func.count())
                                                  .group_by(Action.connector, Action.status)):
                actions.add_metric([connector, status], n)
        yield deliveries
        yield actions
        queued = GaugeMetricFamily("hub_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"])
        import connectors
        from hub import jobs

        for name in jobs.all_queue_names(connectors.senders()):
            queued.add_metric([name], jobs.queue(self.hub.redis, name).count)
        yield queued


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(current_app.extensions["hub"]))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
