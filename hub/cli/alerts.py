"""``hub alerts check``: evaluate the alerts now (the scheduler does it every HUB_ALERT_INTERVAL_SECONDS)."""

from __future__ import annotations

import json

import click

from hub.cli.options import json_option
from hub.runtime import current


@click.group("alerts")
def group() -> None:
    """Evaluate the operational and business alerts now.

    Business thresholds live in rules/alerts.yaml; what each alert means: docs/operations.md."""


@group.command("check")
@click.option("--all", "show_all", is_flag=True, help="List every reading, not only those past a threshold.")
@json_option("One JSON object per reading, then one per alert raised or resolved, one a line.")
def check(show_all: bool, as_json: bool) -> None:
    """Evaluate every alert and list the readings.

    What was raised or resolved is recorded (as alert.raised / alert.resolved events)."""
    from hub import alerts
    from hub.store import utcnow

    hub = current()
    now = utcnow()
    config = alerts.load_config(hub.settings["HUB_RULES_PATH"])
    for r in alerts.operational(hub, config, now) + alerts.business(hub, config, now):
        if (show_all or r.firing) and as_json:
            click.echo(json.dumps({"key": r.key, "alert": r.alert, "subject": r.subject, "value": r.value,
                                   "firing": r.firing, "severity": r.severity, "kind": r.kind,
                                   "summary": r.summary}, sort_keys=True, default=str))
        elif show_all or r.firing:
            click.echo(f"{'FIRING' if r.firing else 'ok':7} {r.key}: {r.summary}")
    for event in alerts.evaluate(hub, now):
        click.echo(json.dumps({"event": event.type, "key": event.subject}, sort_keys=True) if as_json
                   else f"{event.type} {event.subject}")


COMMANDS = [group]
