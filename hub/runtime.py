"""The process-wide Hub: settings, database, Redis queues and rules, built once per process.

The web app, RQ job functions and the CLI all reach the same object through ``current()``
(like Flask's app context in its Celery example); tests install their own with ``use()``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from .config import SecretScrubber, Settings, load_settings
from .store import Store

log = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"
LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
_fake_servers: dict[str, Any] = {}


def deliver_queue_name(connector: str) -> str:
    return f"deliver-{connector}"


class Hub:
    """Everything a process needs, built from validated settings."""

    def __init__(self, settings: Settings, *, redis: Redis | None = None, store: Store | None = None):
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.redis = redis or self._connect_redis()
        self.scrub = SecretScrubber(settings)
        self._rules: Any = None
        self._rules_lock = threading.Lock()
        self._relay: Any = None

    @property
    def relay(self) -> Any:
        """This process's ingest relay (hub/relay.py)."""
        if self._relay is None:
            from .relay import Relay

            self._relay = Relay(self)
        return self._relay

    def _connect_redis(self) -> Redis:
        if self.settings["HUB_REDIS_URL"]:
            return Redis.from_url(self.settings["HUB_REDIS_URL"], health_check_interval=30)
        import fakeredis

        # One in-process server per database: web, worker and scheduler threads share it.
        server = _fake_servers.setdefault(self.settings.database_url, fakeredis.FakeServer())
        return fakeredis.FakeRedis(server=server)

    # -- queues ----------------------------------------------------------------------------
    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self.redis, serializer=JSONSerializer)

    def enqueue(self, queue: str, func: str, arg: int, job_id: str) -> bool:
        """Enqueue a job that carries only an id; a second enqueue of the same job id is a no-op."""
        try:
            self.queue(queue).enqueue(func, arg, job_id=job_id, unique=True, result_ttl=0,
                                      failure_ttl=7 * 86400, job_timeout=300)
            return True
        except DuplicateJobError:
            return False

    def job_alive(self, job_id: str) -> bool:
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except Exception:  # NoSuchJobError, or a job hash we cannot read: treat as gone
            return False
        return job.get_status(refresh=False) in LIVE_JOB_STATES

    # -- rules -----------------------------------------------------------------------------
    @property
    def rules(self) -> Any:
        """The rules in force (reloaded when their files change; a broken file keeps the old set)."""
        from .rules import RulesRegistry

        with self._rules_lock:
            if self._rules is None:
                self._rules = RulesRegistry(self.settings["HUB_RULES_PATH"],
                                            default_timezone=self.settings["HUB_DEFAULT_TIMEZONE"] or "UTC")
            return self._rules.current()

    def close(self) -> None:
        self.store.dispose()


_current: Hub | None = None
_lock = threading.Lock()


def current() -> Hub:
    """The process's Hub, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Hub(load_settings())
        return _current


def use(hub: Hub | None) -> None:
    """Install (or clear) the process's Hub."""
    global _current
    with _lock:
        _current = hub
