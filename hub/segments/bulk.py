"""Set-based writes for the sweep on PostgreSQL: each batch's rows go to a temporary table with one
binary COPY, and one statement per table applies them (``INSERT ... SELECT``, ``UPDATE ... FROM``,
``DELETE ... USING``) instead of one statement per row. Other databases (the embedded SQLite), and
the per-event path, use executemany; both write the same rows."""

from __future__ import annotations

import gc
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a sweep. A sweep allocates millions of objects
    (rows, contexts, results, events) that form no reference cycles, and the collector's repeated
    full passes over them took a quarter of a 100k-subscriber recompute. Reference counting still
    frees everything as usual; the collector resumes (if it was on) when the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def apply(session: Session, name: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]],
          *statements: str, **params: Any) -> None:
    """COPY ``rows`` into the temporary table ``name`` (``columns``: name and PostgreSQL type; the
    table is emptied first and dropped at commit), then run ``statements`` (psycopg ``%(param)s``
    style), which read it."""
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({', '.join(f'{c} {t}' for c, t in columns)})"
                       " ON COMMIT DROP")
        cursor.execute(f"TRUNCATE {name}")
        with cursor.copy(f"COPY {name} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([t for _, t in columns])
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"ANALYZE {name}")  # its size, so a few rows are joined by index, not by a full scan
        for sql in statements:
            cursor.execute(sql, params)
    finally:
        cursor.close()


class Writer:
    """Runs the sweep's write statements in order on one background thread, so PostgreSQL executes
    one batch's statements while Python evaluates the next. The session belongs to that thread from
    the first ``submit`` until the ``with`` block ends (which waits for every statement and raises
    the first failure). On other databases each statement runs at once, in the caller's thread."""

    def __init__(self, session: Session):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="segment-writes") if is_postgres(session) else None
        self._pending: list[Future[None]] = []

    def submit(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self._pool is None:
            fn(*args, **kwargs)
            return
        for done in self._pending:
            if done.done() and done.exception() is not None:
                raise done.exception()  # type: ignore[misc]  # the transaction is lost: stop early
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is None:
            return
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
        if kind is None:
            for future in self._pending:
                future.result()
