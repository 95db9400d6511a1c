"""``hub db upgrade``."""

from __future__ import annotations

import click

from hub.runtime import current


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply the migrations (creates the SQLite file in embedded mode)."""
    from hub.store.migrate import upgrade as run_upgrade

    hub = current()
    run_upgrade(hub.store)
    click.echo(f"database at {hub.store.engine.url.render_as_string()} is up to date", err=True)


COMMANDS = [db]
