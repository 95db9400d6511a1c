"""Batch changes: one change per row, every row checked before anything runs, then each applied through
the same path as the API (``apply.submit``), idempotent per row, so a second run of the same rows
(after an interruption, or ``--resume``) applies only what is not there yet.

Rows come from a CSV file (``hub changes apply``), or from ``POST /api/changes/batches`` as CSV or
JSON; an API batch is stored (``change_batches``, ``change_batch_rows``) and planned by a job that
stops at the next row when the batch is cancelled.

Columns: ``subscription`` (``provider:id`` or id), ``change``, and optionally ``effective``,
``plan``, ``plan_amount``, ``quantity``, ``reason``, ``idempotency_key`` (default: the batch's name,
the line and the row's content, so an edited row is a new change).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from marshmallow import ValidationError
from sqlalchemy import func, select, update

from hub import jobs
from hub.changes import apply
from hub.changes.preview import PreviewError, preview
from hub.changes.request import ChangeRequest, problems
from hub.store import Action, utcnow
from hub.store.change_models import BatchStatus, ChangeBatch, ChangeBatchRow, RowStatus
from hub.store.models import ActionStatus

if TYPE_CHECKING:
    from hub.runtime import Hub

COLUMNS = ("subscription", "change", "effective", "plan", "plan_amount", "quantity", "reason", "idempotency_key")
MAX_ROWS = 10_000  # rows of one API batch
CHUNK = 50  # rows planned per transaction (and per look at a batch's cancellation)
CANCELLABLE = (ActionStatus.SCHEDULED, ActionStatus.QUEUED)


@dataclass
class Row:
    line: int
    subscription: str
    request: dict[str, Any]


Problem = tuple[int, str]  # (line, reason)


def _row(name: str, line: int, raw: dict[str, Any]) -> Row | Problem:
    values = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items() if k in COLUMNS}
    values = {k: v for k, v in values.items() if v not in (None, "")}
    ref = values.pop("subscription", "")
    ref = str(ref) if isinstance(ref, int) and not isinstance(ref, bool) else ref
    if not isinstance(ref, str) or not ref or len(ref) > 255:
        return line, "subscription: missing" if not ref else "subscription: must be a string of at most 255 characters"
    try:
        request = ChangeRequest().load(values)
    except ValidationError as exc:
        return line, problems(exc)
    if not request.get("idempotency_key"):
        digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in raw.items())).encode()).hexdigest()[:16]
        request["idempotency_key"] = f"batch:{name}:{line}:{digest}"
    return Row(line, ref, request)


def _split(results: Iterable[Row | Problem]) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    errors: list[Problem] = []
    for r in results:
        (rows if isinstance(r, Row) else errors).append(r)  # type: ignore[arg-type]
    return rows, errors


def read_csv(handle: Iterable[str], name: str) -> tuple[list[Row], list[Problem]]:
    """Every row loaded, or ``(line, reason)`` for each one that is not (line 1 is the header)."""
    reader = csv.DictReader(handle)
    fieldnames = reader.fieldnames or []
    if "subscription" not in fieldnames or "change" not in fieldnames:
        return [], [(1, f"the header must name at least subscription and change (columns: {', '.join(COLUMNS)})")]
    errors: list[Problem] = []
    unknown = set(fieldnames) - set(COLUMNS)
    if unknown:
        errors.append((1, f"unknown column(s) {', '.join(sorted(unknown))} (columns: {', '.join(COLUMNS)})"))
    found = []
    for raw in reader:
        if None in raw:  # more cells than the header names
            found.append((reader.line_num, f"{len(raw[None]) + len(fieldnames)} cells for {len(fieldnames)} columns"))
            continue
        found.append(_row(name, reader.line_num, raw))
    rows, bad = _split(found)
    return rows, errors + bad


def read_json(items: list[Any], name: str) -> tuple[list[Row], list[Problem]]:
    """JSON rows (objects with the CSV's columns); a row's line is its position, from 1."""
    found: list[Row | Problem] = []
    for line, raw in enumerate(items, 1):
        if not isinstance(raw, dict):
            found.append((line, "must be an object"))
            continue
        unknown = set(raw) - set(COLUMNS)
        found.append((line, f"unknown field(s) {', '.join(sorted(map(str, unknown)))}") if unknown
                     else _row(name, line, raw))
    return _split(found)


def read(path: Path) -> tuple[list[Row], list[str]]:
    """A CSV file's rows, or ``file:line: reason`` for each one that is not."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows, errors = read_csv(handle, path.name)
    return rows, [f"{path}:{line}: {reason}" for line, reason in errors]


def check(hub: "Hub", rows: list[Row]) -> Iterator[tuple[Row, dict[str, Any] | None, str | None]]:
    """Each row with its preview, or the reason it cannot be done (unknown subscription, no route, a
    value the provider's action would refuse)."""
    now = utcnow()
    with hub.store.session() as session:
        for row in rows:
            try:
                sub = apply.find(session, row.subscription)
                apply.plan(sub, row.request)
                yield row, preview(session, sub, row.request, now), None
            except (LookupError, apply.ChangeError, PreviewError) as exc:
                yield row, None, str(exc)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run(hub: "Hub", rows: list[Row], progress: Callable[[int, int], None] | None = None
        ) -> list[dict[str, Any]]:
    """Apply the rows, ``CHUNK`` at a time (one transaction each: an interruption loses no row of a
    committed chunk and repeats none), paced at each provider's rate limit (``apply.Pacer``); one
    result per row: the change's id and status, and whether it is new."""
    results: list[dict[str, Any]] = []
    pacer = apply.Pacer(hub.settings)
    for chunk in _chunks(rows, CHUNK):
        planned = apply.submit_many(hub, [(row.subscription, row.request) for row in chunk], origin="batch",
                                    pacer=pacer)
        for row, found in zip(chunk, planned):
            # an error here: the row was checked, but its subscription changed since (erased...)
            results.append({"line": row.line, "subscription": row.subscription, "change": row.request["change"],
                            "id": found.get("id"), "status": found.get("status") or "error",
                            "new": found.get("new", False), "error": found.get("error", "")})
            if progress:
                progress(len(results), len(rows))
    return results


def write_results(path: Path, results: list[dict[str, Any]]) -> Path:
    out = path.with_name(path.stem + ".results.csv")
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", "subscription", "change", "id", "status", "new", "error"])
        writer.writeheader()
        writer.writerows(results)
    return out


# -- stored batches (the API) ---------------------------------------------------------------------------------
def _stored(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in request.items() if v is not None}


def create(hub: "Hub", name: str, rows: list[Row]) -> int:
    """Store a checked batch; its rows are planned by ``run_stored`` (a job)."""
    now = utcnow()
    with hub.store.session() as session:
        batch = ChangeBatch(name=name, status=BatchStatus.RUNNING, total=len(rows), created_at=now, updated_at=now)
        session.add(batch)
        session.flush()
        session.add_all([ChangeBatchRow(batch_id=batch.id, line=r.line, subscription=r.subscription,
                                        request=_stored(r.request), status=RowStatus.PENDING) for r in rows])
        return batch.id


def enqueue(hub: "Hub", batch_id: int, *, again: bool = False) -> bool:
    """The job that plans a stored batch (``hub.tasks.apply_change_batch``); ``again``: its earlier
    job is gone (its worker killed, Redis flushed), so a new one takes its place."""
    job_id = f"changes-batch-{batch_id}"
    if again:
        if jobs.job_alive(hub.redis, job_id):
            return False
        jobs.forget(hub.redis, job_id)
    return jobs.enqueue_once(hub.redis, jobs.INGEST_QUEUE, "hub.tasks.apply_change_batch", batch_id, job_id)


def requeue_stranded(hub: "Hub", older_than: datetime) -> int:
    """Enqueue again the batches still being planned, untouched since ``older_than``, whose job is
    gone (the sweeper calls this; a batch run again plans only its rows left). Returns how many."""
    with hub.store.session() as session:
        stuck = session.execute(select(ChangeBatch.id).where(ChangeBatch.status == BatchStatus.RUNNING,
                                                             ChangeBatch.updated_at < older_than)).scalars().all()
    return sum(enqueue(hub, batch_id, again=True) for batch_id in stuck)


def run_stored(hub: "Hub", batch_id: int) -> str | None:
    """Plan the batch's pending rows in line order, ``CHUNK`` at a time through ``apply.submit_many``;
    stop before the next chunk once the batch is cancelled. Run again (another job, after a crash),
    it plans only the rows left. Returns the batch's status."""
    pacer = apply.Pacer(hub.settings)
    while True:
        with hub.store.session() as session:
            batch = session.get(ChangeBatch, batch_id)
            if batch is None:
                return None
            if batch.status == BatchStatus.CANCELLED:
                return batch.status
            chunk = [(row.id, row.subscription, dict(row.request)) for row in session.execute(
                select(ChangeBatchRow).where(ChangeBatchRow.batch_id == batch_id,
                                             ChangeBatchRow.status == RowStatus.PENDING)
                .order_by(ChangeBatchRow.line).limit(CHUNK)).scalars()]
            if not chunk:
                batch.status, batch.updated_at = BatchStatus.PLANNED, utcnow()
                return batch.status
        items, results = [], {}
        for row_id, ref, stored in chunk:
            try:
                items.append((row_id, ref, ChangeRequest().load(stored)))
            except ValidationError as exc:
                results[row_id] = {"status": RowStatus.ERROR, "error": problems(exc)}
        planned = apply.submit_many(hub, [(ref, request) for _, ref, request in items], origin="batch",
                                    pacer=pacer)
        for (row_id, _, _), found in zip(items, planned):
            results[row_id] = ({"status": RowStatus.ERROR, "error": found["error"][:1000]} if "error" in found else
                               {"status": RowStatus.PLANNED, "change_id": found["id"], "new": found["new"]})
        with hub.store.session() as session:
            for row_id, values in results.items():
                session.execute(update(ChangeBatchRow).where(ChangeBatchRow.id == row_id).values(**values))
            session.execute(update(ChangeBatch).where(ChangeBatch.id == batch_id).values(updated_at=utcnow()))


def cancel(hub: "Hub", batch_id: int) -> bool:
    """No further row is planned, and the batch's changes not yet being sent are cancelled. False: no
    such batch."""
    now = utcnow()
    with hub.store.session() as session:
        batch = session.get(ChangeBatch, batch_id, with_for_update=True)
        if batch is None:
            return False
        batch.status, batch.updated_at = BatchStatus.CANCELLED, now
        session.execute(update(ChangeBatchRow).where(ChangeBatchRow.batch_id == batch_id,
                                                     ChangeBatchRow.status == RowStatus.PENDING)
                        .values(status=RowStatus.CANCELLED))
        planned = select(ChangeBatchRow.change_id).where(ChangeBatchRow.batch_id == batch_id,
                                                         ChangeBatchRow.change_id.is_not(None),
                                                         ChangeBatchRow.new.is_(True))
        session.execute(update(Action).where(Action.id.in_(planned), Action.status.in_(CANCELLABLE))
                        .values(status=ActionStatus.CANCELLED, last_error=f"change batch {batch_id} cancelled",
                                updated_at=now))
    return True


def view(hub: "Hub", batch_id: int, *, with_rows: bool = True) -> dict[str, Any] | None:
    """The batch's progress (rows planned, changes by status) and, with ``with_rows``, each row's result."""
    with hub.store.session() as session:
        batch = session.get(ChangeBatch, batch_id)
        if batch is None:
            return None
        rows = session.execute(select(ChangeBatchRow, Action.status, Action.last_error)
                               .outerjoin(Action, Action.id == ChangeBatchRow.change_id)
                               .where(ChangeBatchRow.batch_id == batch_id).order_by(ChangeBatchRow.line)).all()
        by_row = dict(session.execute(select(ChangeBatchRow.status, func.count()).where(
            ChangeBatchRow.batch_id == batch_id).group_by(ChangeBatchRow.status)).all())
        changes: dict[str, int] = {}
        results = []
        for row, change_status, last_error in rows:
            if change_status:
                changes[change_status] = changes.get(change_status, 0) + 1
            results.append({"line": row.line, "subscription": row.subscription, "change": row.request.get("change"),
                            "status": row.status, "id": row.change_id, "change_status": change_status,
                            "new": row.new, "error": row.error or last_error})
        finished = sum(n for s, n in changes.items() if s in ActionStatus.FINISHED)
        out: dict[str, Any] = {
            "id": batch.id, "name": batch.name, "status": batch.status, "total": batch.total,
            "created_at": batch.created_at.isoformat(), "updated_at": batch.updated_at.isoformat(),
            "rows": {s: by_row.get(s, 0) for s in (RowStatus.PENDING, RowStatus.PLANNED, RowStatus.CANCELLED,
                                                     RowStatus.ERROR)},
            "changes": changes,
            "progress": round((finished + by_row.get(RowStatus.ERROR, 0) + by_row.get(RowStatus.CANCELLED, 0))
                              / batch.total, 4) if batch.total else 1.0,
        }
        if with_rows:
            out["results"] = results
        return out


def parse_body(text: str, name: str, mimetype: str, json_rows: list[Any] | None
               ) -> tuple[list[Row], list[Problem]]:
    """The rows of an API batch: CSV text, or JSON rows."""
    if mimetype == "text/csv":
        return read_csv(io.StringIO(text, newline=""), name)
    return read_json(json_rows or [], name)
