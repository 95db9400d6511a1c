"""Shared fixtures: real PostgreSQL and Redis per test session, a fresh Hub per test."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis as redis_lib
from sqlalchemy import text

from hub import runtime
from hub.config import load_settings
from hub.runtime import Hub
from hub.store import Base, Store
from hub.store.migrate import upgrade
from tests import services
from tests.helpers import drain

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Settings every test starts from (tests override what they exercise).
BASE_ENV = {
    "HUB_STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
    "HUB_KLAVIYO_API_KEY": "pk_test_klaviyo",
    "HUB_KLAVIYO_API_URL": "https://klaviyo.test",
    "HUB_ADMIN_TOKEN": "admin-test-token",
    "HUB_RULES_PATH": str(ROOT / "rules"),
    "HUB_RETRY_BASE_SECONDS": "1",
    "HUB_LOG_LEVEL": "WARNING",
}


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HUB_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("HUB_") and not name.startswith("HUB_TEST_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def backing_services() -> Iterator[tuple[str, services.RedisClaim]]:
    with services.services() as (db_url, claim):
        store = Store(db_url)
        upgrade(store)
        store.dispose()
        yield db_url, claim


@pytest.fixture(scope="session")
def pg_url(backing_services: tuple[str, services.RedisClaim]) -> str:
    return backing_services[0]


@pytest.fixture(scope="session")
def redis_url(backing_services: tuple[str, services.RedisClaim]) -> str:
    return backing_services[1].url


@pytest.fixture(scope="session")
def _session_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url)
    yield store
    store.dispose()


def _truncate(store: Store) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def make_hub(backing_services: tuple[str, services.RedisClaim], _session_store: Store
             ) -> Iterator[Callable[..., Hub]]:
    """Build a Hub on the session's PostgreSQL and Redis with extra settings; state starts empty."""
    db_url, claim = backing_services
    client = redis_lib.Redis.from_url(claim.url)
    _truncate(_session_store)
    claim.reset(client)
    built: list[Hub] = []

    def factory(**overrides: Any) -> Hub:
        env = {**BASE_ENV, "HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": claim.url,
               **{k: str(v) for k, v in overrides.items() if v is not None}}
        for k in [k for k, v in overrides.items() if v is None]:
            env.pop(k, None)
        hub = Hub(load_settings(environ=env), store=_session_store)
        runtime.use(hub)
        built.append(hub)
        return hub

    yield factory
    runtime.use(None)
    client.close()


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub()


@pytest.fixture
def client(hub: Hub) -> Any:
    from hub.web import create_app

    return create_app(hub).test_client()


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[Hub]:
    """The embedded default: SQLite file and in-process (fakeredis) queue."""
    env = {**BASE_ENV, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    hub = Hub(load_settings(environ=env))
    upgrade(hub.store)
    runtime.use(hub)
    yield hub
    runtime.use(None)
    hub.close()


@pytest.fixture
def drained() -> Callable[[Hub], None]:
    return drain


__all__ = ["FIXTURES", "ROOT", "threading"]
