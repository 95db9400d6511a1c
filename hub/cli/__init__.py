"""The ``hub`` command. Each group lives in its own module and is registered here, explicitly."""

from __future__ import annotations

import logging
import sys

import click

from ..errors import ConfigError


@click.group()
@click.option("--log-level", default=None, help="Override HUB_LOG_LEVEL.")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """The subscriber hub: webhooks in, canonical events, rules, actions out."""
    from ..logs import configure_logging

    ctx.ensure_object(dict)
    configure_logging(log_level)


def main() -> None:
    from ..rules import LocatedError

    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(2)
    except LocatedError as exc:  # rules that do not load at start: nothing to fall back on
        click.echo(f"hub: the rules do not load ({len(exc.errors)} error(s)):\n{exc}", err=True)
        sys.exit(2)


# Every command group, registered explicitly (click lists them alphabetically in --help).
from . import connectors as connectors_cli  # noqa: E402
from . import alerts, explain, inspect, metrics, privacy, processes, rules, segments, store, subscribers, tools  # noqa: E402,E501

for module in (processes, store, inspect, tools, rules, explain, connectors_cli, privacy, subscribers, segments,
               metrics, alerts):
    for command in module.COMMANDS:
        cli.add_command(command)

logging.getLogger("rq.worker").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
