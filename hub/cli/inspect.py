"""Operator commands: list what the hub holds, normalize a payload, import events, replay."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import connectors
from connectors.base import RawDelivery
from hub import queries
from hub.kernel.errors import PayloadError
from hub.runtime import current
from hub.store import utcnow


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str, sort_keys=True))
        return
    widths = {c: max([len(c)] + [min(len(str(r.get(c) or "")), 60) for r in rows]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(str(row.get(c, "") if row.get(c) is not None else "")[:60].ljust(widths[c])
                             for c in columns))


@click.command()
@click.option("--type", "type_", help="Event type (glob: subscription.*).")
@click.option("--subscriber", type=int)
@click.option("--since", help="Age such as 7d or 12h.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def events(type_: str | None, subscriber: int | None, since: str | None, limit: int, as_json: bool) -> None:
    """List canonical events, newest first."""
    from hub.rules import parse_duration

    since_at = utcnow() - parse_duration(since) if since else None
    rows = queries.list_events(current(), type_=type_, subscriber_id=subscriber, since=since_at, limit=limit)
    _print(rows, as_json, ["time", "type", "provider", "provider_type", "subscriber_id", "id"])


@click.command()
@click.option("--connector")
@click.option("--status", type=click.Choice(["received", "processed", "failed", "redacted"]))
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def deliveries(connector: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List stored webhook deliveries (failed ones show why)."""
    rows = queries.list_deliveries(current(), connector=connector, status=status, limit=limit)
    _print(rows, as_json, ["id", "connector", "status", "event_count", "received_at", "error"])


@click.command()
@click.option("--status", type=click.Choice(["scheduled", "queued", "sending", "done", "failed", "dead",
                                             "cancelled", "suppressed"]))
@click.option("--connector")
@click.option("--rule")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def actions(status: str | None, connector: str | None, rule: str | None, limit: int, as_json: bool) -> None:
    """List planned actions (the outbox) with their outcome; --json adds every attempt."""
    rows = queries.list_actions(current(), status=status, connector=connector, rule=rule, limit=limit,
                                with_attempts=as_json)
    _print(rows, as_json, ["id", "action", "status", "rule_id", "due_at", "attempts", "last_status_code",
                           "last_error"])


@click.command()
@click.argument("kind", type=click.Choice(["actions", "deliveries"]))
@click.argument("ids", nargs=-1, type=int)
@click.option("--status", help="Replay every row with this status (actions: failed|dead; deliveries: failed).")
def replay(kind: str, ids: tuple[int, ...], status: str | None) -> None:
    """Re-queue dead or failed actions, or re-process failed deliveries, by id or by --status."""
    if not ids and not status:
        raise click.UsageError("give ids or --status")
    hub = current()
    count = (queries.replay_deliveries if kind == "deliveries" else queries.replay_actions)(hub, ids, status=status)
    click.echo(f"replayed {count} {kind}")


@click.command()
@click.argument("connector_name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-H", "--header", "headers", multiple=True, help='A request header, "Name: value".')
def normalize(connector_name: str, file: str, headers: tuple[str, ...]) -> None:
    """Print the canonical events a payload becomes, as JSON lines (no signature check)."""
    connector = connectors.get(connector_name)
    if connector is None:
        raise click.BadParameter(f"unknown connector (known: {', '.join(sorted(connectors.REGISTRY))})")
    body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    parsed = {}
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep:
            raise click.BadParameter(f"header {h!r} is not 'Name: value'")
        parsed[name.strip().lower()] = value.strip()
    try:
        events = connector.normalize(RawDelivery(None, connector_name, parsed, body, utcnow()))
    except PayloadError as exc:
        raise click.ClickException(f"cannot normalize: {exc}")
    for event in events:
        click.echo(json.dumps(event.to_dict(), sort_keys=False))


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def import_(file: str) -> None:
    """Record canonical events from JSON lines (replays and backfills); known ids are skipped.

    Steps of events older than the playbook's missed_horizon are recorded as skipped-historic, never
    sent; the summary counts events imported and already present, and actions planned and skipped."""
    from marshmallow import ValidationError
    from sqlalchemy import func, select

    from hub.ingest.pipeline import record_events
    from hub.kernel.events import CanonicalEvent
    from hub.outbound import outbox
    from hub.store import Action, Event
    from hub.store.models import ActionStatus

    hub = current()
    lines = sys.stdin.read().splitlines() if file == "-" else Path(file).read_text().splitlines()
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(CanonicalEvent.from_dict(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            raise click.ClickException(f"{file}:{n}: not a canonical event: {exc}")
    with hub.store.session() as session:
        ids = list({e.id for e in events})
        present = {i for chunk in range(0, len(ids), 1000) for i in session.execute(
            select(Event.id).where(Event.id.in_(ids[chunk:chunk + 1000]))).scalars()}
        due = record_events(hub, session, events, origin="import")
        skipped = dict(session.execute(select(Action.suppressed, func.count()).where(
            Action.id.in_(due), Action.status == ActionStatus.SUPPRESSED).group_by(Action.suppressed)).all()) \
            if due else {}
    outbox.dispatch(hub, due)
    imported = len(ids) - len(present)
    planned = len(due) - sum(skipped.values())
    why = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
    click.echo(f"imported {imported} events, {len(present)} already present; {planned} new actions planned, "
               f"{sum(skipped.values())} skipped" + (f" ({why})" if why else ""))


COMMANDS = [events, deliveries, actions, replay, normalize, import_]
