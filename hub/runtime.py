"""The process-wide Hub: settings, database, Redis queues and rules, built once per process.

The web app, RQ job functions and the CLI all reach the same object through ``current()``
(like Flask's app context in its Celery example); tests install their own with ``use()``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from redis import Redis

from hub import logs
from hub.config import load_settings
from hub.kernel import mapping
from hub.kernel.settings import SecretScrubber, Settings
from hub.store import Store

log = logging.getLogger(__name__)

_fake_servers: dict[str, Any] = {}


class Hub:
    """Everything a process needs, built from validated settings."""

    def __init__(self, settings: Settings, *, redis: Redis | None = None, store: Store | None = None):
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.redis = redis or self._connect_redis()
        self.scrub = SecretScrubber(settings)
        mapping.use_folder(settings["HUB_MAPPINGS_PATH"])
        self._rules: Any = None
        self._rules_lock = threading.Lock()
        self._relay: Any = None

    @property
    def relay(self) -> Any:
        """This process's ingest relay (hub/relay.py)."""
        if self._relay is None:
            from hub.ingest.relay import Relay

            self._relay = Relay(self)
        return self._relay

    def change_events(self, session: Any, action_ids: list[int]) -> list[int]:
        """Record the canonical events of the subscription changes among ``action_ids`` the provider
        just accepted (the deliver worker's transaction); the ids of the actions they planned."""
        from hub.changes import confirm
        from hub.ingest import pipeline

        return confirm.record(session, action_ids, lambda events: pipeline.record_events(
            self, session, events, origin="change"))

    def _connect_redis(self) -> Redis:
        if self.settings["HUB_REDIS_URL"]:
            return Redis.from_url(self.settings["HUB_REDIS_URL"], health_check_interval=30)
        import fakeredis

        # One in-process server per database: web, worker and scheduler threads share it.
        server = _fake_servers.setdefault(self.settings.database_url, fakeredis.FakeServer())
        return fakeredis.FakeRedis(server=server)

    # -- rules -----------------------------------------------------------------------------
    @property
    def rules(self) -> Any:
        """The rules in force (reloaded when their files change; a broken file keeps the old set)."""
        return self.rules_registry.current()

    @property
    def rules_registry(self) -> Any:
        """The registry that keeps the rules current (watching the files from a thread of its own)."""
        from hub.rules import RulesRegistry

        with self._rules_lock:
            if self._rules is None:
                self._rules = RulesRegistry(self.settings["HUB_RULES_PATH"],
                                            default_timezone=self.settings["HUB_DEFAULT_TIMEZONE"] or "UTC")
            self._rules.watch()
            return self._rules

    def close(self) -> None:
        if self._rules is not None:
            self._rules.stop()
        self.store.dispose()


_current: Hub | None = None
_lock = threading.Lock()


def current() -> Hub:
    """The process's Hub, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Hub(load_settings())
            logs.use_scrubber(_current.scrub)
        return _current


def use(hub: Hub | None) -> None:
    """Install (or clear) the process's Hub."""
    global _current
    with _lock:
        _current = hub
        logs.use_scrubber(hub.scrub if hub else None)
