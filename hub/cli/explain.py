"""``hub explain ACTION_ID``: why a planned action exists, and who cancelled it."""

from __future__ import annotations

import json

import click

from hub.runtime import current


@click.command()
@click.argument("action_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The explanation as one JSON object.")
def explain(action_id: int, as_json: bool) -> None:
    """Why an action exists: rule, file:line, event, params.

    For action ACTION_ID: the rule and its file:line, the event, the condition's inputs, the params,
    and who cancelled it if anyone did."""
    from hub.rules.explain import explain as build
    from hub.rules.explain import render_text

    info = build(current(), action_id)
    if info is None:
        raise click.ClickException(f"no action {action_id}")
    click.echo(json.dumps(info, default=str, sort_keys=True) if as_json else render_text(info))


COMMANDS = [explain]
