"""``hub alerts check``: evaluate the alerts now (the scheduler does it every HUB_ALERT_INTERVAL_SECONDS)."""

from __future__ import annotations

import click

from hub.runtime import current


@click.group("alerts")
def group() -> None:
    """Operational and business alerts (rules/alerts.yaml, docs/operations.md)."""


@group.command("check")
@click.option("--all", "show_all", is_flag=True, help="List every reading, not only those past a threshold.")
def check(show_all: bool) -> None:
    """Evaluate every alert now, record what was raised or resolved, and list the readings."""
    from hub import alerts
    from hub.store import utcnow

    hub = current()
    now = utcnow()
    config = alerts.load_config(hub.settings["HUB_RULES_PATH"])
    for r in alerts.operational(hub, config, now) + alerts.business(hub, config, now):
        if show_all or r.firing:
            click.echo(f"{'FIRING' if r.firing else 'ok':7} {r.key}: {r.summary}")
    for event in alerts.evaluate(hub, now):
        click.echo(f"{event.type} {event.subject}")


COMMANDS = [group]
