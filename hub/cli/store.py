"""``hub db upgrade``."""

from __future__ import annotations

import click

from hub.runtime import current


@click.group()
def db() -> None:
    """Database schema (upgrade)."""


@db.command()
def upgrade() -> None:
    """Apply the migrations.

    In the embedded mode this creates the SQLite file. Then the MRR ledger's per-row cohort figures
    are derived where missing (else the first KPI read after an upgrade does it)."""
    from hub.kpis import ledger
    from hub.store.migrate import upgrade as run_upgrade

    hub = current()
    run_upgrade(hub.store)
    with hub.store.session() as session:
        derived = ledger.derive(session)
    if derived:
        click.echo(f"cohort figures of the MRR ledger derived for {derived} subscribers", err=True)
    click.echo(f"database at {hub.store.engine.url.render_as_string()} is up to date", err=True)


COMMANDS = [db]
