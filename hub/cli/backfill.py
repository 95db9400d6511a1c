"""``hub backfill CONNECTOR``: bring a provider's history in (hub/backfill.py, docs/backfill.md)."""

from __future__ import annotations

import json
import sys
import time
from datetime import timezone
from typing import Any

import click

import connectors
from hub import backfill
from hub.kernel.errors import ActionError
from hub.kernel.values import parse_time
from hub.rules import parse_duration
from hub.runtime import current
from hub.store import utcnow


class ProgressDisplay:
    """A bar with counts and ETA on a terminal; one plain line per page otherwise (logs, CI)."""

    def __init__(self, tty: bool):
        self.tty = tty
        self.began = time.monotonic()
        self._bar: Any = None

    def __call__(self, p: backfill.Progress) -> None:
        c = p.counts
        text = (f"{p.connector} {p.phase} ({min(p.phase_index + 1, p.phases)}/{p.phases}) page {p.pages}: "
                f"{c.fetched} read, {c.recorded} new, {c.present} present, {c.skipped} skipped (historic)")
        elapsed = time.monotonic() - self.began
        eta = elapsed * (1 - p.done) / p.done if 0 < p.done < 1 else 0.0
        if not self.tty:
            click.echo(f"{text}, {p.done:.0%} done, ETA {eta:.0f}s" if not p.finished else text)
            return
        if self._bar is None:
            self._bar = click.progressbar(length=1000, show_eta=True, show_percent=True, width=24,
                                          file=sys.stderr)
            self._bar.__enter__()
        self._bar.label = text
        self._bar.update(int(p.done * 1000) - self._bar.pos)
        if p.finished:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.command("backfill")
@click.argument("connector_name")
@click.option("--since", default=None, help="How far back: 90d, 12w, 36h (default 90d).")
@click.option("--from", "from_", default=None, help="Start date (ISO 8601, e.g. 2025-01-01).")
@click.option("--resume", is_flag=True, help="Continue the unfinished backfill where it stopped.")
@click.option("--dry-run", is_flag=True, help="Read and count; record nothing, move no cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
def backfill_cmd(connector_name: str, since: str | None, from_: str | None, resume: bool, dry_run: bool,
                 as_json: bool) -> None:
    """Read CONNECTOR's history (its events API, then its list endpoints) into the hub.

    Facts the hub already holds (from webhooks or an earlier run) are skipped; actions the rules
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
    run = backfill.Run(hub, connector, dry_run=dry_run, on_progress=ProgressDisplay(sys.stderr.isatty()))
    try:
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
