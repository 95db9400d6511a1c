"""Batch changes from a CSV file: one change per row, every row checked before anything runs, then
each applied through the same path as the API (``apply.submit``), idempotent per row, so a second
run of the same file (after an interruption, or ``--resume``) applies only what is not there yet.

Columns: ``subscription`` (``provider:id`` or id), ``change``, and optionally ``effective``,
``plan``, ``plan_amount``, ``quantity``, ``reason``, ``idempotency_key`` (default: the file's name,
the line and the row's content, so an edited row is a new change).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from marshmallow import ValidationError

from hub.changes import apply
from hub.changes.preview import PreviewError, preview
from hub.changes.request import ChangeRequest, problems
from hub.store import utcnow

if TYPE_CHECKING:
    from hub.runtime import Hub

COLUMNS = ("subscription", "change", "effective", "plan", "plan_amount", "quantity", "reason", "idempotency_key")


@dataclass
class Row:
    line: int
    subscription: str
    request: dict[str, Any]


def read(path: Path) -> tuple[list[Row], list[str]]:
    """Every row loaded, or ``file:line: reason`` for each one that is not."""
    rows, errors = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        unknown = set(reader.fieldnames or ()) - set(COLUMNS)
        if not reader.fieldnames or "subscription" not in reader.fieldnames or "change" not in reader.fieldnames:
            return [], [f"{path}:1: the header must name at least subscription and change (columns: "
                        f"{', '.join(COLUMNS)})"]
        if unknown:
            errors.append(f"{path}:1: unknown column(s) {', '.join(sorted(unknown))} (columns: {', '.join(COLUMNS)})")
        for raw in reader:
            line = reader.line_num
            values = {k: v.strip() for k, v in raw.items() if k in COLUMNS and v and v.strip()}
            ref = values.pop("subscription", "")
            if not ref:
                errors.append(f"{path}:{line}: subscription: missing")
                continue
            try:
                request = ChangeRequest().load(values)
            except ValidationError as exc:
                errors.append(f"{path}:{line}: {problems(exc)}")
                continue
            if not request.get("idempotency_key"):
                digest = hashlib.sha256(repr(sorted(raw.items())).encode()).hexdigest()[:16]
                request["idempotency_key"] = f"batch:{path.name}:{line}:{digest}"
            rows.append(Row(line, ref, request))
    return rows, errors


def check(hub: "Hub", path: Path, rows: list[Row]) -> Iterator[tuple[Row, dict[str, Any] | None, str | None]]:
    """Each row with its preview, or the reason it cannot be done (unknown subscription, no route)."""
    now = utcnow()
    with hub.store.session() as session:
        for row in rows:
            try:
                sub = apply.find(session, row.subscription)
                apply.plan(sub, row.request)
                yield row, preview(session, sub, row.request, now), None
            except (LookupError, apply.ChangeError, PreviewError) as exc:
                yield row, None, f"{path}:{row.line}: {exc}"


def run(hub: "Hub", rows: list[Row], progress: Callable[[int, int], None] | None = None
        ) -> list[dict[str, Any]]:
    """Apply each row; one result per row: the change's id and status, and whether it is new."""
    results = []
    for done, row in enumerate(rows, 1):
        found, new = apply.submit(hub, row.subscription, row.request, origin="batch")
        results.append({"line": row.line, "subscription": row.subscription, "change": row.request["change"],
                        "id": found["id"], "status": found["status"], "new": new})
        if progress:
            progress(done, len(rows))
    return results


def write_results(path: Path, results: list[dict[str, Any]]) -> Path:
    out = path.with_name(path.stem + ".results.csv")
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", "subscription", "change", "id", "status", "new"])
        writer.writeheader()
        writer.writerows(results)
    return out
