"""Options several commands share, spelled once: the time window, ``--json`` and the running hub's URL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import click

HUB_URL = "http://127.0.0.1:8080"


class When(click.ParamType):
    """An age before now (``7d``, ``12h``, ``30m``) or an RFC 3339 time (``2026-11-01T00:00:00Z``)."""

    name = "AGE|TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        from hub.queries import when

        try:
            return when(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def window(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--since`` and ``--until``."""
    command = click.option("--until", type=When(), help="Only rows before this age or time (7d, 2026-11-01).")(command)
    return click.option("--since", type=When(), help="Only rows from this age or time on (7d, 12h, 2026-11-01).")(
        command)


def json_option(help: str = "One JSON object per line.") -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help=help)


def hub_url(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--url", default=HUB_URL, show_default=True, envvar="HUB_URL",
                        help="Base URL of the running hub (env HUB_URL).")(command)
