"""The engine, sessions and the few dialect-specific statements we need."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import Table, bindparam, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from hub.store.types import JsonDoc


class StoreUnavailable(Exception):
    """The database refused or lost the connection (``retry``: a fresh connection may succeed)."""

    def __init__(self, reason: str, *, retry: bool):
        super().__init__(reason)
        self.retry = retry


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """Owns one engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any):
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine_kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        else:
            engine_kwargs.setdefault("pool_size", 10)
            engine_kwargs.setdefault("max_overflow", 20)
            # No pre-ping (a round trip per checkout on the webhook hot path): a connection found dead
            # invalidates the pool; callers that must not fail once retry (see web/webhooks.py).
            engine_kwargs.setdefault("pool_recycle", 1800)
        self.engine: Engine = create_engine(url, **engine_kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # SQLite allows one writer; serialize our write transactions in-process.
            self._write_lock: threading.RLock | None = threading.RLock()
        else:
            self._write_lock = None
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._raw_sql: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[str, frozenset[str]]] = {}

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._one_writer(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core connection in a transaction (no ORM session: the webhook hot path)."""
        with self._one_writer(), self.engine.begin() as conn:
            yield conn

    def insert_one(self, table: Table, row: dict[str, Any], conflict: Sequence[str]) -> Any | None:
        """Insert one row in its own committed transaction unless it conflicts; its id, or None.

        The webhook hot path. On PostgreSQL it goes straight through the pooled psycopg
        connection with SQL compiled once (a third less CPU than a Core execution); a dead
        connection empties the pool and raises ``StoreUnavailable`` (``retry`` says whether a
        fresh connection is worth one more try).
        """
        if self.engine.dialect.name != "postgresql":
            try:
                with self.begin() as conn:
                    ids = insert_ignore(conn, table, row, conflict)
            except DBAPIError as exc:
                raise StoreUnavailable(type(exc.orig).__name__, retry=exc.connection_invalidated) from exc
            return ids[0] if ids else None
        import psycopg
        from psycopg.types.json import Jsonb

        sql, json_columns = self._raw_insert(table, tuple(conflict), tuple(row))
        params = {k: Jsonb(v) if k in json_columns else v for k, v in row.items()}
        try:
            conn = self.engine.raw_connection()
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__, retry=False) from exc
        driver = conn.driver_connection
        try:
            driver.autocommit = True  # the single statement is the transaction: one round trip, no COMMIT
            with driver.cursor() as cur:
                cur.execute(sql, params)
                found = cur.fetchone()
            return found[0] if found else None
        except psycopg.OperationalError as exc:
            conn.invalidate()
            self.engine.dispose()  # its siblings in the pool died with the server: start afresh
            raise StoreUnavailable(type(exc).__name__, retry=True) from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(type(exc).__name__, retry=False) from exc
        finally:
            if not driver.closed:
                driver.autocommit = False
            conn.close()

    def _raw_insert(self, table: Table, conflict: tuple[str, ...], columns: tuple[str, ...]
                    ) -> tuple[str, frozenset[str]]:
        key = (table.name, conflict, columns)
        if key not in self._raw_sql:
            from sqlalchemy.dialects.postgresql import insert

            stmt = insert(table).values({c: bindparam(c) for c in columns}).on_conflict_do_nothing(
                index_elements=list(conflict)).returning(list(table.primary_key.columns)[0])
            sql = str(stmt.compile(dialect=self.engine.dialect))
            json_columns = frozenset(c.name for c in table.columns if isinstance(c.type, type(JsonDoc)))
            self._raw_sql[key] = (sql, json_columns)
        return self._raw_sql[key]

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_INSERT_IGNORE: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def insert_ignore(
    session: Session | Connection, table: Table, rows: dict[str, Any] | Sequence[dict[str, Any]],
    conflict: Sequence[str],
) -> list[Any]:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING the primary keys actually inserted.

    The statement is built once per table and dialect and executed with parameters, so SQLAlchemy's
    compiled cache is hit on the webhook hot path.
    """
    dialect = session.dialect.name if isinstance(session, Connection) else session.get_bind().dialect.name
    key = (dialect, table.name, tuple(conflict))
    stmt = _INSERT_IGNORE.get(key)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        pk = list(table.primary_key.columns)[0]
        stmt = insert(table).on_conflict_do_nothing(index_elements=list(conflict)).returning(pk)
        _INSERT_IGNORE[key] = stmt
    rows = [rows] if isinstance(rows, dict) else list(rows)
    # One execution per row keeps RETURNING exact on both dialects.
    inserted = []
    for row in rows:
        value = session.execute(stmt, row).scalar()
        if value is not None:
            inserted.append(value)
    return inserted
