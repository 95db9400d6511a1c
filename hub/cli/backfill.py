"""``hub backfill CONNECTOR``: bring a provider's history in (hub/backfill.py, docs/backfill.md)."""

from __future__ import annotations

import json
from datetime import timezone

import click

import connectors
from hub import backfill
from hub.cli.options import json_option
from hub.cli.progress import progress
from hub.kernel.errors import ActionError
from hub.kernel.values import parse_time
from hub.rules import parse_duration
from hub.runtime import current
from hub.store import utcnow


def _detail(p: backfill.Progress) -> str:
    c = p.counts
    return (f"{p.phase} ({min(p.phase_index + 1, p.phases)}/{p.phases}) page {p.pages}: "
            f"{c.fetched} read, {c.recorded} new, {c.present} present, {c.skipped} skipped (historic)")


@click.command("backfill")
@click.argument("connector_name")
@click.option("--since", default=None, metavar="AGE", help="How far back: 90d, 12w, 36h (default 90d).")
@click.option("--from", "from_", default=None, metavar="DATE", help="Start date (ISO 8601, e.g. 2025-01-01).")
@click.option("--resume", is_flag=True, help="Continue the unfinished backfill where it stopped.")
@click.option("--dry-run", is_flag=True, help="Read and count; record nothing, move no cursor.")
@json_option("The final counts as one JSON object.")
def backfill_cmd(connector_name: str, since: str | None, from_: str | None, resume: bool, dry_run: bool,
                 as_json: bool) -> None:
    """Bring a provider's history in through its API.

    CONNECTOR's events API is read first, then its list endpoints. Facts the hub already holds (from webhooks or an earlier run) are skipped; actions the rules
    plan for history older than HUB_BACKFILL_HORIZON_HOURS are recorded as skipped, never sent.
    """
    connector = connectors.get(connector_name)
    if connector is None or connector_name not in backfill.available():
        raise click.BadParameter(f"no backfill for {connector_name!r} (available: {', '.join(backfill.available())})",
                                 param_hint="CONNECTOR")
    if since and from_:
        raise click.UsageError("give --since or --from, not both")
    if resume and (since or from_ or dry_run):
        raise click.UsageError("--resume continues the stored window: no --since, --from or --dry-run with it")
    start = None
    if not resume:
        try:
            start = parse_time(from_) if from_ else utcnow() - parse_duration(since or "90d")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--from" if from_ else "--since")
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
    hub = current()
    try:
        with progress(f"{connector_name} backfill", 1.0, percent=True) as advance:
            run = backfill.Run(hub, connector, dry_run=dry_run, on_progress=lambda p: advance(p.done, _detail(p)))
            counts = run.resume() if resume else run.start(start)  # type: ignore[arg-type]
    except backfill.BackfillError as exc:
        raise click.ClickException(str(exc))
    except ActionError as exc:
        raise click.ClickException(f"{connector_name}: reading failed: {hub.scrub(str(exc))} "
                                   f"(run `hub backfill {connector_name} --resume` to continue)")
    result = {"connector": connector_name, "dry_run": dry_run, **counts.as_dict()}
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    verb = "would record" if dry_run else "recorded"
    click.echo(f"{connector_name}: read {counts.fetched}, {verb} {counts.recorded} new ({counts.events} events), "
               f"{counts.present} already present, {counts.failed} unreadable; actions: {counts.actions} planned, "
               f"{counts.skipped} skipped as historic")


COMMANDS = [backfill_cmd]
