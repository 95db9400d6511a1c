"""The ``hub`` command. Each group lives in its own module and is registered here, explicitly."""

from __future__ import annotations

import logging
import sys

import click

from hub.kernel.errors import ConfigError


@click.group()
@click.option("--log-level", default=None, help="Override HUB_LOG_LEVEL.")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """The subscriber hub: webhooks in, canonical events, rules, actions out."""
    from hub.logs import configure_logging

    ctx.ensure_object(dict)
    configure_logging(log_level)


def main() -> None:
    from hub.rules import LocatedError

    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(2)
    except LocatedError as exc:  # rules that do not load at start: nothing to fall back on
        click.echo(f"hub: the rules do not load ({len(exc.errors)} error(s)):\n{exc}", err=True)
        sys.exit(2)


# Every command group, registered explicitly (click lists them alphabetically in --help).
from hub.cli import (  # noqa: E402
    alerts,  # noqa: E402
    explain,
    inspect,
    metrics,
    privacy,
    processes,
    rules,
    segments,
    store,
    subscribers,
    tools,
)
from hub.cli import backfill as backfill_cli  # noqa: E402
from hub.cli import changes as changes_cli  # noqa: E402
from hub.cli import connectors as connectors_cli  # noqa: E402
from hub.cli import sync as sync_cli  # noqa: E402,F401  (adds `connectors register` and `connectors health`)

for module in (processes, store, inspect, tools, rules, explain, connectors_cli, privacy, subscribers, segments,
               metrics, changes_cli, backfill_cli, alerts):
    for command in module.COMMANDS:
        cli.add_command(command)

logging.getLogger("rq.worker").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
