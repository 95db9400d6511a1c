"""RQ job functions. Jobs carry ids only; the database holds the work."""

from __future__ import annotations

from hub.ingest import pipeline
from hub.outbound import deliver
from hub.runtime import current


def process_delivery(delivery_id: int) -> None:
    pipeline.process(current(), delivery_id)


def deliver_action(action_id: int) -> None:
    deliver.deliver(current(), action_id)
