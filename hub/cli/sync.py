"""``hub connectors register`` and ``hub connectors health`` (hub/sync.py, docs/backfill.md)."""

from __future__ import annotations

import json

import click

from hub import sync
from hub.cli.connectors import connectors_cmd
from hub.kernel.errors import ActionError
from hub.runtime import current


@connectors_cmd.command("register")
@click.argument("name")
@click.option("--url", "public_url", default=None,
              help="The hub's public base URL (default HUB_PUBLIC_URL); webhooks go to URL/webhooks/NAME.")
def register_cmd(name: str, public_url: str | None) -> None:
    """Create or update NAME's webhook subscription at the provider (once: a second run updates it),
    storing the signing secret it returns; for providers without such an API, print the steps."""
    hub = current()
    public_url = public_url or hub.settings["HUB_PUBLIC_URL"]
    if not public_url or not public_url.startswith(("https://", "http://")):
        raise click.BadParameter("give the hub's public base URL, e.g. https://hub.example.com", param_hint="--url")
    try:
        result = sync.register(hub, name, public_url)
    except sync.SyncError as exc:
        raise click.ClickException(str(exc))
    except ActionError as exc:
        raise click.ClickException(f"{name}: {hub.scrub(str(exc))}")
    if result["outcome"] == "manual":
        click.echo(f"{name} has no API the hub can register with; do this once:\n{result['steps']}")
        return
    click.echo(f"{name}: webhook endpoint {result['id']} {result['outcome']} -> {result['url']} "
               f"({result['topics']} event types)")
    for key in ("secret", "warning"):
        if key in result:
            click.echo(f"  {key}: {result[key]}")


@connectors_cmd.command("health")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per connector.")
def health_cmd(as_json: bool) -> None:
    """Check the registered webhook subscriptions and fetch the events webhooks missed (gap repair)."""
    hub = current()
    reports = sync.health(hub)
    if as_json:
        for report in reports:
            click.echo(json.dumps(report, sort_keys=True, default=str))
        return
    for r in reports:
        sub, gaps = r["subscription"], r["gaps"]
        state = sub.get("status", "")
        if "repair" in sub:
            state += f" -> re-registered ({sub['repair']['outcome']})"
        if "error" in sub:
            state += f" ({sub['error']})"
        gap = (gaps.get("error") or gaps.get("note") or
               f"{gaps['checked']} recent events checked, {gaps['missing']} missing recorded "
               f"({gaps['actions']} actions, {gaps['skipped']} skipped as historic)")
        click.echo(f"{r['connector']:<15} subscription: {state}; gaps: {gap}")


COMMANDS: list[click.Command] = []
