"""``hub subscribers show|conflicts|merge|unmerge``: profiles and identity."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from hub.cli.options import json_option, window
from hub.runtime import current
from hub.subscribers import identity, profile


@click.group()
def subscribers() -> None:
    """Subscriber profiles and identity (merges, conflicts)."""


@subscribers.command()
@click.argument("key")
@click.option("--timeline", default=20, show_default=True, help="How many recent events to show.")
@click.option("--json", "as_json", is_flag=True, help="The profile as one JSON object.")
def show(key: str, timeline: int, as_json: bool) -> None:
    """Show a subscriber's profile and timeline.

    KEY is a subscriber id or an e-mail address."""
    with current().store.session() as session:
        found = profile.show(session, key, timeline=timeline)
    if found is None:
        click.echo(f"no subscriber {key!r}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(found, sort_keys=True, default=str))  # one object, one line
        return
    _print_profile(found)


def _money(value: dict[str, Any] | None) -> str:
    return f"{value['minor']} {value['currency']} (minor units)" if value else "-"


def _print_profile(p: dict[str, Any]) -> None:
    name = " ".join(x for x in (p.get("first_name"), p.get("last_name")) if x)
    click.echo(f"subscriber {p['id']}  {p.get('email') or '-'}  {name}")
    click.echo(f"  e-mails:      {', '.join(p.get('emails') or []) or '-'}")
    click.echo(f"  external ids: {', '.join(f'{k}={v}' for k, v in sorted(p['external_ids'].items())) or '-'}")
    click.echo(f"  consent:      {', '.join(f'{k}={v}' for k, v in sorted(p['consent'].items())) or '-'}")
    click.echo(f"  MRR:          {_money(p.get('mrr'))}    total paid: {_money(p.get('total_paid'))}")
    click.echo(f"  loyalty:      {p.get('points') or 0} points, tier {p.get('tier') or '-'}")
    click.echo(f"  lifecycle:    {p.get('lifecycle') or '-'}    segments: {', '.join(p.get('segments') or []) or '-'}")
    click.echo(f"  first seen:   {p.get('first_seen') or '-'}    last engaged: {p.get('last_engaged') or '-'}")
    for s in p["subscriptions"]:
        click.echo(f"  subscription  {s['provider']}:{s['id']}  {s['status']}  MRR {_money(s.get('mrr'))}"
                   f"{'  cancels ' + s['cancel_at'] if s.get('cancel_at') else ''}")
    for m in p["merges"]:
        click.echo(f"  merge {m['id']}: {m['loser_id']} -> {m['winner_id']} ({m['reason']})"
                   f"{' undone' if m['undone_at'] else ''}")
    for c in p["conflicts"]:
        click.echo(f"  conflict {c['id']} with {c['other_id'] if c['subscriber_id'] == p['id'] else c['subscriber_id']}"
                   f": {c['reason']}")
    click.echo("  timeline:")
    for t in p["timeline"]:
        click.echo(f"    {t['time']}  {t['type']:<34} {t['provider']:<14} {t['summary']}")


@subscribers.command()
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved conflicts.")
@window
@json_option("One JSON object per conflict, one a line.")
def conflicts(include_resolved: bool, since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """List subscribers that look like one person, unmerged.

    Each with the reason they were kept apart."""
    with current().store.session() as session:
        found = identity.conflicts(session, include_resolved, since=since, until=until)
    if as_json:
        for row in found:  # one object per line
            click.echo(json.dumps(row, sort_keys=True, default=str))
        return
    if not found:
        click.echo("no identity conflicts")
    for c in found:
        click.echo(f"{c['id']}: subscribers {c['subscriber_id']} and {c['other_id']} "
                   f"({', '.join(e or '-' for e in c['emails'])}): {c['reason']}")


@subscribers.command()
@click.argument("keep", type=int)
@click.argument("other", type=int)
@click.option("--reason", default="merged by an operator", show_default=True, help="Recorded with the merge.")
def merge(keep: int, other: int, reason: str) -> None:
    """Merge subscriber OTHER into KEEP.

    The merge is recorded; `hub subscribers unmerge` undoes it."""
    from sqlalchemy import update

    from hub.store import Subscriber
    from hub.store.subscriber_models import IdentityConflict

    with current().store.session() as session:
        winner, loser = session.get(Subscriber, keep), session.get(Subscriber, other)
        if winner is None or loser is None or winner.merged_into_id or loser.merged_into_id:
            click.echo("both ids must be existing subscribers that are not merged away", err=True)
            sys.exit(1)
        low, high = sorted((keep, other))
        session.execute(update(IdentityConflict).where(IdentityConflict.subscriber_id == low,
                                                       IdentityConflict.other_id == high)
                        .values(resolved_at=_now()))
        identity.merge(session, winner, loser, reason, weights=_weights())
    _refresh(keep)
    click.echo(f"merged {other} into {keep}")


@subscribers.command()
@click.argument("merge_id", type=int)
def unmerge(merge_id: int) -> None:
    """Undo merge MERGE_ID.

    The two subscribers are separated again and kept apart."""
    with current().store.session() as session:
        try:
            winner, loser = identity.unmerge(session, merge_id, _weights())
        except identity.ProfileError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        ids = (winner.id, loser.id)
    _refresh(*ids)
    click.echo(f"merge {merge_id} undone: subscribers {ids[0]} and {ids[1]} are separate again")


def _weights() -> Any:
    """The engagement weights of the running segments config (a merge rebuilds the score with them)."""
    from hub.segments import config as config_mod

    return config_mod.current(current().settings["HUB_RULES_PATH"]).engagement


def _now() -> Any:
    from hub.store import utcnow

    return utcnow()


def _refresh(*ids: int) -> None:
    """Re-evaluate segments and tiers for subscribers whose records changed hands."""
    from hub.kpis import Rates
    from hub.segments import config as config_mod
    from hub.segments.engine import refresh_one
    from hub.store import Subscriber

    hub = current()
    config = config_mod.current(hub.settings["HUB_RULES_PATH"])
    with hub.store.session() as session:
        for sid in ids:
            subscriber = session.get(Subscriber, sid)
            if subscriber is not None:
                refresh_one(hub, session, subscriber, config, Rates.from_settings(hub.settings), None, _now())


COMMANDS = [subscribers]
