"""RQ job functions. Jobs carry ids only; the database holds the work.

A job that meets the database away (restart, failover, network) waits for it with backoff
instead of failing: the work resumes within seconds of its return rather than at the sweeper's
next pass. A worker asked to stop gives up waiting at once (the sweeper re-runs the work).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_delay, wait_exponential

from hub import jobs, logs, tracing
from hub.ingest import pipeline
from hub.outbound import deliver
from hub.runtime import current

log = logging.getLogger(__name__)

DB_WAIT_SECONDS = 120  # within the job timeout (jobs.JOB_TIMEOUT)


def _database_away(exc: BaseException) -> bool:
    if jobs.STOPPING.is_set():
        return False
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _log_once(state: RetryCallState) -> None:
    if state.attempt_number == 1 and state.outcome is not None:
        log.warning("database unavailable or a deadlock (%s); the job waits and retries",
                    type(state.outcome.exception()).__name__)


_waiting_for_database: Callable[[Any], Any] = retry(
    retry=retry_if_exception(_database_away), wait=wait_exponential(multiplier=0.25, max=2.0),
    stop=stop_after_delay(DB_WAIT_SECONDS), before_sleep=_log_once, reraise=True)


def process_delivery(delivery_id: int) -> None:
    with logs.context(delivery_id=delivery_id), tracing.job_span("ingest", delivery_id=delivery_id):
        _waiting_for_database(pipeline.process)(current(), delivery_id)


def deliver_action(action_id: int) -> None:
    with logs.context(action_id=action_id), tracing.job_span("deliver", action_id=action_id):
        _waiting_for_database(deliver.deliver)(current(), action_id)


def apply_change_batch(batch_id: int) -> None:
    """Plan a change batch's rows (``POST /api/changes/batches``); a second run plans only the rest."""
    from hub.changes import batch

    with logs.context(batch_id=batch_id), tracing.job_span("changes-batch", batch_id=batch_id):
        _waiting_for_database(batch.run_stored)(current(), batch_id)
