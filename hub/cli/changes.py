"""``hub changes apply FILE.csv``: subscription changes in bulk (docs/changes.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hub.cli.options import json_option
from hub.cli.progress import progress
from hub.runtime import current


@click.group()
def changes() -> None:
    """Subscription changes in bulk from a CSV file.

    Pause, resume, cancel, change plan or quantity, whatever the provider (docs/changes.md)."""


@changes.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and show what it would do; apply nothing.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run (rows already applied are skipped; "
              "every run is idempotent per row, this only says so in the output).")
@json_option("One JSON object per row.")
def apply_cmd(file: Path, dry_run: bool, resume: bool, as_json: bool) -> None:
    """Apply FILE.csv, one change per row.

    Every row is checked first; any error is printed as FILE:LINE: reason, and nothing is applied
    (exit 2). Results are written beside FILE as FILE.results.csv."""
    from hub.changes import batch

    hub = current()
    rows, errors = batch.read(file)
    checked = list(batch.check(hub, rows))
    errors += [f"{file}:{row.line}: {e}" for row, _, e in checked if e]
    if errors:
        click.echo("\n".join(errors), err=True)
        click.echo(f"hub: {len(errors)} bad row(s); nothing applied", err=True)
        sys.exit(2)
    if dry_run:
        for row, shown, _ in checked:
            click.echo(json.dumps({"line": row.line, **(shown or {})}) if as_json else
                       f"{file}:{row.line}: {row.request['change']} {row.subscription}: "
                       f"{(shown or {}).get('charge_per_period')}, proration {((shown or {}).get('proration') or {}).get('amount')}")
        click.echo(f"{len(rows)} row(s) checked; nothing applied (dry run)", err=True)
        return
    with progress("changes apply", len(rows)) as advance:
        results = batch.run(hub, rows, lambda done, _total: advance(done))
    out = batch.write_results(file, results)
    for r in results:
        if as_json:
            click.echo(json.dumps(r))
    new = sum(r["new"] for r in results)
    failed = [r for r in results if r["status"] == "error"]
    for r in failed:
        click.echo(f"{file}:{r['line']}: {r['error']}", err=True)
    click.echo(f"applied {new} new change(s), {len(results) - new - len(failed)} already present"
               f"{f', {len(failed)} not applied' if failed else ''}{' (resumed)' if resume else ''}; "
               f"results in {out}", err=True)
    if failed:
        sys.exit(1)


COMMANDS = [changes]
