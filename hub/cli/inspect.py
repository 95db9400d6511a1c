"""Operator commands: list what the hub holds, normalize a payload, import events, replay."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

import connectors
from connectors.base import RawDelivery
from hub import queries
from hub.cli.options import hub_url, json_option, window
from hub.kernel.errors import PayloadError
from hub.runtime import current
from hub.store import utcnow
from hub.store.models import ActionStatus


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
@click.option("--subscriber", type=int, help="Only this subscriber's events (id).")
@window
@click.option("--limit", default=50, show_default=True, help="At most this many rows.")
@json_option()
def events(type_: str | None, subscriber: int | None, since: datetime | None, until: datetime | None, limit: int,
           as_json: bool) -> None:
    """List canonical events, newest first."""
    rows = queries.list_events(current(), type_=type_, subscriber_id=subscriber, since=since, until=until,
                               limit=limit)
    _print(rows, as_json, ["time", "type", "provider", "provider_type", "subscriber_id", "id"])


@click.command()
@click.option("--connector", help="Only this connector's deliveries.")
@click.option("--status", type=click.Choice(["received", "processed", "failed", "redacted"]), help="Only this status.")
@window
@click.option("--limit", default=50, show_default=True, help="At most this many rows.")
@json_option()
def deliveries(connector: str | None, status: str | None, since: datetime | None, until: datetime | None,
               limit: int, as_json: bool) -> None:
    """List stored webhook deliveries (failed ones show why)."""
    rows = queries.list_deliveries(current(), connector=connector, status=status, since=since, until=until,
                                   limit=limit)
    _print(rows, as_json, ["id", "connector", "status", "event_count", "received_at", "error"])


@click.command()
@click.option("--status", type=click.Choice(ActionStatus.ALL),
              help="Only this status (dry_run: finished without sending, the connector has no credentials).")
@click.option("--connector", help="Only this connector's actions.")
@click.option("--rule", help="Only actions planned by this rule id.")
@window
@click.option("--limit", default=50, show_default=True, help="At most this many rows.")
@json_option("One JSON object per line, with every attempt and the exact request.")
def actions(status: str | None, connector: str | None, rule: str | None, since: datetime | None,
            until: datetime | None, limit: int, as_json: bool) -> None:
    """List planned actions and their outcome (the outbox).

    --json adds every attempt and the exact request sent."""
    rows = queries.list_actions(current(), status=status, connector=connector, rule=rule, since=since, until=until,
                                limit=limit, with_attempts=as_json)
    _print(rows, as_json, ["id", "action", "status", "rule_id", "due_at", "attempts", "last_status_code",
                           "last_error"])


@click.command()
@click.argument("kind", type=click.Choice(["actions", "deliveries"]))
@click.argument("ids", nargs=-1, type=int)
@click.option("--status", type=click.Choice(["failed", "dead"]),
              help="Replay every row with this status (actions: failed or dead; deliveries: failed).")
@window
@hub_url
@json_option("The counts as one JSON object.")
def replay(kind: str, ids: tuple[int, ...], status: str | None, since: datetime | None, until: datetime | None,
           url: str, as_json: bool) -> None:
    """Re-queue failed or dead actions, or re-process deliveries.

    By id, or every one with --status (actions: failed or dead; deliveries: failed), in the --since/--until
    window. With the embedded queue (no HUB_REDIS_URL) the running hub does the replay, through its API,
    so it takes effect at once.
    """
    if not ids and not status:
        raise click.UsageError("give ids or --status")
    if status and status not in queries.REPLAYABLE[kind]:
        raise click.BadParameter(f"{kind} replay {' or '.join(queries.REPLAYABLE[kind])}, not {status!r}",
                                 param_hint="--status")
    from hub.cli import remote

    if remote.embedded():
        body = {"kind": kind, "ids": list(ids), "status": status,
                "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
        report = remote.call(url, "POST", "/api/replay", json={k: v for k, v in body.items() if v not in (None, [])})
    else:
        from hub.cli.progress import progress

        replay_ = queries.replay_deliveries if kind == "deliveries" else queries.replay_actions
        with progress(f"replay {kind}", 0) as advance:
            report = replay_(current(), ids, status=status, since=since, until=until,
                             progress=lambda done, total: advance(done, total=total))
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    click.echo(f"replayed {report['replayed']} {kind}, {report['already_pending']} already pending, "
               f"{report['skipped']} skipped (not failed{' or dead' if kind == 'actions' else ''}, or unknown)")


@click.command()
@click.argument("connector_name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-H", "--header", "headers", multiple=True, help='A request header, "Name: value".')
def normalize(connector_name: str, file: str, headers: tuple[str, ...]) -> None:
    """Print the canonical events a payload becomes.

    One JSON object per event, one a line; the signature is not checked."""
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


IMPORT_BATCH = 500  # events per transaction: progress per batch, and a crash keeps the batches done


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option("The counts as one JSON object.")
def import_(file: str, as_json: bool) -> None:
    """Record canonical events from JSON lines (backfills).

    Events whose id is known are skipped. Steps of events older than the playbook's missed_horizon are recorded as skipped-historic, never
    sent; the summary counts events imported and already present, and actions planned and skipped.
    Events are recorded in batches of 500, each in its own transaction: after an interruption, run
    the same import again (what was recorded is skipped)."""
    from collections import Counter

    from marshmallow import ValidationError
    from sqlalchemy import func, select

    from hub.cli.progress import progress
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
    imported = present = planned = 0
    skipped: Counter[str] = Counter()
    with progress("import", len(events)) as advance:
        for start in range(0, len(events), IMPORT_BATCH):
            batch = events[start:start + IMPORT_BATCH]
            ids = list({e.id for e in batch})
            with hub.store.session() as session:
                known = set(session.execute(select(Event.id).where(Event.id.in_(ids))).scalars())
                due = record_events(hub, session, batch, origin="import")
                why = dict(session.execute(select(Action.suppressed, func.count()).where(
                    Action.id.in_(due), Action.status == ActionStatus.SUPPRESSED).group_by(Action.suppressed)
                ).all()) if due else {}
            outbox.dispatch(hub, due)
            imported, present = imported + len(ids) - len(known), present + len(known)
            planned += len(due) - sum(why.values())
            skipped.update(why)
            advance(start + len(batch), f"{imported} new, {present} already present")
    if as_json:
        click.echo(json.dumps({"imported": imported, "present": present, "planned": planned,
                               "skipped": sum(skipped.values()), "skipped_by": dict(skipped)}, sort_keys=True))
        return
    why = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
    click.echo(f"imported {imported} events, {present} already present; {planned} new actions planned, "
               f"{sum(skipped.values())} skipped" + (f" ({why})" if why else ""))


COMMANDS = [events, deliveries, actions, replay, normalize, import_]
