"""Hands committed deliveries to the ingest queue off the request thread.

The webhook request commits the delivery and answers; the job that points at it is enqueued by
this per-process relay thread, many at a time in one Redis round trip (RQ's ``enqueue_many`` in a
pipeline) when webhooks arrive faster than one by one. Nothing depends on the relay for safety:
a delivery whose job never made it to Redis (process killed, Redis down) is still ``received``
in the database, and the scheduler's sweeper enqueues it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

from hub import jobs

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

BATCH = 200


class Relay:
    def __init__(self, hub: "Hub"):
        self.hub = hub
        self._ids: deque[int] = deque()
        self._traces: dict[int, dict[str, str]] = {}
        self._wake = threading.Condition()
        self._busy = False
        self._pid: int | None = None

    def submit(self, delivery_id: int, trace: dict[str, str] | None = None) -> None:
        with self._wake:
            if trace:
                self._traces[delivery_id] = trace
            if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="ingest-relay", daemon=True).start()
            self._ids.append(delivery_id)
            self._wake.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is enqueued (tests, shutdown)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._ids and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._ids))
                batch = [self._ids.popleft() for _ in range(min(len(self._ids), BATCH))]
                traces = {i: t for i in batch if (t := self._traces.pop(i, None))}
                self._busy = True
            try:
                jobs.enqueue_ingest(self.hub.redis, [(d, 1) for d in batch], traces=traces)
            except Exception as exc:  # Redis away: the sweeper enqueues these deliveries later
                log.warning("%d deliveries stored but not enqueued (%s); the sweeper will pick them up",
                            len(batch), type(exc).__name__)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
