"""The migrations build exactly the schema the models describe, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store import Base, Store
from hub.store.migrate import upgrade


def _diff(store: Store) -> list:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return compare_metadata(context, Base.metadata)


def test_postgresql_schema_matches_the_models(pg_url):
    store = Store(pg_url)
    try:
        assert _diff(store) == []
    finally:
        store.dispose()


def test_sqlite_schema_matches_the_models(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(store)
    upgrade(store)  # idempotent: a second upgrade is a no-op
    try:
        assert _diff(store) == []
    finally:
        store.dispose()
