"""The one place RQ is spelled: queue names, job ids, live states, enqueue options and workers.

Jobs carry ids only; the database holds the work. Job functions live in ``hub/tasks.py``.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Iterable, Sequence

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
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


def queue_names(groups: Iterable[str], sending_connectors: Iterable[str]) -> list[str]:
    """Queue names for ``hub worker --queues``: ``ingest``, ``deliver`` (every ``deliver-*`` queue)
    or a queue's own name; nothing named: all of them."""
    names: list[str] = []
    senders = list(sending_connectors)
    for group in groups or ["ingest", "deliver"]:
        expanded = [deliver_queue_name(n) for n in senders] if group == "deliver" else [group]
        names.extend(n for n in expanded if n not in names)
    return names


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


def enqueue_deliver(redis: Redis, actions: Sequence[tuple[int, str, int]],
                    trace: dict[str, str] | None = None) -> None:
    """A deliver job per ``(action id, connector, dispatch seq)`` at the front of its destination's
    queue, in the order given, all in one pipeline round trip. The dispatch seq is claimed under the
    action's row lock, so each job id is enqueued once."""
    with redis.pipeline() as pipe:
        for action_id, connector, seq in actions:
            q = queue(redis, deliver_queue_name(connector))
            q.enqueue_many([Queue.prepare_data(DELIVER_ACTION, (action_id,), job_id=action_job_id(action_id, seq),
                                               at_front=True, timeout=JOB_TIMEOUT,
                                               meta={"trace": trace} if trace else None, **_OPTIONS)], pipeline=pipe)
        pipe.execute()


# KEYS: queue, job hash 1..n; ARGV: job id 1..n. A job still waiting in the queue is removed with
# its hash; one a worker already took is left alone (it finds its work done and returns).
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


def withdraw(redis: Redis, queue_name: str, job_ids: Sequence[str]) -> None:
    """Withdraw jobs still waiting in a queue whose work another job took (best effort: a job left
    behind finds its work done and returns)."""
    if not job_ids:
        return
    q = queue(redis, queue_name)
    try:
        redis.register_script(_WITHDRAW)(keys=[q.key, *[Job.key_for(i) for i in job_ids]], args=list(job_ids))
    except Exception as exc:  # only costs no-op jobs later
        log.warning("could not withdraw %d %s jobs (%s)", len(job_ids), queue_name, type(exc).__name__)


def job_alive(redis: Redis, job_id: str) -> bool:
    """Whether a job will still run or finish: waiting in a queue, or started by a worker that is
    still beating (a worker killed mid-job stops beating, and its job counts as gone within
    ``LEASE_TTL`` seconds instead of RQ's job timeout)."""
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except Exception:  # NoSuchJobError, or a job hash we cannot read: treat as gone
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        return bool(job.worker_name) and worker_beating(redis, job.worker_name)
    return status in LIVE_JOB_STATES


# -- worker liveness -------------------------------------------------------------------------
LEASE_TTL = 10  # seconds a worker counts as alive after its last beat
BEAT_EVERY = 2.0


def _lease_key(worker_name: str) -> str:
    return f"hub:worker:{worker_name}:alive"


def worker_beating(redis: Redis, worker_name: str) -> bool:
    return bool(redis.exists(_lease_key(worker_name)))


class Heartbeat:
    """A thread renewing ``hub:worker:<name>:alive`` (TTL ``LEASE_TTL``) while the worker lives.

    RQ's own started-job bookkeeping only expires a dead worker's job after the job timeout plus a
    minute; this lease lets the sweeper re-run it within seconds. A beat that fails (Redis away) is
    simply retried: the lease then lapses, which is right, since the worker cannot report anyway.
    """

    def __init__(self, redis: Redis, worker_name: str):
        self.redis, self.key = redis, _lease_key(worker_name)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{worker_name}", daemon=True)

    def start(self) -> "Heartbeat":
        self.beat()
        self.thread.start()
        return self

    def beat(self) -> None:
        try:
            self.redis.set(self.key, "1", ex=LEASE_TTL)
        except Exception:
            pass

    def _run(self) -> None:
        while not self.stop.wait(BEAT_EVERY):
            self.beat()

    def close(self) -> None:
        self.stop.set()
        try:
            self.redis.delete(self.key)
        except Exception:
            pass


def take_dead_started(redis: Redis, queue_names: Iterable[str]) -> list[str]:
    """Take the started jobs of workers that stopped beating out of RQ's registries (RQ would keep
    them for the job timeout plus a minute) and return their ids: their work is to be re-run."""
    dead: list[str] = []
    for name in queue_names:
        registry = StartedJobRegistry(name, connection=redis, serializer=JSONSerializer)
        for entry in redis.zrange(registry.key, 0, -1):  # "<job id>:<execution id>" entries
            job_id = registry.parse_job_id(entry)
            if job_alive(redis, job_id):
                continue
            redis.zrem(registry.key, entry)
            forget(redis, job_id)
            dead.append(job_id)
    return dead


def parse_job_id(job_id: str) -> tuple[str, int, int] | None:
    """``("delivery" | "action", id, seq)`` from a job id made by this module, else None."""
    kind = {"d": "delivery", "a": "action"}.get(job_id[:1])
    head, _, seq = job_id[1:].partition("-")
    if kind is None or not head.isdigit() or not seq.isdigit():
        return None
    return kind, int(head), int(seq)


#: set when the process is asked to stop: a job waiting for the database gives up at once
STOPPING = threading.Event()


class HubWorker(SimpleWorker):
    """The worker of ``hub worker``: no fork per job (the process keeps its database pool, Redis
    connection and compiled rules across jobs), a timer that still kills a job past its timeout,
    a heartbeat lease, queues served round robin (a backlog of ingest jobs never holds up
    delivery), and Redis reconnects backed off up to 5 s so work resumes soon after Redis returns.
    """

    death_penalty_class = TimerDeathPenalty
    max_connection_wait_time = 5.0
    beats_itself = True  # False: the caller keeps a Heartbeat across many burst runs

    def reorder_queues(self, reference_queue: Queue) -> None:  # RQ's RoundRobinWorker, without the fork
        pos = self._ordered_queues.index(reference_queue)
        self._ordered_queues = self._ordered_queues[pos + 1:] + self._ordered_queues[:pos + 1]

    def work(self, *args: Any, **kwargs: Any) -> bool:
        heartbeat = Heartbeat(self.connection, self.name).start() if self.beats_itself else None
        try:
            return super().work(*args, **kwargs)
        finally:
            if heartbeat is not None:
                heartbeat.close()

    def request_stop(self, signum: Any, frame: Any) -> None:
        STOPPING.set()
        super().request_stop(signum, frame)

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop_requested or self._shutdown_requested_date)


class ThreadWorker(HubWorker):
    """A worker that runs jobs in its own thread (the embedded, single-process mode)."""

    def _install_signal_handlers(self) -> None:  # only the main thread may install handlers
        pass


def make_worker(redis: Redis, queues: list[str], cls: type[Worker] = HubWorker, **kwargs: Any) -> Worker:
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


def run_worker(make: Any, *, burst: bool = False) -> None:
    """Run workers made by ``make()`` until asked to stop: a worker that quits on a Redis error is
    replaced after a pause (logged once per outage) instead of the process exiting."""
    import time

    from redis.exceptions import RedisError

    pause, down = 0.5, False
    while True:
        worker, started = make(), time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=False)
        except RedisError as exc:  # registration or teardown while Redis is away
            if not down:
                log.warning("Redis unavailable (%s); the worker retries until it returns", type(exc).__name__)
            down = True
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        if burst or worker.stop_requested or STOPPING.is_set():
            return
        if time.monotonic() - started > 30:  # it ran a while: this is a new incident
            pause, down = 0.5, False
        if not down:  # RQ quit its loop on an error (logged by RQ): start a fresh worker shortly
            log.warning("worker loop ended unexpectedly; starting again")
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def workers(redis: Redis) -> list[dict[str, Any]]:
    """The RQ workers registered in Redis, with their state, queues and last heartbeat."""
    return [{"name": w.name, "state": w.get_state(), "queues": w.queue_names(), "heartbeat": w.last_heartbeat}
            for w in Worker.all(connection=redis)]


def forget(redis: Redis, job_id: str) -> None:
    """Drop what Redis keeps of a job that will not run again (failed, or its worker killed), so a
    new job may take its id."""
    redis.delete(Job.key_for(job_id))


def enqueue_once(redis: Redis, queue_name: str, func: str, arg: Any, job_id: str) -> bool:
    """A job that carries only an id; a second enqueue of the same job id is a no-op (False)."""
    try:
        queue(redis, queue_name).enqueue(func, arg, job_id=job_id, unique=True, job_timeout=JOB_TIMEOUT, **_OPTIONS)
        return True
    except DuplicateJobError:
        return False
