"""Operator commands for destinations: ``hub connectors``, ``hub connectors test NAME``, ``hub send``."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import click

import connectors
from hub import sync
from hub.cli.options import hub_url
from hub.kernel.errors import ActionError, CredentialsError
from hub.outbound import deliver
from hub.outbound.circuit import Credentials
from hub.runtime import current
from hub.status import connector_status


def _circuit_text(circuit: Any) -> str:
    if not isinstance(circuit, dict):
        return str(circuit or "")
    text = circuit["state"]
    if circuit["state"] != "closed" and "probe_in" in circuit:
        text += f" (probe in {circuit['probe_in']}s)"
    elif circuit.get("failures"):
        text += f" ({circuit['failures']} failures)"
    return text


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per connector.")
@hub_url
@click.pass_context
def connectors_cmd(ctx: click.Context, as_json: bool, url: str) -> None:
    """Each connector's configuration, credentials and circuit.

    Inbound configured or not, outbound live or dry-run, credentials, circuit and rate limit.

    With the embedded queue (no HUB_REDIS_URL) the running hub answers, through its API: its
    configuration and state, not this terminal's environment.
    """
    if ctx.invoked_subcommand is not None:
        return
    from hub.cli import remote

    if remote.embedded():
        rows = remote.call(url, "GET", "/api/connectors")
    else:
        hub = current()
        rows = [connector_status(hub, c) for c in connectors.REGISTRY.values()]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True, default=str))
        return
    columns = ["name", "inbound", "outbound", "credentials", "circuit", "rate_limit"]
    table = []
    for row in rows:
        limits = row.get("rate_limit")
        shown = {**row, "circuit": _circuit_text(row.get("circuit")),
                 "rate_limit": ", ".join(f"{b}={v}" for b, v in limits.items()) if isinstance(limits, dict)
                 else (limits or "")}
        if row.get("paused"):
            shown["rate_limit"] += " (paused " + ", ".join(f"{b} {s}s" for b, s in row["paused"].items()) + ")"
        table.append({c: str(shown.get(c) or "") for c in columns})
    widths = {c: max([len(c)] + [len(r[c]) for r in table]) for c in columns}
    click.echo("  ".join(c.upper().replace("_", " ").ljust(widths[c]) for c in columns).rstrip())
    for r in table:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())


@connectors_cmd.command("test")
@click.argument("name")
def test_cmd(name: str) -> None:
    """Check NAME's credentials with a harmless call.

    An authenticated read that changes nothing; it clears or sets the invalid-credentials mark."""
    hub = current()
    connector = connectors.get(name)
    if connector is None or not connector.actions:
        raise click.ClickException(f"no outbound connector named {name!r} "
                                   f"(known: {', '.join(n for n, c in connectors.REGISTRY.items() if c.actions)})")
    if connector.dry_run(hub.settings):
        missing = [n for n in connector.outbound_settings if not hub.settings[n]]
        raise click.ClickException(f"{name} runs dry: set {', '.join(missing)} to send for real")
    credentials = Credentials(hub.redis)
    try:
        outcome = connector.check(connector.client(hub.settings))
    except CredentialsError as exc:
        credentials.mark_invalid(name, exc.status, hub.scrub(str(exc)))
        raise click.ClickException(f"{name}: credentials refused: {hub.scrub(str(exc))}")
    except ActionError as exc:
        raise click.ClickException(f"{name}: check failed: {hub.scrub(str(exc))}")
    credentials.clear(name)
    click.echo(f"{name}: ok (HTTP {outcome.status_code}, {outcome.request.get('method')} "
               f"{outcome.request.get('url')})")


@click.command()
@click.argument("action")
@click.option("--params", "params_json", default="{}", show_default=True, help="The action's parameters as JSON.")
@click.option("--key", default=None, help="Idempotency key sent to the provider (default: a new one).")
@click.option("--no-wait", is_flag=True, help="Report a rate-limit or circuit wait instead of waiting.")
def send(action: str, params_json: str, key: str | None, no_wait: bool) -> None:
    """Perform one action now and print the outcome.

    ACTION is e.g. activecampaign.add_tag; the outcome is printed as one JSON object. It goes through the same validation, circuit, rate limit and client as the workers; nothing is
    written to the outbox.
    """
    try:
        params = json.loads(params_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--params")
    if not isinstance(params, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--params")
    hub = current()
    try:
        result = deliver.perform(hub, action, params, key or f"send:{uuid.uuid4()}", wait=not no_wait)
    except ActionError as exc:
        raise click.ClickException(hub.scrub(str(exc)))
    click.echo(json.dumps(result, indent=2, sort_keys=True, default=str))
    if result["outcome"] not in ("ok", "dry_run"):
        sys.exit(1)


connectors_cmd.name = "connectors"
# -- webhook subscriptions at the providers (hub/sync.py, docs/backfill.md) -----------------------
@connectors_cmd.command("register")
@click.argument("name")
@click.option("--url", "public_url", default=None,
              help="The hub's public base URL (default HUB_PUBLIC_URL); webhooks go to URL/webhooks/NAME.")
def register_cmd(name: str, public_url: str | None) -> None:
    """Create or update NAME's webhook subscription.

    Once: a second run updates it. The signing secret the provider returns is stored; for providers
    without such an API, the steps to follow are printed."""
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
    for key in ("detail", "secret", "warning"):
        if key in result:
            click.echo(f"  {key}: {result[key]}")


@connectors_cmd.command("health")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per connector.")
def health_cmd(as_json: bool) -> None:
    """Check webhook subscriptions and fetch missed events.

    Missing subscriptions are re-created; events the webhooks missed are read from the provider and
    recorded (gap repair)."""
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


COMMANDS = [connectors_cmd, send]
