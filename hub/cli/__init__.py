"""The ``hub`` command. Every command lives in its own module and is imported only when it runs.

``COMMANDS`` names each command's module and the one-line help ``hub --help`` prints, so the
listing costs no import below click (a test checks the lines match the commands' own help).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from hub import __version__

# name -> ("module:attribute", the line `hub --help` shows for it)
COMMANDS: dict[str, tuple[str, str]] = {
    "actions": ("hub.cli.inspect:actions", "List planned actions and their outcome (the outbox)."),
    "alerts": ("hub.cli.alerts:group", "Evaluate the operational and business alerts now."),
    "backfill": ("hub.cli.backfill:backfill_cmd", "Bring a provider's history in through its API."),
    "changes": ("hub.cli.changes:changes", "Subscription changes in bulk from a CSV file."),
    "config": ("hub.cli.tools:config", "Check the settings in force, or print their documentation."),
    "connectors": ("hub.cli.connectors:connectors_cmd", "Each connector's configuration, credentials and circuit."),
    "db": ("hub.cli.store:db", "Database schema (upgrade)."),
    "deliveries": ("hub.cli.inspect:deliveries", "List stored webhook deliveries (failed ones show why)."),
    "events": ("hub.cli.inspect:events", "List canonical events, newest first."),
    "explain": ("hub.cli.explain:explain", "Why an action exists: rule, file:line, event, params."),
    "import": ("hub.cli.inspect:import_", "Record canonical events from JSON lines (backfills)."),
    "metrics": ("hub.cli.metrics:metrics", "Subscription KPIs: MRR, churn, NRR, ARPA, CLV, dunning."),
    "normalize": ("hub.cli.inspect:normalize", "Print the canonical events a payload becomes."),
    "post": ("hub.cli.tools:post", "Sign a payload as the provider would and post it to the hub."),
    "privacy": ("hub.cli.privacy:group", "Data requests and erasure: export, redact, redactions."),
    "replay": ("hub.cli.inspect:replay", "Re-queue failed or dead actions, or re-process deliveries."),
    "rules": ("hub.cli.rules:rules", "Rules files: check, simulate, and the running hub's status."),
    "run": ("hub.cli.processes:run", "Web app, workers and scheduler in one process."),
    "scheduler": ("hub.cli.processes:scheduler_cmd", "Move due actions onto the queues; recover stranded work."),
    "segments": ("hub.cli.segments:segments", "Segments, tiers and their sync to the marketing tools."),
    "send": ("hub.cli.connectors:send", "Perform one action now and print the outcome."),
    "serve": ("hub.cli.processes:serve", "Serve the web app (webhooks, API, health) under gunicorn."),
    "subscribers": ("hub.cli.subscribers:subscribers", "Subscriber profiles and identity (merges, conflicts)."),
    "worker": ("hub.cli.processes:worker", "Run a worker on the ingest and deliver-* queues."),
}


def load_command(name: str) -> click.Command:
    module, _, attribute = COMMANDS[name][0].partition(":")
    command: click.Command = getattr(importlib.import_module(module), attribute)
    command.short_help = COMMANDS[name][1]  # one wording, whether listed before or after the import
    return command


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; ``--help`` lists them from ``COMMANDS``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name) if name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup)
@click.version_option(__version__, "--version", prog_name="hub", message="%(prog)s %(version)s")
@click.option("--log-level", default=None, help="Override HUB_LOG_LEVEL.",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False))
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """The subscriber hub: webhooks in, canonical events, rules, actions out."""
    import logging

    from hub.logs import configure_logging

    ctx.ensure_object(dict)
    configure_logging(log_level)
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def main(args: Any = None) -> None:
    """Run the CLI; settings, rules and input errors end as one line on stderr with exit code 2."""
    from hub.cli.errors import run_guarded

    run_guarded(cli, args)
