"""``hub post`` (send a signed webhook to a running hub) and ``hub config`` (check, document)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import requests

import connectors
from hub.cli.errors import RunningHubError
from hub.cli.options import hub_url
from hub.config import load_settings, markdown_table


@click.command()
@click.argument("connector_name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@hub_url
@click.option("-H", "--header", "headers", multiple=True, help='An extra header, "Name: value" (e.g. the topic).')
@click.option("--now", is_flag=True, help="Date the event now (Stripe `created`, Chargebee `occurred_at`): a "
              "recorded sample is otherwise history to the playbook, recorded but never sent.")
def post(connector_name: str, file: str, url: str, headers: tuple[str, ...], now: bool) -> None:
    """Sign a payload as the provider would and post it to the hub.

    FILE is signed with the configured secret, exactly as CONNECTOR_NAME signs its webhooks."""
    connector = connectors.get(connector_name)
    if connector is None:
        raise click.BadParameter(f"unknown connector (known: {', '.join(sorted(connectors.REGISTRY))})")
    settings = load_settings()
    missing = connector.missing_inbound_settings(settings)
    if missing:
        raise click.ClickException(f"set {', '.join(missing)} (the same value the hub uses) to sign the request")
    body = Path(file).read_bytes()
    if now:
        body = _dated_now(connector_name, body)
    try:
        target, signed = connector.sign_request(body, settings, f"{url.rstrip('/')}/webhooks/{connector_name}")
    except NotImplementedError as exc:
        raise click.ClickException(str(exc))
    for h in headers:
        name, _, value = h.partition(":")
        signed[name.strip()] = value.strip()
    try:
        answer = requests.post(target, data=body, headers=signed, timeout=10)
    except requests.ConnectionError:
        raise RunningHubError(f"no hub is running at {url} (start it with `make run` or `hub run`, or give --url)")
    click.echo(f"{answer.status_code} {answer.text.strip()}")
    if answer.status_code >= 300:
        raise SystemExit(1)


#: the top-level field that dates an event, in unix seconds, per connector that `--now` can redate
EVENT_TIME_FIELDS = {"stripe": "created", "chargebee": "occurred_at"}


def _dated_now(connector_name: str, body: bytes) -> bytes:
    import json
    import time

    field = EVENT_TIME_FIELDS.get(connector_name)
    if field is None:
        raise click.BadParameter(f"--now dates {' and '.join(EVENT_TIME_FIELDS)} events", param_hint="--now")
    try:
        payload = json.loads(body)
    except ValueError:
        raise click.BadParameter("the file is not JSON", param_hint="FILE") from None
    payload[field] = int(time.time())
    return json.dumps(payload).encode()


@click.group(invoke_without_command=True)
@click.option("--markdown", is_flag=True, help="Print the configuration table (README).")
@click.pass_context
def config(ctx: click.Context, markdown: bool) -> None:
    """Check the settings in force, or print their documentation.

    A bad setting exits 2, listing every problem."""
    if markdown:
        click.echo(markdown_table())
        return
    settings = load_settings()
    shown = {k: ("***" if settings.declared[k].secret and v else v) for k, v in settings.values.items()}
    click.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))


COMMANDS = [post, config]
