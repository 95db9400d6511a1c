"""``hub rules check`` and ``hub rules simulate``: validate rules files; show what they would do."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from hub.cli.options import hub_url
from hub.kernel.events import CanonicalEvent


@click.group()
def rules() -> None:
    """Rules files: check, simulate, and the running hub's status."""


def _default_paths() -> list[str]:
    from hub.config import load_settings
    from hub.rules.loader import as_paths

    return as_paths(load_settings()["HUB_RULES_PATH"])


@rules.command()
@click.argument("paths", nargs=-1, type=click.Path())
def check(paths: tuple[str, ...]) -> None:
    """Validate every file the hub loads from the rules paths.

    PATHS default to HUB_RULES_PATH: rules, vars, segments, tiers and loyalty. Exit 1 listing every
    error as path:line:col."""
    from hub.check import check as run

    summary, errors = run(list(paths) or _default_paths())
    if errors:
        for error in errors:
            click.echo(error, err=True)
        click.echo(f"{len(errors)} error{'s' if len(errors) != 1 else ''}", err=True)
        sys.exit(1)
    click.echo(summary)


@rules.command()
@hub_url
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
def status(url: str, as_json: bool) -> None:
    """The rules the running hub runs.

    Version, files, load time, and the last change it refused."""
    from hub.cli import remote

    report = remote.call(url, "GET", "/api/rules")
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    click.echo(f"version {report['version']}: {report['rules']} rules in {len(report['files'])} files, "
               f"loaded {report['loaded_at']}")
    refused = report.get("last_refused")
    if refused:
        click.echo(f"last change refused at {refused['at']} (the rules above stay in force):")
        for error in refused["errors"]:
            click.echo(f"  {error}")
    else:
        click.echo("no change refused")


def _read_events(file: str) -> list[CanonicalEvent]:
    from marshmallow import ValidationError

    stream = sys.stdin if file == "-" else open(file)
    events = []
    with stream:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                events.append(CanonicalEvent.from_dict(json.loads(line)))
            except (ValueError, TypeError, ValidationError) as exc:
                raise click.ClickException(f"{file}:{n}: not a canonical event: {exc}")
    return events


@rules.command()
@click.option("--events", "events_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Canonical events as JSON lines (what `hub normalize` prints, or an export).")
@click.option("--rules", "rules_paths", multiple=True, type=click.Path(exists=True),
              help="Rules files or folders (default: HUB_RULES_PATH). Repeatable.")
@click.option("--now", "now_text", metavar="TIME", help="Plan every event at this RFC 3339 time (default: each at its own time).")
@click.option("--table", is_flag=True, help="A readable table instead of JSON lines.")
@click.option("--from-store", is_flag=True, help="Use the events stored in the hub's database.")
@click.option("--since", default="7d", show_default=True, metavar="AGE", help="With --from-store: how far back (7d, 12h).")
def simulate(events_file: str | None, rules_paths: tuple[str, ...], now_text: str | None, table: bool,
             from_store: bool, since: str) -> None:
    """Every action the rules would plan for these events.

    A dry run: nothing is sent or stored."""
    from hub.kernel.values import parse_time
    from hub.rules import LocatedError, load_rules, parse_duration
    from hub.simulate import simulate as run
    from hub.simulate import stored_events

    if bool(events_file) == from_store:
        raise click.UsageError("give --events FILE or --from-store")
    try:
        ruleset = load_rules(list(rules_paths) or _default_paths())
    except LocatedError as exc:
        raise click.ClickException("the rules do not load:\n" + "\n".join(exc.errors))
    now: datetime | None = None
    if now_text:
        try:
            now = parse_time(now_text)
        except ValueError:
            raise click.BadParameter(f"not an RFC 3339 time: {now_text!r}", param_hint="--now")
    if from_store:
        from hub.runtime import current
        from hub.store import utcnow

        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since")
        events = stored_events(current(), (now or utcnow()) - window)
    else:
        events = _read_events(str(events_file))
    results = run(events, ruleset, now=now)
    if not table:
        for item in results:
            click.echo(json.dumps(item.to_dict(), default=str))
        return
    _table([r.to_dict() for r in results])
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    delayed = sum(1 for r in results if r.delayed)
    click.echo(f"\n{len(events)} events, {len(results)} actions: " + ", ".join(f"{n} {s}" for s, n in counts.items())
               + (f" ({delayed} delayed by quiet hours)" if delayed else ""))


def _table(rows: list[dict]) -> None:
    columns = ["due_at", "rule", "step", "action", "subject", "status", "reason"]
    widest = {"reason": 200}
    shown = [{c: ("" if r.get(c) is None else str(r[c]))[:widest.get(c, 40)] for c in columns} for r in rows]
    widths = {c: max([len(c)] + [len(r[c]) for r in shown]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in shown:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())


@rules.command()
@click.argument("rule_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def report(rule_id: str, as_json: bool) -> None:
    """A rule's split variants and their conversions.

    Per variant: steps planned and sent, goal conversions and the conversion rate."""
    from hub.rules.goals import report as build
    from hub.runtime import current

    with current().store.session() as session:
        found = build(session, rule_id)
    if not found["variants"]:
        raise click.ClickException(f"no actions of rule {rule_id!r}")
    if as_json:
        click.echo(json.dumps(found))
        return
    click.echo(f"rule {rule_id}" + (f"  goal: {found['goal']}" if found["goal"] else "  (no goal)"))
    rows = [["variant", "planned", "sent", "converted", "rate"]] + [
        [str(v["variant"] or "-"), str(v["planned"]), str(v["sent"]), str(v["converted"]),
         "-" if v["conversion_rate"] is None else f"{v['conversion_rate'] * 100:.1f}%"] for v in found["variants"]]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                             enumerate(zip(row, widths))).rstrip())


COMMANDS = [rules]
__all__ = ["COMMANDS", "Path"]
