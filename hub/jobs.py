"""The one place RQ is spelled: queue names, job ids, live states, enqueue options and workers.

Jobs carry ids only; the database holds the work. Job functions live in ``hub/tasks.py``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable, Sequence

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"
PROCESS_DELIVERY = "hub.tasks.process_delivery"
DELIVER_ACTION = "hub.tasks.deliver_action"
LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
JOB_TIMEOUT = 300  # seconds; a job past it is killed and counted failed (the sweeper re-runs its work)
FAILURE_TTL = 7 * 86400
_OPTIONS: dict[str, Any] = {"result_ttl": 0, "failure_ttl": FAILURE_TTL}


def deliver_queue_name(connector: str) -> str:
    return f"deliver-{connector}"


def all_queue_names(sending_connectors: Iterable[str]) -> list[str]:
    return [INGEST_QUEUE] + [deliver_queue_name(n) for n in sending_connectors]


def delivery_job_id(delivery_id: int, seq: int) -> str:
    """The ingest job of an inbound delivery (``seq`` grows each time the sweeper re-enqueues it)."""
    return f"d{delivery_id}-{seq}"


def action_job_id(action_id: int, seq: int) -> str:
    """The deliver job of an action (``seq``: the action's dispatch count)."""
    return f"a{action_id}-{seq}"


def queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def enqueue_ingest(redis: Redis, deliveries: Sequence[tuple[int, int]],
                   traces: dict[int, dict[str, str]] | None = None) -> None:
    """One ingest job per ``(delivery id, seq)``, all in one pipeline round trip; a delivery's trace
    context (hub/tracing.py) travels in its job's meta."""
    q = queue(redis, INGEST_QUEUE)
    traces = traces or {}
    jobs = [Queue.prepare_data(PROCESS_DELIVERY, (d,), job_id=delivery_job_id(d, seq), timeout=JOB_TIMEOUT,
                               meta={"trace": traces[d]} if traces.get(d) else None, **_OPTIONS)
            for d, seq in deliveries]
    with redis.pipeline() as pipe:
        q.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def enqueue_deliver(redis: Redis, connector: str, action_id: int, seq: int,
                    trace: dict[str, str] | None = None) -> bool:
    """A deliver job at the front of the destination's queue; False if that job already exists."""
    try:
        queue(redis, deliver_queue_name(connector)).enqueue(
            DELIVER_ACTION, action_id, job_id=action_job_id(action_id, seq), unique=True, at_front=True,
            job_timeout=JOB_TIMEOUT, meta={"trace": trace} if trace else None, **_OPTIONS)
        return True
    except DuplicateJobError:
        return False


# KEYS: queue, job hash 1..n; ARGV: job id 1..n. A job still waiting in the queue is removed with
# its hash; one a worker already took is left alone (it finds its action claimed and returns).
_WITHDRAW = """
local removed = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) > 0 then
    redis.call('DEL', KEYS[i + 1])
    removed = removed + 1
  end
end
return removed
"""


def withdraw_deliver_jobs(redis: Redis, connector: str, actions: Sequence[tuple[int, int]]) -> None:
    """Withdraw the queued deliver jobs of ``(action id, dispatch seq)`` pairs another job claimed."""
    if not actions:
        return
    ids = [action_job_id(a, seq) for a, seq in actions]
    q = queue(redis, deliver_queue_name(connector))
    try:
        redis.register_script(_WITHDRAW)(keys=[q.key, *[Job.key_for(i) for i in ids]], args=ids)
    except Exception as exc:  # only costs no-op jobs later
        log.warning("could not withdraw %d deliver jobs (%s)", len(ids), type(exc).__name__)


def job_alive(redis: Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except Exception:  # NoSuchJobError, or a job hash we cannot read: treat as gone
        return False
    return job.get_status(refresh=False) in LIVE_JOB_STATES


class ThreadWorker(SimpleWorker):
    """An RQ worker that runs jobs in its own thread (the embedded, single-process mode)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # only the main thread may install handlers
        pass


def make_worker(redis: Redis, queues: list[str], cls: type[Worker] = Worker, **kwargs: Any) -> Worker:
    return cls([queue(redis, q) for q in queues], connection=redis, serializer=JSONSerializer, **kwargs)


def queue_depth(redis: Redis, name: str) -> tuple[int, datetime | None]:
    """Jobs waiting in a queue and when the oldest of them was enqueued (naive UTC, as RQ keeps it).
    Deliver jobs may go in at the front, so the oldest is at one end or the other."""
    q = queue(redis, name)
    ends = {i.decode() if isinstance(i, bytes) else i for i in (redis.lindex(q.key, 0), redis.lindex(q.key, -1)) if i}
    times = []
    for job_id in ends:
        try:
            at = Job.fetch(job_id, connection=redis, serializer=JSONSerializer).enqueued_at
        except Exception:  # withdrawn meanwhile
            continue
        if at is not None:
            times.append(at.replace(tzinfo=None))
    return q.count, min(times) if times else None
