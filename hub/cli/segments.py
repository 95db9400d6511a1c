"""``hub segments list|recompute|reconcile``."""

from __future__ import annotations

import json

import click
from sqlalchemy import func, select

from hub.runtime import current


@click.group()
def segments() -> None:
    """Segments, tiers and their sync to the marketing tools."""


@segments.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per segment, one a line.")
def list_(as_json: bool) -> None:
    """Each segment with its definition and member count."""
    from hub.segments import config as config_mod
    from hub.store.subscriber_models import SegmentMembership

    hub = current()
    config = config_mod.current(hub.settings["HUB_RULES_PATH"])
    with hub.store.session() as session:
        counts = dict(session.execute(select(SegmentMembership.segment, func.count())
                                      .group_by(SegmentMembership.segment)).all())
    out = [{"id": s.id, "kind": "lifecycle" if s.lifecycle else "custom", "members": counts.get(s.id, 0),
            "sync": sorted(s.sync), "defined_at": s.source, "description": s.description} for s in config.segments]
    if as_json:
        for row in out:  # one object per line
            click.echo(json.dumps(row, sort_keys=True))
        return
    for s in out:
        click.echo(f"{s['id']:<20} {s['kind']:<9} {s['members']:>8} members  sync: {', '.join(s['sync']) or '-'}")


@segments.command()
@click.option("--no-sync", is_flag=True, help="Update memberships only; plan no tool updates.")
def recompute(no_sync: bool) -> None:
    """Re-evaluate every subscriber now.

    What the scheduler's sweep does; the counts are printed as one JSON object."""
    from hub.cli.progress import progress
    from hub.segments.sweep import recompute_all
    from hub.store import Subscriber

    hub = current()
    with hub.store.session() as session:
        total = session.execute(select(func.count()).select_from(Subscriber)).scalar_one()
    with progress("segments recompute", total) as step:
        counts = recompute_all(hub, sync=not no_sync, progress=lambda done, _total: step(done))
    click.echo(json.dumps(counts))


@segments.command()
@click.option("--repair", is_flag=True, help="Plan the actions that bring the tools back in line.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object (differences in drift).")
def reconcile(repair: bool, as_json: bool) -> None:
    """Compare what the tools hold with what the hub holds.

    Drift is reported (exit 1), or with --repair put right. List and tag members are read from each
    live tool; dry-run tools and property targets are compared with the hub's record of confirmed
    syncs."""
    from hub.cli.progress import progress
    from hub.segments.sync import reconcile as run

    with progress("segments reconcile", 0) as advance:
        report = run(current(), repair=repair, progress=lambda done, total: advance(done, total=total))
    if as_json:
        click.echo(json.dumps(report, sort_keys=True, default=str))  # one object, one line
    else:
        planned = f", {report['repaired']} actions planned" if repair else ""
        click.echo(f"checked {report['checked']}: {report['in_sync']} in sync, {report['pending']} pending, "
                   f"{len(report['drift'])} drifted{planned}")
        for t in report.get("targets", []):
            if t["method"] == "tool":
                click.echo(f"  {t['target']:<32} read from the tool: {t['in_tool']} held, {t['missing']} missing, "
                           f"{t['extra']} extra, {t['unknown']} not known to the hub (left alone)")
            else:
                click.echo(f"  {t['target']:<32} compared with the sync record ({t['reason']})")
        for d in report["drift"][:200]:
            if d.get("method") == "tool":
                where = "in the segment, not in the tool" if d["kind"] == "missing" else \
                    "in the tool, not in the segment"
                click.echo(f"  {d['kind']:<9} subscriber {d['subscriber_id']} {d['target']}: {where}")
            else:
                click.echo(f"  {d['kind']:<9} subscriber {d['subscriber_id']} {d['target']}: want {d['want']!r}, "
                           f"last sent {d['last_sent']!r} ({d['action_status'] or 'never sent'})")
    raise SystemExit(1 if report["drift"] and not repair else 0)


COMMANDS = [segments]
