"""RQ job functions. Jobs carry ids only; the database holds the work."""

from __future__ import annotations

from hub import logs, tracing
from hub.ingest import pipeline
from hub.outbound import deliver
from hub.runtime import current


def process_delivery(delivery_id: int) -> None:
    with logs.context(delivery_id=delivery_id), tracing.job_span("ingest", delivery_id=delivery_id):
        pipeline.process(current(), delivery_id)


def deliver_action(action_id: int) -> None:
    with logs.context(action_id=action_id), tracing.job_span("deliver", action_id=action_id):
        deliver.deliver(current(), action_id)
