"""How the ``hub`` command ends on bad input: one line (or one list) on stderr and exit code 2.

Settings that do not validate, rules that do not load, a file that cannot be read and a hub that
cannot be reached are the operator's to fix, so they never end in a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from hub.kernel.errors import ConfigError


class RunningHubError(click.ClickException):
    """A command that acts on the running hub found none, or was refused by it (exit code 2)."""

    exit_code = 2


def run_guarded(command: click.Command, args: Any = None) -> None:
    try:
        code = command.main(args=args, prog_name="hub", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # one line naming the command, not the whole usage text
        where = exc.ctx.command_path if exc.ctx else "hub"
        click.echo(f"{where}: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        if exc.filename is None:
            raise
        click.echo(f"hub: {exc.filename}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        from hub.rules import LocatedError

        if not isinstance(exc, LocatedError):
            raise
        click.echo(f"hub: the rules do not load ({len(exc.errors)} error(s)):\n{exc}", err=True)
        sys.exit(2)
