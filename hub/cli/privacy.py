"""``hub privacy``: export what the hub holds for a person, erase it, list what was erased."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import click
from sqlalchemy import select

from hub.cli.options import json_option, window
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import rfc3339
from hub.outbound import outbox
from hub.runtime import current
from hub.store import utcnow
from hub.store.privacy_models import DataExport, Redaction
from hub.subscribers import privacy


def _subscriber_id(session, ref: str) -> int:  # type: ignore[no-untyped-def]
    found = privacy.find_subscriber_id(session, ref)
    if found is None:
        raise click.ClickException(f"no subscriber {ref!r} (give a subscriber id or an e-mail address)")
    return found


@click.group("privacy")
def group() -> None:
    """Data requests and erasure: export, redact, redactions.

    What GDPR and CCPA requests need: everything held for a person, its erasure, and the record of
    erasures."""


@group.command("export")
@click.argument("ref", metavar="ID|EMAIL")
@click.option("--stored", is_flag=True, help="Print the newest export stored by a data request instead.")
def export_(ref: str, stored: bool) -> None:
    """Print everything the hub holds for a subscriber as JSON."""
    hub = current()
    with hub.store.session() as session:
        sid = _subscriber_id(session, ref)
        if stored:
            row = session.execute(select(DataExport).where(DataExport.subscriber_id == sid)
                                  .order_by(DataExport.id.desc())).scalars().first()
            if row is None:
                raise click.ClickException(f"no stored export for subscriber {sid}")
            document = row.document
        else:
            document = privacy.export(session, sid)
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


@group.command("redact")
@click.argument("ref", metavar="ID|EMAIL")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def redact(ref: str, yes: bool) -> None:
    """Erase a subscriber's personal data everywhere.

    As a provider's erasure request would."""
    from hub.ingest.pipeline import record_events

    hub = current()
    with hub.store.session() as session:
        sid = _subscriber_id(session, ref)
    if not yes:
        click.confirm(f"Erase every personal detail of subscriber {sid}? This cannot be undone", abort=True)
    event = CanonicalEvent(type=EventType.SUBSCRIBER_REDACT_REQUESTED, time=rfc3339(utcnow()),
                           provider="operator", providereventid=f"cli-{uuid.uuid4()}",
                           providertype="hub privacy redact",
                           data={"subscriber": {"hub_id": sid}})
    with hub.store.session() as session:
        due = record_events(hub, session, [event], origin="operator")
        record = session.execute(select(Redaction).where(Redaction.event_id == event.id)).scalar_one()
        counts = dict(record.counts)
    outbox.dispatch(hub, due)
    click.echo(f"redaction {record.id}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@group.command("redactions")
@click.option("--email", help="Only the redactions that covered this e-mail address (matched by its hash).")
@window
@click.option("--limit", default=50, show_default=True, help="At most this many rows.")
@json_option("One JSON object per redaction, one a line.")
def redactions(email: str | None, since: datetime | None, until: datetime | None, limit: int, as_json: bool) -> None:
    """List redaction records, newest first.

    They hold hashes and counts, never personal data."""
    hub = current()
    with hub.store.session() as session:
        query = select(Redaction).order_by(Redaction.id.desc()).limit(limit)
        query = query.where(Redaction.requested_at >= since) if since else query
        query = query.where(Redaction.requested_at < until) if until else query
        rows = list(session.execute(query).scalars())
    if email:
        wanted = privacy.identifier_hash(f"email:{email.strip().casefold()}")
        rows = [r for r in rows if wanted in (r.identifier_hashes or [])]
    for r in rows:
        if not as_json:
            counts = ", ".join(f"{k}={v}" for k, v in sorted((r.counts or {}).items()))
            click.echo(f"{r.id}  {rfc3339(r.requested_at)}  {r.provider or '-'}  subscribers {r.subscriber_ids}  {counts}")
            continue
        click.echo(json.dumps({"id": r.id, "requested_at": rfc3339(r.requested_at), "provider": r.provider,
                               "event_id": r.event_id, "subscriber_ids": r.subscriber_ids, "counts": r.counts,
                               "identifiers_hash": r.identifiers_hash}, sort_keys=True))


COMMANDS = [group]
